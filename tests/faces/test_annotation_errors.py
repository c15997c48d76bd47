"""Broken annotation files each get an error naming the file and line (or row, or part), and nothing
half-written is left behind."""

import cv2
import numpy as np
import pytest

from kplab.errors import DataError
from kplab.faces.training.annotations import read_pts, write_imglab_xml, write_pts
from kplab.faces.training.data import read_faces, read_train_val
from kplab.faces.training.layout import IBUG68, KAGGLE15


@pytest.fixture
def face_points():
    """68 plausible points in a 200 x 240 photo: the iBUG template scaled 1.5x and moved into it."""
    return np.asarray(IBUG68.template) * 1.5 + (40.0, 20.0)  # (68, 2)


@pytest.fixture
def folder(tmp_path, face_points):
    """photo.png with photo.pts beside it, and group.png with two faces group_1.pts and group_2.pts."""
    for name in ("photo", "group"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.full((200, 240), 128, np.uint8))
    write_pts(tmp_path / "photo.pts", face_points)
    write_pts(tmp_path / "group_1.pts", face_points)
    write_pts(tmp_path / "group_2.pts", face_points * 0.5 + 20)
    return tmp_path


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_faces(path, **kwargs)
    return str(info.value)


def _lines(folder, name="photo.pts"):
    return (folder / name).read_text().splitlines()


def _rewrite(folder, lines, name="photo.pts"):
    (folder / name).write_text("\n".join(lines) + "\n")


def test_a_good_folder_reads_with_several_faces_per_photo(folder, face_points):
    faces = read_faces(folder)
    assert faces.layout is IBUG68 and len(faces) == 3
    assert sorted(faces.names) == ["group.png#1", "group.png#2", "photo.png"]
    # derived 15-point faces from the same annotations
    assert read_faces(folder, layout=KAGGLE15).keypoints.shape == (3, 15, 2)
    points, where = read_pts(folder / "photo.pts")
    np.testing.assert_allclose(points, face_points, atol=5e-4)
    assert where[0].endswith("photo.pts, line 4") and where[-1].endswith("photo.pts, line 71")


def test_wrong_n_points(folder):
    lines = _lines(folder)
    _rewrite(folder, [lines[0], "n_points: 67"] + lines[2:])
    assert "photo.pts: n_points says 67, but 68 points stand between the braces" in error_of(folder)
    _rewrite(folder, [lines[0], "n_points: 5", "{"] + lines[3:8] + ["}"])
    assert "photo.pts: 5 points, but layout ibug68 has 68" in error_of(folder)


def test_missing_braces(folder):
    lines = _lines(folder)
    _rewrite(folder, lines[:2] + lines[3:])
    assert "photo.pts, line 3: expected 'version: 1', 'n_points: N' or '{'" in error_of(folder)
    _rewrite(folder, lines[:-1])
    assert "photo.pts: no closing '}' after the points" in error_of(folder)


def test_a_non_number_names_its_line(folder):
    lines = _lines(folder)
    lines[9] = "12.5 abc"
    _rewrite(folder, lines)
    assert "photo.pts, line 10: 'abc' is not a number" in error_of(folder)


def test_a_point_far_outside_its_photo_names_its_line(folder):
    lines = _lines(folder)
    lines[20] = "100.0 900.0"  # the photo is 240 x 200
    _rewrite(folder, lines)
    message = error_of(folder)
    assert "photo.pts, line 21: point 18 (100, 900) lies far outside its 240x200 photo photo.png" in message


def test_image_without_annotation_and_annotation_without_image(folder):
    (folder / "photo.pts").unlink()
    assert "photo.png: image without annotation" in error_of(folder)
    (folder / "photo.png").unlink()
    (folder / "orphan.pts").write_text((folder / "group_1.pts").read_text())
    assert "orphan.pts: annotation without an image" in error_of(folder)


def test_imglab_xml_errors_and_a_billion_laughs_file_is_refused(folder, face_points):
    write_imglab_xml(folder / "faces.xml", [("photo.png", np.array([40, 20, 140, 150]), face_points)])
    assert len(read_faces(folder / "faces.xml")) == 1
    text = (folder / "faces.xml").read_text()
    (folder / "bad.xml").write_text(text.replace("<part name='03' x='", "<part name='03' x='1x"))
    assert "box 1, part 03: x='1x" in error_of(folder / "bad.xml")
    (folder / "cut.xml").write_text(text[: len(text) // 2])
    assert "cut.xml: not well-formed XML" in error_of(folder / "cut.xml")
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
              '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
              "<dataset><images><image file='photo.png'>&lol3;</image></images></dataset>")
    (folder / "laughs.xml").write_text(laughs)
    assert "laughs.xml: refused: the file declares entities" in error_of(folder / "laughs.xml")


def test_photo_csv_errors_name_row_and_column(folder, face_points):
    header = ",".join(["file"] + IBUG68.csv_columns())
    row = ",".join(["photo.png"] + [f"{v:.2f}" for v in face_points.reshape(-1)])
    (folder / "points.csv").write_text(f"{header}\n{row}\n")
    assert len(read_faces(folder / "points.csv")) == 1
    bad = row.split(",")
    bad[5] = "oops"
    (folder / "points.csv").write_text(f"{header}\n{row}\n{','.join(bad)}\n")
    assert "points.csv, row 2, column jaw_03_x: 'oops' is not a number" in error_of(folder / "points.csv")
    (folder / "points.csv").write_text(f"{header}\n{row.replace('photo.png', 'gone.png')}\n")
    assert "points.csv, row 1: its image" in error_of(folder / "points.csv")


def test_photos_without_a_split_hold_out_whole_photos(folder):
    train, val = read_train_val(folder, val_fraction=0.3)
    assert len(train) + len(val) == 3
    assert not set(train.photo) & set(val.photo)


def test_a_failed_crop_leaves_no_file(folder, tmp_path):
    from click.testing import CliRunner

    from kplab.cli import main

    out = tmp_path / "out" / "crops.npz"
    result = CliRunner().invoke(main, ["crop", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(read_faces(out)) == 3
    fifteen = tmp_path / "out" / "crops15.npz"  # 68-point files cut into 15-point crops
    assert CliRunner().invoke(main, ["crop", str(folder), "--layout", "kaggle15", "--out", str(fifteen)]).exit_code == 0
    np.testing.assert_allclose(read_faces(fifteen).keypoints, read_faces(out, layout=KAGGLE15).keypoints, atol=1e-4)
    lines = _lines(folder)
    lines[9] = "12.5 abc"
    _rewrite(folder, lines)
    out.unlink()
    result = CliRunner().invoke(main, ["crop", str(folder), "--out", str(out)])
    assert result.exit_code == 2 and "line 10: 'abc' is not a number" in result.output
    assert not out.exists() and not list(out.parent.glob(".crops.npz.*"))
