"""Evaluation figures and tables: CED curves, face grids with keypoints, training curves, the per-keypoint CSV.

Each function writes one file and returns its path. Figures are built on `matplotlib.figure.Figure`
with the Agg canvas directly (no pyplot), so nothing here touches global plotting state.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kplab.checkpoint import atomic_write_bytes
from kplab.faces.training.layout import PIXEL_CENTRE, Layout, to_pixels
from kplab.faces.training.metrics import FAILURE_NME, ced_auc, ced_curve, failure_rate, to_numpy

PRED_COLOUR = (1.0, 0.0, 0.0)  # red: predicted keypoints
TRUE_COLOUR = (0.0, 0.8, 0.0)  # green: true keypoints
HEADER_INCHES = 0.3  # strip above a face grid for the colour legend
TITLE_INCHES = 0.2  # room above each panel for its title, when there are titles


def _save(fig: Figure, path, dpi: float) -> Path:
    """Render `fig` to PNG bytes and write them atomically to `path`."""
    path = Path(path)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_ced(nme_by_name: dict[str, np.ndarray], path, max_error: float = FAILURE_NME,
             xlabel: str = "per-image NME (inter-ocular)", dpi: float = 100) -> Path:
    """Cumulative error distribution of per-image NME, one curve per entry (e.g. model vs. mean shape).

    Each legend entry carries the curve's AUC@max_error and failure rate (NME > max_error).
    """
    if not nme_by_name:
        raise ValueError("plot_ced needs at least one NME array")
    fig = Figure(figsize=(5.0, 4.0))
    ax = fig.add_subplot()
    for label, nme in nme_by_name.items():
        x, frac = ced_curve(nme, max_error)
        auc, fr = ced_auc(nme, max_error), failure_rate(nme, max_error)
        ax.plot(x, frac, lw=1.8, label=f"{label}  AUC {auc:.3f}  FR {100 * fr:.1f}%")
    ax.set_xlim(0.0, max_error)
    ax.set_ylim(0.0, 1.02)  # a little headroom so a curve that reaches 1 stays visible above the frame
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of images")
    ax.set_title(f"Cumulative error distribution (AUC@{max_error:g})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_face_grid(images, pred, target, layout: Layout, path, titles=None, ncols: int | None = None,
                   panel_inches: float = 2.0, dpi: float = 100) -> Path:
    """A grid of faces with predicted (red) and, if given, true (green) keypoints.

    images: (N, H, W) or (N, 1, H, W), uint8 in 0-255 or float in [0, 1]; pred/target: (N, K, 2) I2DL-
    normalised (target may be None). Points are drawn in pixel coordinates; the image is placed with an
    `extent` such that array column j is centred on keypoint x = j + PIXEL_CENTRE (and row i on
    y = i + PIXEL_CENTRE), so a point sits exactly where the data conventions say it does. The PNG is
    ncols * panel_inches * dpi wide and (nrows * panel_inches + HEADER_INCHES) * dpi high.
    """
    imgs = to_numpy(images)
    if imgs.ndim == 4 and imgs.shape[1] == 1:
        imgs = imgs[:, 0]  # (N, H, W)
    if imgs.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W) or (N, 1, H, W), got {imgs.shape}")
    is_uint8 = images.dtype in (torch.uint8, np.uint8) if hasattr(images, "dtype") else False
    vmax = 255.0 if is_uint8 else 1.0
    pred_px = to_pixels(to_numpy(pred))  # (N, K, 2)
    true_px = None if target is None else to_pixels(to_numpy(target))  # (N, K, 2)
    n = imgs.shape[0]
    if n == 0:
        raise ValueError("plot_face_grid needs at least one image")
    for label, pts in (("pred", pred_px), ("target", true_px)):
        if pts is not None and pts.shape != (n, layout.n_points, 2):
            raise ValueError(f"{label} must have shape ({n}, {layout.n_points}, 2), got {pts.shape}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")

    ncols = min(n, 6) if ncols is None else ncols
    nrows = math.ceil(n / ncols)
    height = nrows * panel_inches + HEADER_INCHES
    fig = Figure(figsize=(ncols * panel_inches, height))
    title_room = TITLE_INCHES if titles is not None else 0.0
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1.0 - (HEADER_INCHES + title_room) / height,
                        wspace=0.05, hspace=(title_room + 0.05) / panel_inches)
    fig.text(0.5, 1.0 - 0.5 * HEADER_INCHES / height,
             "red: predicted" + ("   green: true" if true_px is not None else ""),
             ha="center", va="center", fontsize=9)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    h, w = imgs.shape[1:]
    # One pixel is one unit wide, so array column j covers [c_j - 1/2, c_j + 1/2] with c_j = j + PIXEL_CENTRE.
    lo = PIXEL_CENTRE - 0.5
    extent = (lo, w + lo, h + lo, lo)  # (left, right, bottom, top): row 0 at the top
    marker = 2.5 * panel_inches  # points: about 3 image pixels across at any panel size
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(imgs[i], cmap="gray", vmin=0.0, vmax=vmax, extent=extent, interpolation="nearest")
        if true_px is not None:
            _draw_shape(ax, true_px[i], layout, TRUE_COLOUR, marker)
        _draw_shape(ax, pred_px[i], layout, PRED_COLOUR, marker)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8, pad=2)
    return _save(fig, path, dpi)


def _draw_shape(ax, points: np.ndarray, layout: Layout, colour, marker: float) -> None:
    """One face's points (K, 2) in pixels, with the layout's contour lines (jaw, brows, eyes, lips)."""
    for contour in layout.contours:
        index = list(contour.points) + ([contour.points[0]] if contour.closed else [])
        ax.plot(points[index, 0], points[index, 1], "-", lw=0.6, color=colour, alpha=0.7)
    small = marker * (0.6 if layout.n_points > 20 else 1.0)  # dense layouts get smaller dots
    ax.plot(points[:, 0], points[:, 1], "o", ms=small, mfc=colour, mec="none")


def worst_and_random(nme, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the n images with the largest NME (worst first) and of n images drawn uniformly
    without replacement (sorted) from all images with a finite NME, with a seeded generator.
    The random draw may overlap the worst: it is a fair sample of the whole set."""
    e = to_numpy(nme).ravel()
    valid = np.flatnonzero(np.isfinite(e))
    k = min(n, valid.size)
    worst = valid[np.argsort(-e[valid], kind="stable")[:k]]
    rand = np.sort(np.random.default_rng(seed).choice(valid, size=k, replace=False))
    return worst, rand


