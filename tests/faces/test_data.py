"""Readers and writers on real-format files written here (I2DL folder, Kaggle CSV with gaps, npz)."""

import numpy as np
import pytest

from kplab.faces.training import data
from kplab.faces.training.data import (FaceSet, available_splits, hold_out, read_faces, read_train_val, write_csv,
                              write_npz)
from kplab.faces.training.layout import KAGGLE15, Layout

K = KAGGLE15.n_points


def random_faces(n, seed, gaps=0.0, person=None):
    """Random arrays in the reader's output form; `gaps` is the fraction of missing keypoints."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 96, 96), dtype=np.uint8)
    keypoints = rng.uniform(5, 90, (n, K, 2))  # float64: the files hold more digits than float32
    keypoints[rng.random((n, K)) < gaps] = np.nan
    return images, keypoints


def write_real_format(path, images, keypoints, index_column):
    """A CSV as Kaggle (no index) or I2DL (leading unnamed pandas index) write it, independent of kplab."""
    header = ([""] if index_column else []) + KAGGLE15.csv_columns() + ["Image"]
    lines = [",".join(header)]
    for i, (image, points) in enumerate(zip(images, keypoints)):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in points.reshape(-1)]
        lines.append(",".join(([str(i)] if index_column else []) + cells + [" ".join(map(str, image.reshape(-1)))]))
    path.write_text("\n".join(lines) + "\n")


def assert_same(a: FaceSet, b: FaceSet):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(a.mask, b.mask)


# --------------------------------------------------------------------------------------- real formats

def test_kaggle_csv_with_gaps_keeps_rows_and_marks_missing(tmp_path):
    images, keypoints = random_faces(12, 0, gaps=0.3)
    path = tmp_path / "training.csv"
    write_real_format(path, images, keypoints, index_column=False)
    faces = read_faces(path)
    assert len(faces) == 12
    np.testing.assert_array_equal(faces.images, images)
    np.testing.assert_array_equal(faces.mask, ~np.isnan(keypoints).any(-1))
    np.testing.assert_array_equal(faces.keypoints, keypoints.astype(np.float32))
    assert faces.keypoints.dtype == np.float32 and faces.images.dtype == np.uint8
    assert faces.names[4] == "training.csv:row 5"


def test_i2dl_folder_reads_splits_and_drops_rows_with_gaps(tmp_path):
    images, keypoints = random_faces(10, 1)
    keypoints[[2, 7], 3] = np.nan  # the I2DL reader drops such rows
    write_real_format(tmp_path / "training.csv", images, keypoints, index_column=True)
    val_images, val_keypoints = random_faces(4, 2)
    write_real_format(tmp_path / "val.csv", val_images, val_keypoints, index_column=True)

    train = read_faces(tmp_path, "train")
    keep = [0, 1, 3, 4, 5, 6, 8, 9]
    np.testing.assert_array_equal(train.images, images[keep])
    np.testing.assert_array_equal(train.keypoints, keypoints[keep].astype(np.float32))
    assert list(train.names[:3]) == ["training.csv:row 1", "training.csv:row 2", "training.csv:row 4"]
    assert train.mask.all()
    val = read_faces(tmp_path, "val")
    np.testing.assert_array_equal(val.images, val_images)

    pair = read_train_val(tmp_path)
    assert_same(pair[0], train)
    assert_same(pair[1], val)
    assert available_splits(tmp_path) == ("train", "val")


def test_extra_columns_and_any_column_order_are_tolerated(tmp_path):
    images, keypoints = random_faces(3, 3)
    columns = KAGGLE15.csv_columns()
    order = np.random.default_rng(0).permutation(len(columns))
    header = ["Image", "comment"] + [columns[j] for j in order]
    rows = [",".join(header)]
    for image, points in zip(images, keypoints):
        flat = points.reshape(-1)
        rows.append(",".join([" ".join(map(str, image.reshape(-1))), "x"] + [repr(float(flat[j])) for j in order]))
    path = tmp_path / "shuffled.csv"
    path.write_text("\n".join(rows) + "\n")
    faces = read_faces(path)
    np.testing.assert_array_equal(faces.keypoints, keypoints.astype(np.float32))
    np.testing.assert_array_equal(faces.images, images)


# --------------------------------------------------------------------------------------- round trips

def test_write_csv_round_trip_is_exact(tmp_path):
    images, keypoints = random_faces(9, 4, gaps=0.2)
    faces = FaceSet(images, keypoints)
    write_csv(tmp_path / "out.csv", faces)
    assert_same(read_faces(tmp_path / "out.csv"), faces)
    header = (tmp_path / "out.csv").read_text().split("\n", 1)[0].split(",")
    assert header == KAGGLE15.csv_columns() + ["Image"]


def test_write_npz_round_trip_with_splits_people_and_names(tmp_path):
    images, keypoints = random_faces(7, 5, gaps=0.1)
    person = np.array(["ann", "bob", "ann", "cy", "bob", "dee", "cy"])
    train = FaceSet(images[:5], keypoints[:5], person=person[:5], names=[f"a{i}.jpg" for i in range(5)])
    val = FaceSet(images[5:], keypoints[5:], person=person[5:], names=["b0.jpg", "b1.jpg"])
    path = tmp_path / "faces.npz"
    write_npz(path, {"train": train, "val": val})

    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert {"images", "keypoints", "split", "person", "names", "keypoint_names"} <= set(npz.files)
        assert list(npz["keypoint_names"]) == list(KAGGLE15.names)
        assert list(npz["split"]) == ["train"] * 5 + ["val"] * 2
    for split, expected in (("train", train), ("val", val)):
        got = read_faces(path, split)
        assert_same(got, expected)
        np.testing.assert_array_equal(got.person, expected.person)
        np.testing.assert_array_equal(got.names, expected.names)
    got_train, got_val = read_train_val(path)
    assert_same(got_train, train)
    assert_same(got_val, val)
    assert len(read_faces(path)) == 7  # no split: every row


def test_npz_keypoints_are_matched_by_name_for_a_smaller_layout(tmp_path):
    images, keypoints = random_faces(3, 6)
    write_npz(tmp_path / "f.npz", FaceSet(images, keypoints))
    eyes = Layout("eyes", ("right_eye_center", "left_eye_center", "nose_tip"), ((1, 0),))
    faces = read_faces(tmp_path / "f.npz", layout=eyes)
    np.testing.assert_array_equal(faces.keypoints, keypoints[:, [1, 0, 10]].astype(np.float32))


# --------------------------------------------------------------------------------------- splits

def test_kaggle_csv_hold_out_is_deterministic_and_disjoint(tmp_path):
    images, keypoints = random_faces(40, 7, gaps=0.2)
    path = tmp_path / "kaggle.csv"
    write_real_format(path, images, keypoints, index_column=False)
    train, val = read_train_val(path, seed=3, val_fraction=0.25)
    assert (len(train), len(val)) == (30, 10)
    assert not set(train.names) & set(val.names)
    again = read_train_val(path, seed=3, val_fraction=0.25)
    np.testing.assert_array_equal(again[1].names, val.names)
    other = read_train_val(path, seed=4, val_fraction=0.25)
    assert set(other[1].names) != set(val.names)
    assert available_splits(path) == ()


def test_hold_out_keeps_people_together():
    people = np.repeat([f"p{i}" for i in range(30)], np.arange(1, 31) % 5 + 1)  # groups of 1..5
    is_val = hold_out(len(people), 0.2, seed=1, groups=people)
    assert not set(people[is_val]) & set(people[~is_val])
    assert abs(is_val.mean() - 0.2) < 0.08
    np.testing.assert_array_equal(is_val, hold_out(len(people), 0.2, seed=1, groups=people))


def test_npz_without_split_holds_out_whole_people(tmp_path):
    images, keypoints = random_faces(24, 8)
    person = np.array([f"id{i // 3}" for i in range(24)])
    write_npz(tmp_path / "nosplit.npz", FaceSet(images, keypoints, person=person))
    train, val = read_train_val(tmp_path / "nosplit.npz", val_fraction=0.25)
    assert len(train) + len(val) == 24 and len(val) == 6
    assert not set(train.person) & set(val.person)


def test_synthetic_default_warns_and_splits_are_disjoint(capsys, monkeypatch):
    train, val = read_train_val("synthetic:30", seed=2)
    assert (len(train), len(val)) == (30, 6)
    assert "synthetic" in capsys.readouterr().err.lower()
    # disjoint seed streams: no validation face repeats a training face
    flat_train = train.images.reshape(30, -1)
    assert all(not (flat_train == v.reshape(-1)).all(axis=1).any() for v in val.images)
    assert_same(read_faces("synthetic:30", "val", seed=2), val)
    monkeypatch.setattr(data, "SYNTHETIC_TRAIN_SIZE", 20)  # keep the default-size read cheap
    default = read_faces(None, "val", seed=2)
    err = capsys.readouterr().err
    assert "WARNING" in err and "no data given" in err and len(default) == 4
    assert_same(read_train_val("synthetic:30", seed=2)[0], train)


def test_faceset_mask_subset_and_lone_nan():
    images, keypoints = random_faces(5, 9)
    keypoints[1, 4, 0] = np.nan  # only x missing: the whole point counts as missing
    faces = FaceSet(images, keypoints, names=list("abcde"))
    assert np.isnan(faces.keypoints[1, 4]).all()
    assert faces.mask.sum() == 5 * K - 1
    picked = faces.subset(np.array([True, False, True, False, False]))
    assert list(picked.names) == ["a", "c"] and len(picked) == 2
    np.testing.assert_array_equal(faces.subset([4, 0]).images, images[[4, 0]])


# --------------------------------------------------------------------------------------- real data

@pytest.mark.real
def test_faces15_known_facts(shared_data):
    path = shared_data / "faces" / "faces15.npz"
    train, val = read_train_val(path)
    assert (len(train), len(val)) == (3096, 752)
    assert (len(set(train.person)), len(set(val.person))) == (306, 69)
    assert not set(train.person) & set(val.person)
    assert train.mask.all() and val.mask.all()
    assert available_splits(path) == ("train", "val")
    # the eyes are where the layout says: subject's left eye on the image right
    assert (train.keypoints[:, 0, 0] > train.keypoints[:, 1, 0]).mean() > 0.99
