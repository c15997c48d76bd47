"""Bad input: every problem is a DataError naming the file, the row and the field."""

import numpy as np
import pytest

from kplab.errors import DataError
from kplab.faces.training.data import FaceSet, read_faces, read_train_val, write_npz
from kplab.faces.training.layout import KAGGLE15

COLUMNS = KAGGLE15.csv_columns() + ["Image"]
GOOD_IMAGE = " ".join(["128"] * 9216)
GOOD_POINTS = ["40.5"] * len(KAGGLE15.csv_columns())


def write_rows(path, rows, header=COLUMNS):
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_faces(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("image, expected", [
    (" ".join(["1"] * 9215), "9215 pixel values, expected 9216"),
    (" ".join(["1"] * 9217), "9217 pixel values"),
    (" ".join(["7"] * 100 + ["dark"] + ["7"] * 9115), "value 101 ('dark') is not a number"),
    (" ".join(["0"] * 50 + ["256"] + ["0"] * 9165), "value 51 is 256"),
    (" ".join(["-1"] + ["0"] * 9215), "value 1 is -1"),
    (" ".join(["3.5"] * 9216), "value 1 is 3.5"),
])
def test_bad_pixels_name_file_row_and_column(tmp_path, image, expected):
    path = write_rows(tmp_path / "faces.csv", [GOOD_POINTS + [GOOD_IMAGE]] * 2 + [GOOD_POINTS + [image]])
    message = error_of(path)
    assert str(path) in message and "row 3 (line 4)" in message and "column Image" in message
    assert expected in message


def test_non_numeric_keypoint_cell(tmp_path):
    points = list(GOOD_POINTS)
    points[KAGGLE15.csv_columns().index("nose_tip_y")] = "abc"
    path = write_rows(tmp_path / "faces.csv", [GOOD_POINTS + [GOOD_IMAGE], points + [GOOD_IMAGE]])
    message = error_of(path)
    assert "faces.csv, row 2" in message and "column nose_tip_y" in message and "'abc' is not a number" in message


def test_missing_columns_are_listed(tmp_path):
    header = [c for c in COLUMNS if c not in ("mouth_left_corner_x", "Image")]
    path = write_rows(tmp_path / "faces.csv", [GOOD_POINTS[:-1]], header=header)
    message = error_of(path)
    assert "faces.csv" in message and "mouth_left_corner_x" in message and "Image" in message


def test_short_row(tmp_path):
    path = write_rows(tmp_path / "faces.csv", [GOOD_POINTS + [GOOD_IMAGE], GOOD_POINTS[:5]])
    assert "row 2 (line 3): 5 cells, but the header has 31 columns" in error_of(path)


def test_empty_file_and_header_only(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert "empty.csv: empty file" in error_of(tmp_path / "empty.csv")
    write_rows(tmp_path / "header.csv", [])
    assert "header.csv: no data rows" in error_of(tmp_path / "header.csv")


def test_missing_paths(tmp_path):
    assert "nowhere.npz: no such file" in error_of(tmp_path / "nowhere.npz")
    assert "faces.txt: unknown face data" in error_of(write_rows(tmp_path / "faces.txt", []))
    with pytest.raises(DataError, match="nowhere.csv: no such file"):
        read_train_val(tmp_path / "nowhere.csv")


def test_i2dl_folder_missing_split_file_and_unknown_split(tmp_path):
    write_rows(tmp_path / "training.csv", [GOOD_POINTS + [GOOD_IMAGE]])
    message = error_of(tmp_path, "val")
    assert "val.csv" in message and "missing" in message and "training.csv" in message
    assert "unknown split 'dev'" in error_of(tmp_path, "dev")
    with pytest.raises(DataError, match="val.csv"):
        read_train_val(tmp_path)


def test_npz_split_errors(tmp_path):
    faces = FaceSet(np.zeros((2, 96, 96), np.uint8), np.full((2, 15, 2), 40.0))
    write_npz(tmp_path / "plain.npz", faces)
    assert "plain.npz: split 'val' asked for, but the file has no 'split' array" in error_of(tmp_path / "plain.npz", "val")
    write_npz(tmp_path / "split.npz", {"train": faces, "val": faces})
    message = error_of(tmp_path / "split.npz", "test")
    assert "split.npz: no rows with split 'test'" in message and "train (2), val (2)" in message
    assert "synthetic faces have splits" in error_of("synthetic:4", "dev")
    assert "a CSV file has no splits" in error_of(write_rows(tmp_path / "k.csv", [GOOD_POINTS + [GOOD_IMAGE]]), "val")


def test_npz_needing_pickle_or_missing_arrays_is_refused(tmp_path):
    names = np.array(["a", None], dtype=object)  # object arrays need pickle
    np.savez(tmp_path / "pickled.npz", images=np.zeros((2, 96, 96), np.uint8), keypoints=np.zeros((2, 15, 2)),
             names=names)
    assert "pickled.npz: array 'names' cannot be read without pickle" in error_of(tmp_path / "pickled.npz")
    np.savez(tmp_path / "noimages.npz", keypoints=np.zeros((2, 15, 2)))
    assert "noimages.npz: no 'images' array" in error_of(tmp_path / "noimages.npz")
    np.savez(tmp_path / "wrongk.npz", images=np.zeros((2, 96, 96), np.uint8), keypoints=np.zeros((2, 14, 2)))
    assert "14 points per face match no known layout" in error_of(tmp_path / "wrongk.npz")
    np.savez(tmp_path / "hot.npz", images=np.full((2, 96, 96), 300), keypoints=np.zeros((2, 15, 2)))
    assert "hot.npz: 'images' row 0" in error_of(tmp_path / "hot.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    assert "junk.npz: not a readable .npz" in error_of(tmp_path / "junk.npz")


def test_bad_synthetic_size():
    assert "synthetic:N" in error_of("synthetic:lots")
    assert "synthetic:N" in error_of("synthetic:0")
