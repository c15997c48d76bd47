"""Training on annotated full-size photos: .pts folders, imglab XML and photo CSVs give the same crops,
and those crops are exactly what `predict` cuts once it knows where the points are."""

import csv
import shutil

import numpy as np
import pytest

from kplab.faces.training.annotations import write_imglab_xml, write_pts
from kplab.faces.training.data import read_faces, read_train_val
from kplab.faces.training.framing import crop_faces
from kplab.faces.training.images import read_image, to_grey
from kplab.faces.training.layout import IBUG68, KAGGLE15, convert_points


def _photo_points(shared_data):
    """{file name: (68, 2) photo points} from photos/keypoints68.csv."""
    with open(shared_data / "faces" / "photos" / "keypoints68.csv", newline="") as f:
        rows = list(csv.reader(f))
    return {r[0]: np.array(r[1:], float).reshape(-1, 2) for r in rows[1:]}


@pytest.fixture(scope="module")
def photo_sources(shared_data, tmp_path_factory):
    """The 40 photos as the three annotation forms users have: (.pts folder, imglab .xml, photo .csv)."""
    photos = shared_data / "faces" / "photos"
    root = tmp_path_factory.mktemp("annotated")
    folder = root / "pts"
    folder.mkdir()
    faces = []
    for name, points in _photo_points(shared_data).items():
        shutil.copy(photos / name, folder / name)
        write_pts(folder / f"{name.rsplit('.', 1)[0]}.pts", points)
        lo, hi = points.min(0), points.max(0)
        faces.append((f"pts/{name}", np.r_[lo, hi - lo], points))
    write_imglab_xml(root / "faces.xml", faces)
    shutil.copy(photos / "keypoints68.csv", root / "pts" / "keypoints68.csv")
    return folder, root / "faces.xml", root / "pts" / "keypoints68.csv"


@pytest.mark.real
def test_pts_xml_and_csv_give_the_same_crops(photo_sources):
    folder, xml, table = photo_sources
    # the CSV sits in the photo folder, and a .pts folder with a CSV in it is still a .pts folder
    sets = [read_faces(folder), read_faces(xml), read_faces(table)]
    for faces in sets:
        assert faces.layout is IBUG68 and len(faces) == 40
    for other in sets[1:]:
        np.testing.assert_array_equal(other.images, sets[0].images)
        np.testing.assert_allclose(other.keypoints, sets[0].keypoints, atol=2e-3)  # .pts/.xml keep 3 decimals
        np.testing.assert_array_equal(other.framing_target, sets[0].framing_target)
    # the crops put the eyes and mouth on the template, and the points on the face: every derived
    # Kaggle point of every crop lies inside the 96 x 96 crop
    assert np.isfinite(sets[0].keypoints).all()
    fifteen = convert_points(sets[0].keypoints, IBUG68, KAGGLE15)
    assert (fifteen > 0).all() and (fifteen < 96).all()


@pytest.mark.real
def test_training_crops_are_the_crops_predict_makes_from_the_true_points(photo_sources, tmp_path, shared_data):
    from kplab.faces.training.model import ModelConfig
    from kplab.faces.inference.predict import Predictor
    from kplab.faces.training.train import TrainConfig, train

    folder, _, _ = photo_sources
    train_set, val_set = read_train_val(folder)
    assert len(train_set) + len(val_set) == 40 and len(val_set) >= 1
    assert not set(train_set.photo) & set(val_set.photo)  # whole photos are held out
    cfg = TrainConfig(model=ModelConfig(widths=(4, 8, 16, 32), blocks=(0, 0, 0, 0), head_width=4),
                      epochs=1, batch_size=8, threads=2)
    summary = train(cfg, train_set, val_set, tmp_path)
    assert summary["epochs"] == 1 and np.isfinite(summary["history"][0]["train_loss"])

    predictor = Predictor(tmp_path)
    assert predictor.layout is IBUG68
    np.testing.assert_allclose(predictor.framing.target, predictor.framing.weights @ IBUG68.template, atol=1e-3)
    truth = _photo_points(shared_data)
    both = read_faces(folder)
    for i in range(0, 40, 7):
        photo = both.photo[i]
        name = photo.rsplit("/", 1)[-1]
        grey = to_grey(read_image(photo))
        affine = predictor.framing.from_points(truth[name][None])
        crop = crop_faces(grey, affine)[0]
        np.testing.assert_array_equal(crop, both.images[i])
