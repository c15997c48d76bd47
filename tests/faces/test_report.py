"""Report files decoded by independent readers: PNGs with OpenCV, CSVs with the csv module."""

import csv
import math

import cv2
import numpy as np
import pytest
import torch

from kplab.faces.training.layout import KAGGLE15, PIXEL_CENTRE, normalise
from kplab.faces.training.metrics import per_keypoint_table
from kplab.faces.training.report import (HEADER_INCHES, plot_ced, plot_curves, plot_face_grid, worst_and_random,
                                write_keypoint_table)


def read_rgb(path):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} does not decode as an image"
    return bgr[..., ::-1].astype(int)  # (H, W, 3) RGB


def centroid(selected):
    ys, xs = np.nonzero(selected)
    assert xs.size > 0, "no pixels of the expected colour"
    return xs.mean(), ys.mean()


def red(rgb):
    return (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)


def green(rgb):
    return (rgb[..., 1] > 150) & (rgb[..., 0] < 60) & (rgb[..., 2] < 60)


def test_face_grid_draws_points_at_their_pixel_positions(tmp_path):
    """A uniform grey face; all predicted points at one pixel position, all true points at another.
    The image's rectangle in the PNG is found from its grey pixels; keypoint value u must land at
    (u - PIXEL_CENTRE + 1/2) image pixels from the rectangle's left edge (the centre of column 0 is
    at keypoint value PIXEL_CENTRE). Half an image pixel of error is about 2 PNG pixels here."""
    images = np.full((1, 96, 96), 128, dtype=np.uint8)
    pred_px, true_px = np.array([20.3, 70.8]), np.array([75.2, 30.6])
    pred = np.broadcast_to(normalise(pred_px), (1, KAGGLE15.n_points, 2))
    target = np.broadcast_to(normalise(true_px), (1, KAGGLE15.n_points, 2))
    path = plot_face_grid(images, pred, target, KAGGLE15, tmp_path / "one.png", panel_inches=4, dpi=100)
    rgb = read_rgb(path)
    assert rgb.shape == (round((4 + HEADER_INCHES) * 100), 400, 3)

    grey = (np.abs(rgb - 128) <= 3).all(axis=-1)
    cols, rows = np.flatnonzero(grey.sum(axis=0) > 100), np.flatnonzero(grey.sum(axis=1) > 100)
    left, top = cols[0], rows[0]
    width, height = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    assert abs(width - height) <= 1 and width > 350  # the square face fills the panel

    def expected(u):  # PNG position of keypoint value u (pixel edges at edge-of-image coordinates)
        return (u - PIXEL_CENTRE + 0.5) * width / 96

    for colour, pts in ((red, pred_px), (green, true_px)):
        cx, cy = centroid(colour(rgb))
        assert cx - left + 0.5 == pytest.approx(expected(pts[0]), abs=1.0)
        assert cy - top + 0.5 == pytest.approx(expected(pts[1]), abs=1.0)


def test_face_grid_layout_titles_and_missing_target(tmp_path):
    rng = np.random.default_rng(0)
    images = torch.rand(7, 1, 96, 96)  # float tensors in [0, 1], with a channel axis
    pred = torch.tensor(rng.uniform(-0.5, 0.5, (7, KAGGLE15.n_points, 2)))
    path = plot_face_grid(images, pred, None, KAGGLE15, tmp_path / "grid.png",
                          titles=[f"face {i}" for i in range(7)], ncols=3, panel_inches=2, dpi=50)
    rgb = read_rgb(path)
    assert rgb.shape == (round((3 * 2 + HEADER_INCHES) * 50), 3 * 2 * 50, 3)
    assert red(rgb).sum() > 7 * 5 and not green(rgb).any()
    with pytest.raises(ValueError, match="titles"):
        plot_face_grid(images, pred, None, KAGGLE15, tmp_path / "bad.png", titles=["only one"])
    with pytest.raises(ValueError, match=r"pred must have shape \(7, 15, 2\)"):
        plot_face_grid(images, pred[:, :3], None, KAGGLE15, tmp_path / "bad.png")


