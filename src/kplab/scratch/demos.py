"""The `kplab fundamentals` demonstrations: each computes its numbers, writes its figure or table
into an output folder and returns the numbers for the command to print.

matplotlib (its Agg renderer, no pyplot) is imported inside the functions that draw; torch only inside the dropout demo,
which shows PyTorch's layers beside ours.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kplab.errors import DataError
from kplab.scratch.dropout import Dropout, Dropout2d
from kplab.scratch.filters import GRADIENT_MAGNITUDE, apply_filters, filter_bank
from kplab.scratch.norm import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
from kplab.scratch.weights import LayerCount

MAX_SIDE = 512  # larger photos are shrunk first: the demo is about the filters, not about megapixels


def _figure(**kwargs):
    """A matplotlib Figure that renders with Agg, without pyplot's global figure registry."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


# --- filters -------------------------------------------------------------------------------------

def load_grey(path: Path) -> np.ndarray:
    """Any image OpenCV reads, as (H, W) float64 in [0, 1], shrunk to at most MAX_SIDE pixels."""
    import cv2

    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: OpenCV cannot read this file as an image")
    scale = MAX_SIDE / max(image.shape)
    if scale < 1:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image.astype(np.float64) / 255.0


def test_pattern(seed: int, size: int = 96) -> np.ndarray:
    """A picture with something for every filter, made here so scratch/ needs nothing else of kplab:
    a soft horizontal gradient (blur leaves it, Sobel-x sees it), a disk and a square (edges at every
    angle, corners), a one-pixel line (what sharpening and the Laplacian pick out) and a little seeded
    noise. (size, size) float64 in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)  # (size, size) each, 0..1
    image = 0.25 + 0.2 * x
    image[(x - 0.32) ** 2 + (y - 0.4) ** 2 < 0.2 ** 2] = 0.85  # disk
    image[(x > 0.58) & (x < 0.86) & (y > 0.52) & (y < 0.8)] = 0.1  # square
    image[int(0.15 * size), int(0.1 * size):int(0.9 * size)] = 1.0  # thin line
    noise = np.random.default_rng(seed).normal(0.0, 0.02, image.shape)
    return np.clip(image + noise, 0.0, 1.0)


@dataclass
class FilterStat:
    name: str
    size: str  # "3x3", "5x5" or "-" for the gradient magnitude
    kernel_sum: float | None
    minimum: float
    maximum: float
    mean: float


def filters_demo(image: np.ndarray, out: Path) -> tuple[list[FilterStat], Path]:
    """Apply the filter bank to `image` (H, W) in [0, 1]; write filters.png; return per-filter stats."""
    bank = filter_bank()
    results = apply_filters(image)
    stats = [FilterStat(name, f"{k.shape[0]}x{k.shape[1]}", float(k.sum()), *_range(results[name]))
             for name, k in bank.items()]
    stats.append(FilterStat(GRADIENT_MAGNITUDE, "-", None, *_range(results[GRADIENT_MAGNITUDE])))

    fig = _figure(figsize=(15, 8.2))
    axes = fig.subplots(2, 5)
    panels = [("input", image, None)] + [(name, results[name], bank.get(name)) for name in results]
    for ax, (name, img, kernel) in zip(axes.ravel(), panels):
        if kernel is not None and abs(kernel.sum()) < 1e-12:  # derivative filters: signed responses
            limit = np.abs(img).max() or 1.0
            ax.imshow(img, cmap="RdBu_r", vmin=-limit, vmax=limit)
        elif name == GRADIENT_MAGNITUDE:  # >= 0, on its own scale
            ax.imshow(img, cmap="gray", vmin=0, vmax=float(img.max()) or 1.0)
        else:  # image-like results, shown on the input's grey scale (values outside [0, 1] clip)
            ax.imshow(img, cmap="gray", vmin=0, vmax=max(1.0, float(image.max())))
        ax.set_title(name if kernel is None else f"{name} ({kernel.shape[0]}x{kernel.shape[1]})", fontsize=11)
        ax.set_xticks([]), ax.set_yticks([])
        if kernel is not None and kernel.shape[0] == 3:
            ax.set_xlabel("\n".join(" ".join(f"{v:g}".rjust(3) for v in row) for row in kernel),
                          family="monospace", fontsize=9)
        elif kernel is not None:
            ax.set_xlabel("5x5, weights sum to 1", fontsize=9)
        elif name == GRADIENT_MAGNITUDE:
            ax.set_xlabel("sqrt(Sobel x^2 + Sobel y^2)", fontsize=9)
    fig.suptitle("Hand-coded filters applied with kplab.scratch.conv2d, zero padding "
                 "(derivative filters: red > 0, blue < 0; the frame is the zero padding's edge)")
    fig.tight_layout()
    path = out / "filters.png"
    fig.savefig(path, dpi=100)
    return stats, path


def _range(a: np.ndarray) -> tuple[float, float, float]:
    return float(a.min()), float(a.max()), float(a.mean())


# --- params --------------------------------------------------------------------------------------

def write_counts(rows: list[LayerCount], out: Path) -> Path:
    path = out / "params.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "input", "output", "weights", "biases", "parameters"])
        for r in rows:
            writer.writerow([r.layer, r.input, r.output, r.weights, r.biases, r.parameters])
    return path


# --- dropout -------------------------------------------------------------------------------------

@dataclass
class DropoutRun:
    layer: str  # "Dropout" or "Dropout2d"
    source: str  # "kplab" or "torch"
    example: np.ndarray  # the output for the tutorial's all-ones input
    drop_fraction: float  # zeroed elements over all samples
    whole_maps: float | None  # Dropout2d: fraction of (sample, channel) rows that are all 0 or all kept


def dropout_demo(samples: int, seed: int, out: Path) -> tuple[list[DropoutRun], Path]:
    """The tutorial's Dropout(p=0.5) on 1x75 and Dropout2d(p=0.5) on 1x3x25 inputs of ones, ours and
    PyTorch's, plus drop fractions measured over `samples` inputs of each shape."""
    import torch

    p = 0.5
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    ours = {"Dropout": Dropout(p, rng=rng), "Dropout2d": Dropout2d(p, rng=rng)}
    theirs = {"Dropout": torch.nn.Dropout(p), "Dropout2d": torch.nn.Dropout2d(p)}
    shapes = {"Dropout": (75,), "Dropout2d": (3, 25)}

    def run(layer_name: str, source: str, forward) -> DropoutRun:
        example = forward(np.ones((1, *shapes[layer_name])))
        many = forward(np.ones((samples, *shapes[layer_name])))
        whole = None
        if layer_name == "Dropout2d":  # each (sample, channel) row must be all zeros or all kept
            whole = float(np.mean(many.min(axis=2) == many.max(axis=2)))
        return DropoutRun(layer_name, source, example[0], float(np.mean(many == 0)), whole)

    def torch_forward(layer):
        def forward(x):
            with warnings.catch_warnings():  # Dropout2d on (N, C, L): the tutorial's shape, warned about
                warnings.simplefilter("ignore", UserWarning)
                return layer(torch.from_numpy(x)).numpy()
        return forward

    runs = []
    for name in ours:
        runs.append(run(name, "kplab", ours[name].forward))
        runs.append(run(name, "torch", torch_forward(theirs[name])))

    fig = _figure(figsize=(11, 5.5))
    axes = fig.subplots(4, 1, gridspec_kw={"height_ratios": [1, 1, 3, 3]})
    for ax, r in zip(axes, runs):
        ax.pcolormesh(r.example.reshape(-1, r.example.shape[-1]), cmap="gray", vmin=0, vmax=2,
                      edgecolors="0.5", linewidth=0.5)
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_title(f"{r.source} {r.layer}(p=0.5) on ones{(1, *r.example.shape)}: black = dropped, "
                     f"white = kept x2;  drop fraction over {samples} samples {r.drop_fraction:.4f}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    path = out / "dropout.png"
    fig.savefig(path, dpi=100)
    return runs, path


# --- norms ---------------------------------------------------------------------------------------

@dataclass
class NormStat:
    name: str
    axes: str  # the axes each statistic is taken over
    groups: int  # how many separate (mean, var) pairs
    group_size: int  # elements per group
    max_abs_mean: float
    min_var: float
    max_var: float
    group_of: np.ndarray  # (N, C) group id of each feature map
    means: np.ndarray  # (groups,)
    variances: np.ndarray  # (groups,)


def _norm_layers(shape: tuple[int, int, int, int], groups: int) -> list[tuple[str, str, object, np.ndarray]]:
    """(name, axes, layer, group id per (n, c)) for the four norms on an (N, C, H, W) batch."""
    n, c, h, w = shape
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")  # (N, C) each
    f64 = np.float64
    return [
        ("BatchNorm2d", "(N, H, W) per channel", BatchNorm2d(c, dtype=f64), cc),
        ("LayerNorm", "(C, H, W) per sample", LayerNorm((c, h, w), dtype=f64), nn),
        ("InstanceNorm2d", "(H, W) per sample and channel", InstanceNorm2d(c, dtype=f64), nn * c + cc),
        (f"GroupNorm({groups})", f"(C/{groups}, H, W) per sample and group", GroupNorm(groups, c, dtype=f64),
         nn * groups + cc // (c // groups)),
    ]


def group_statistics(y: np.ndarray, group_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (biased) variance of y (N, C, H, W) over the maps sharing each group id (N, C)."""
    flat = y.reshape(y.shape[0] * y.shape[1], -1)  # (N*C, H*W)
    ids = group_of.ravel()
    means, variances = [], []
    for g in range(ids.max() + 1):
        values = flat[ids == g]
        means.append(values.mean())
        variances.append(values.var())
    return np.array(means), np.array(variances)


def _draw_group_borders(ax, group_of: np.ndarray) -> None:
    """Black lines between neighbouring cells of different groups (colours alone repeat)."""
    n, c = group_of.shape
    for i in range(n):
        for j in range(c):
            if j + 1 < c and group_of[i, j] != group_of[i, j + 1]:
                ax.plot([j + 0.5, j + 0.5], [i - 0.5, i + 0.5], color="black", lw=1.5)
            if i + 1 < n and group_of[i, j] != group_of[i + 1, j]:
                ax.plot([j - 0.5, j + 0.5], [i + 0.5, i + 0.5], color="black", lw=1.5)


def norms_demo(shape: tuple[int, int, int, int], groups: int, seed: int, out: Path) -> tuple[list[NormStat], Path]:
    """Normalise one random batch with all four norms; write the batch (norms_batch.npy) and norms.png."""
    n, c, h, w = shape
    if c % groups:
        raise ValueError(f"GroupNorm groups {groups} must divide the channel count {c}")
    rng = np.random.default_rng(seed)
    # Mean 3, spread 2, plus a different offset per channel and per sample, so the norms differ visibly.
    x = 3 + 2 * rng.normal(size=shape) + rng.normal(size=(1, c, 1, 1)) + rng.normal(size=(n, 1, 1, 1))
    np.save(out / "norms_batch.npy", x)
    stats = []
    for name, axes, layer, group_of in _norm_layers(shape, groups):
        means, variances = group_statistics(layer.forward(x), group_of)
        stats.append(NormStat(name, axes, len(means), x.size // len(means), float(np.abs(means).max()),
                              float(variances.min()), float(variances.max()), group_of, means, variances))

    fig = _figure(figsize=(16, 7.5))
    axes = fig.subplots(2, 4, gridspec_kw={"height_ratios": [3, 2]})
    for col, s in enumerate(stats):
        ax = axes[0, col]
        ax.imshow(s.group_of % 20, cmap="tab20", vmin=0, vmax=19, aspect="auto")
        ax.set_title(f"{s.name}\nstatistics over {s.axes}", fontsize=10)
        ax.set_xlabel("channel c"), ax.set_ylabel("sample n")
        ax.set_xticks(range(c)), ax.set_yticks(range(n))
        _draw_group_borders(ax, s.group_of)
        ax = axes[1, col]
        ax.axhline(0, color="grey", lw=0.5), ax.axhline(1, color="grey", lw=0.5)
        ax.plot(s.means, "o", ms=4, label="mean")
        ax.plot(s.variances, "x", ms=5, label="variance")
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel(f"group ({s.groups} groups of {s.group_size} values)")
        ax.legend(loc="center right", fontsize=8)
    fig.suptitle(f"One (N, C, H, W) = {shape} batch: each colour is one set of values normalised together "
                 f"(every cell is a whole {h}x{w} map); below, each set's mean and variance after the norm")
    fig.tight_layout()
    path = out / "norms.png"
    fig.savefig(path, dpi=100)
    return stats, path