def plot_curves(history: list[dict], path, dpi: float = 100) -> Path:
    """Training curves from one dict per epoch: `train_loss` (and `val_loss` if present) on a log
    axis, `val_score` on a second panel. The x axis is `epoch` if given, else 1, 2, ..."""
    if not history:
        raise ValueError("plot_curves needs at least one epoch of history")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]

    def series(key):
        return [row.get(key, np.nan) for row in history]

    fig = Figure(figsize=(9.0, 3.5))
    loss_ax, score_ax = fig.subplots(1, 2)
    for key in ("train_loss", "val_loss"):
        if any(key in row for row in history):
            loss_ax.plot(epochs, series(key), "o-", ms=3, label=key.replace("_", " "))
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.grid(alpha=0.3, which="both")
    loss_ax.legend(fontsize=8)
    if any("val_score" in row for row in history):
        score_ax.plot(epochs, series("val_score"), "o-", ms=3, color="C2")
    score_ax.set_xlabel("epoch")
    score_ax.set_ylabel("val score (1 / 2 MSE)")
    score_ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi)


def write_keypoint_table(rows: list[dict], path_csv) -> Path:
    """Write the per-keypoint table as CSV (header = the first row's keys); floats keep full precision."""
    if not rows:
        raise ValueError("write_keypoint_table needs at least one row")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(path_csv)
    atomic_write_bytes(path, buf.getvalue().encode())
    return path