def test_ced_plot_draws_each_curve(tmp_path):
    """NME uniform on [0, 0.1] has a straight diagonal CED; its line must run from lower left to upper right."""
    rng = np.random.default_rng(1)
    curves = {"diagonal": rng.uniform(0, 0.1, 4000), "early": rng.uniform(0, 0.03, 500)}
    path = plot_ced(curves, tmp_path / "ced.png", dpi=100)
    rgb = read_rgb(path)
    assert rgb.shape == (400, 500, 3)
    c0 = (np.abs(rgb - [31, 119, 180]) <= 12).all(axis=-1)  # matplotlib's first cycle colour
    c1 = (np.abs(rgb - [255, 127, 14]) <= 12).all(axis=-1)  # and its second
    assert c1.sum() > 50
    ys, xs = np.nonzero(c0)
    slope, offset = np.polyfit(xs, ys, 1)
    assert np.mean(np.abs(ys - (slope * xs + offset)) < 6) > 0.95  # a straight line (plus the legend sample)
    assert ys[xs.argmin()] - ys[xs.argmax()] > 250  # rising across the whole axes (image rows grow downward)
    assert xs.max() - xs.min() > 350


def test_training_curves_png(tmp_path):
    history = [{"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.12 / e, "val_score": 40.0 * e} for e in range(1, 9)]
    rgb = read_rgb(plot_curves(history, tmp_path / "curves.png", dpi=100))
    assert rgb.shape == (350, 900, 3)
    score_line = (np.abs(rgb - [44, 160, 44]) <= 12).all(axis=-1)  # C2, the val score
    xs, ys = np.nonzero(score_line)[1], np.nonzero(score_line)[0]
    assert xs.min() > 450 and np.corrcoef(xs, ys)[0, 1] < -0.95  # right panel, rising
    loss_line = (np.abs(rgb - [31, 119, 180]) <= 12).all(axis=-1)
    assert np.nonzero(loss_line)[1].max() < 450  # left panel
    with pytest.raises(ValueError, match="at least one epoch"):
        plot_curves([], tmp_path / "empty.png")


def test_keypoint_csv_round_trips_the_table(tmp_path):
    rng = np.random.default_rng(2)
    pred, target = rng.uniform(-0.5, 0.5, (12, KAGGLE15.n_points, 2)), rng.uniform(-0.5, 0.5, (12, KAGGLE15.n_points, 2))
    mask = np.ones((12, KAGGLE15.n_points), dtype=bool)
    mask[:, KAGGLE15.index("nose_tip")] = False  # a column with no data at all -> NaN cells
    rows = per_keypoint_table(pred, target, KAGGLE15, mask=mask)
    path = write_keypoint_table(rows, tmp_path / "sub" / "keypoints.csv")
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert [r["name"] for r in back] == list(KAGGLE15.names)
    assert list(back[0]) == list(rows[0])
    for want, got in zip(rows, back):
        for key, value in want.items():
            if isinstance(value, str):
                assert got[key] == value
            elif math.isnan(value):
                assert math.isnan(float(got[key]))
            else:
                assert float(got[key]) == value  # full precision, bit for bit


def test_worst_and_random():
    nme = np.random.default_rng(3).random(100)
    nme[[5, 50]] = np.nan
    worst, rand = worst_and_random(nme, 6, seed=0)
    reference = sorted((i for i in range(100) if i not in (5, 50)), key=lambda i: -nme[i])[:6]
    assert list(worst) == reference
    assert len(set(rand)) == 6 and not {5, 50} & set(rand)
    assert np.array_equal(rand, worst_and_random(nme, 6, seed=0)[1])
    assert not np.array_equal(rand, worst_and_random(nme, 6, seed=1)[1])
    worst_all, rand_all = worst_and_random(nme, 500, seed=0)
    assert len(worst_all) == len(rand_all) == 98
