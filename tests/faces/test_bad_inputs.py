"""Bad and unusual inputs: each gets a clear message naming it, and the run goes on with the rest."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from kplab.cli import main
from kplab.errors import DataError
from kplab.faces.training.images import read_image, to_bgr8
from kplab.faces.inference.predict import Predictor


@pytest.fixture()
def mixed_folder(detectable_face, tmp_path):
    grey, _ = detectable_face
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), grey)
    (folder / "text.jpg").write_text("these are words, not pixels\n")
    (folder / "zero.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "tiny.png"), np.full((1, 1), 128, np.uint8))
    bgra = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGRA)  # opaque alpha channel
    cv2.imwrite(str(folder / "rgba.png"), bgra)
    cv2.imwrite(str(folder / "deep.png"), grey.astype(np.uint16) * 257)  # 16-bit, same picture
    (tmp_path / "empty").mkdir()
    return folder


def test_bad_files_are_named_and_skipped_while_good_ones_are_predicted(tiny_model_dir, mixed_folder, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["predict", str(tiny_model_dir), str(mixed_folder), str(tmp_path / "empty"),
                                       str(tmp_path / "missing.jpg"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    messages = result.stderr
    for name, reason in (("text.jpg", "not an image"), ("zero.jpg", "empty file"), ("tiny.png", "too small"),
                         ("empty", "no images or videos"), ("missing.jpg", "no such file")):
        line = next((m for m in messages.splitlines() if name in m), "")
        assert reason in line, f"{name}: no clear message in\n{messages}"
    records = {json.loads(line)["file"].rsplit("/", 1)[-1]: json.loads(line)
               for line in (out / "predictions.jsonl").read_text().splitlines()}
    assert set(records) == {"good.png", "rgba.png", "deep.png"}
    # RGBA and 16-bit copies of the same picture decode to the same pixels, hence the same points.
    for name in ("rgba.png", "deep.png"):
        assert records[name]["keypoints"] == records["good.png"]["keypoints"]
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["deep.png", "good.png", "rgba.png"]


def test_a_run_where_nothing_can_be_read_fails_with_one_clear_line(tiny_model_dir, mixed_folder):
    result = CliRunner().invoke(main, ["predict", str(tiny_model_dir), str(mixed_folder / "text.jpg")])
    assert result.exit_code == 2
    assert "error: no input could be read" in result.stderr and "Traceback" not in result.output


def test_python_api_raises_data_errors_naming_the_file(tiny_model_dir, mixed_folder):
    predictor = Predictor(tiny_model_dir)
    for name, reason in (("text.jpg", "not an image"), ("zero.jpg", "empty file"), ("tiny.png", "too small")):
        with pytest.raises(DataError, match=reason) as info:
            predictor.predict(mixed_folder / name)
        assert name in str(info.value)
    with pytest.raises(DataError, match="float pixels must lie in"):
        predictor.predict(np.full((100, 100), 255.0))


def test_images_normalise_to_8_bit_bgr_with_alpha_over_white():
    # A PNG under a .jpg name is read by content; grey, 16-bit and alpha all become uint8 BGR.
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = [[255, 0], [128, 64]]
    out = to_bgr8(bgra)
    np.testing.assert_array_equal(out[0, 0], (10, 20, 30))  # opaque: unchanged
    np.testing.assert_array_equal(out[0, 1], (255, 255, 255))  # transparent: white
    a = 128 / 255
    np.testing.assert_array_equal(out[1, 0], np.rint(np.array([10, 20, 30]) * a + 255 * (1 - a)))
    np.testing.assert_array_equal(to_bgr8(np.array([[0, 65535]], np.uint16))[0, :, 0], [0, 255])
    np.testing.assert_array_equal(to_bgr8(np.zeros((1, 1, 3), np.uint8) + [[[1, 2, 3]]], order="rgb")[0, 0], (3, 2, 1))
    with pytest.raises(ValueError, match="shape"):
        to_bgr8(np.zeros((4, 4, 2), np.uint8))


def test_png_data_under_a_jpg_name_is_read_by_content(tmp_path):
    picture = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    ok, png = cv2.imencode(".png", picture)
    (tmp_path / "photo.jpg").write_bytes(png.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "photo.jpg")[..., 0], picture)
