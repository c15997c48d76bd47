"""Keypoint metrics: the exact I2DL score and the field metrics beside it (RMSE, NME, FR, AUC, CED).

Inputs are I2DL-normalised coordinates `(N, K, 2)` (NumPy arrays or torch tensors; computed in float64)
with an optional visibility mask `(N, K)`; outputs are plain Python floats. Everything is vectorised
over images. Point names come from the `Layout`; nothing here knows how many points a face has.

Notation: p, t are predicted and true normalised points, m_ik the mask, S = HALF (48) the pixels per
normalised unit, so pixel errors are S times normalised errors.

- Per-image MSE over present coordinates: mse_i = sum_k m_ik |p_ik - t_ik|^2 / (2 sum_k m_ik).
  Without a mask this is `MSELoss()(t_i, p_i)` over the image's 2K coordinates, as in the I2DL
  `evaluate_model` loop. Images with no present point are left out of every metric.
- L = mean_i mse_i;  score = 1 / (2 L);  rmse_px = S sqrt(L), so score = 1152 / rmse_px^2 exactly
  (1152 = S^2 / 2). Without a mask rmse_px is the root mean squared pixel error over all coordinates;
  with one it is the root of the image-weighted mean (each image's present coordinates averaged first,
  the same weighting as the score).
- NME_i = mean_k(present) ||p_ik - t_ik|| / ||t_ia - t_ib||, where (a, b) are the layout's reference
  points, measured on the TARGET: the outer eye corners ("io", inter-ocular; iBUG points 37 and 46
  1-based) or the eye centres ("ip", inter-pupil; for iBUG 68 the means of each eye's six points). Units cancel,
  so it is the same in pixels and in normalised units. NME_i is undefined (NaN) when either reference
  point is missing, the two coincide, or the image has no present point; such images are left out of
  nme_*, fr10 and auc10 (but kept in the score).
- fr10 = fraction of images with NME_io > 0.10.
- CED(x) = fraction of images with NME_io <= x. auc10 = (1/0.1) * integral_0^0.1 CED(x) dx, integrated
  exactly: each image contributes integral_0^a [e_i <= x] dx = max(0, a - e_i), so
  auc10 = mean_i max(0, 1 - e_i / a) with a = 0.10. 1 means every error is 0; 0 means all are >= a.
"""

from __future__ import annotations

import numpy as np
import torch

from kplab.faces.training.layout import HALF, Layout

# Reference point pairs for NME (subject-left, subject-right), looked up by name in the layout.
NORMALISERS = {
    "io": ("left_eye_outer_corner", "right_eye_outer_corner"),  # inter-ocular
    "ip": ("left_eye_center", "right_eye_center"),  # inter-pupil
}
FAILURE_NME = 0.10  # NME_io above this counts as a failure (FR@0.1) and bounds the AUC@0.1 integral


def to_numpy(x) -> np.ndarray:
    """A float64 NumPy copy of an array or tensor (tensors are detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _check(pred, target, layout: Layout, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes; return float64 pred, target (missing targets zeroed) and a bool mask (N, K)."""
    pred, target = to_numpy(pred), to_numpy(target)
    want = (layout.n_points, 2)
    for label, arr in (("pred", pred), ("target", target)):
        if arr.ndim != 3 or arr.shape[1:] != want:
            raise ValueError(f"{label} must have shape (N, {want[0]}, 2) for layout {layout.name}, "
                             f"got {arr.shape}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    if mask is None:
        if np.isnan(target).any():
            raise ValueError("target has NaN coordinates: pass a mask (N, K) that marks the missing points")
        mask = np.ones(target.shape[:2], dtype=bool)
    else:
        mask = to_numpy(mask).astype(bool) if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=bool)
        if mask.shape != target.shape[:2]:
            raise ValueError(f"mask must have shape {target.shape[:2]}, got {mask.shape}")
    # Missing targets may hold anything (NaN in Kaggle files); zero them so they cannot leak into sums.
    target = np.where(mask[..., None], target, 0.0)
    return pred, target, mask


def _point_errors(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Squared normalised error per coordinate, zero where the point is missing: (N, K, 2)."""
    return np.where(mask[..., None], (pred - target) ** 2, 0.0)


def _per_image_mse(pred, target, mask) -> tuple[np.ndarray, np.ndarray]:
    """(mse_i for images with a present point, boolean selector of those images)."""
    sq = _point_errors(pred, target, mask).sum(axis=(1, 2))  # (N,)
    n_coords = 2 * mask.sum(axis=1)  # (N,)
    keep = n_coords > 0
    return sq[keep] / n_coords[keep], keep


def reference_distance(target: np.ndarray, mask: np.ndarray, layout: Layout, normaliser: str):
    """(distance (N,), defined (N,) bool) between the target's two reference points of `normaliser`.

    The layout names its references ("io": outer eye corners, "ip": pupils or eye-centre means; each
    side a group of points averaged); a layout without them falls back to NORMALISERS' point names.
    A reference is undefined where a point it needs is missing, where its two sides coincide, or
    everywhere when the layout has no such points."""
    if normaliser not in NORMALISERS:
        raise ValueError(f"normaliser must be one of {sorted(NORMALISERS)}, got {normaliser!r}")
    groups = layout.references.get(normaliser)
    if groups is None:
        if not all(name in layout.names for name in NORMALISERS[normaliser]):
            return np.zeros(len(target)), np.zeros(len(target), bool)  # NME undefined for this layout
        groups = tuple((layout.index(name),) for name in NORMALISERS[normaliser])
    sides = [target[:, list(g)].mean(1) for g in groups]  # 2 x (N, 2)
    ref = np.linalg.norm(sides[0] - sides[1], axis=-1)  # (N,)
    present = np.stack([mask[:, list(g)].all(1) for g in groups]).all(0)  # (N,)
    return ref, present & (ref > 0)


def _nme(pred, target, mask, layout: Layout, normaliser: str) -> np.ndarray:
    """Per-image NME (N,), NaN where undefined (see the module docstring)."""
    ref, ref_ok = reference_distance(target, mask, layout, normaliser)
    dist = np.linalg.norm(pred - target, axis=-1)  # (N, K)
    n_present = mask.sum(axis=1)  # (N,)
    mean_dist = np.where(mask, dist, 0.0).sum(axis=1) / np.maximum(n_present, 1)  # (N,)
    ok = ref_ok & (n_present > 0)
    return np.where(ok, mean_dist / np.where(ok, ref, 1.0), np.nan)


def per_image_nme(pred, target, layout: Layout, normaliser: str = "io", mask=None) -> np.ndarray:
    """Per-image NME (N,), normalised by the outer eye corners ("io") or eye centres ("ip") of the target.

    NaN marks images where it is undefined (a reference point missing or no present point).
    """
    pred, target, mask = _check(pred, target, layout, mask)
    return _nme(pred, target, mask, layout, normaliser)


def failure_rate(nme: np.ndarray, max_error: float = FAILURE_NME) -> float:
    """Fraction of images with NME > max_error (NaNs ignored)."""
    e = _finite(nme)
    return float(np.mean(e > max_error)) if e.size else float("nan")


def ced_auc(nme: np.ndarray, max_error: float = FAILURE_NME) -> float:
    """Exact normalised area under the CED curve on [0, max_error]: mean_i max(0, 1 - e_i / max_error)."""
    e = _finite(nme)
    return float(np.mean(np.clip(1.0 - e / max_error, 0.0, 1.0))) if e.size else float("nan")


def ced_curve(nme: np.ndarray, max_error: float = FAILURE_NME, steps: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: thresholds x on a uniform grid over [0, max_error] (`steps` points)
    and the fraction of images with NME <= x. NaNs are ignored."""
    e = np.sort(_finite(nme))
    thresholds = np.linspace(0.0, max_error, steps)
    if e.size == 0:
        return thresholds, np.full(steps, np.nan)
    return thresholds, np.searchsorted(e, thresholds, side="right") / e.size


def _finite(nme) -> np.ndarray:
    e = to_numpy(nme).ravel()
    return e[np.isfinite(e)]


def keypoint_metrics(pred, target, layout: Layout, mask=None) -> dict[str, float]:
    """The I2DL score and field metrics for one set of predictions (definitions in the module docstring).

    Keys: score, mse, rmse_px, nme_io, nme_ip, fr10, auc10, n_images (images with a present point).
    """
    pred, target, mask = _check(pred, target, layout, mask)
    mse_i, keep = _per_image_mse(pred, target, mask)
    if mse_i.size == 0:
        raise ValueError("no image has a present keypoint: nothing to evaluate")
    loss = float(mse_i.mean())
    nme_io = _nme(pred, target, mask, layout, "io")
    nme_ip = _nme(pred, target, mask, layout, "ip")
    return {
        "score": 1.0 / (2.0 * loss) if loss > 0 else float("inf"),
        "mse": loss,
        "rmse_px": HALF * float(np.sqrt(loss)),
        "nme_io": float(np.nanmean(nme_io)) if np.isfinite(nme_io).any() else float("nan"),
        "nme_ip": float(np.nanmean(nme_ip)) if np.isfinite(nme_ip).any() else float("nan"),
        "fr10": failure_rate(nme_io),
        "auc10": ced_auc(nme_io),
        "n_images": int(keep.sum()),
    }


def per_keypoint_table(pred, target, layout: Layout, mask=None) -> list[dict]:
    """One row per keypoint: name, n (images where it is present), mean_px and median_px (Euclidean
    pixel error), rmse_px (per coordinate, like the global rmse_px: sqrt(mean(dx^2 + dy^2) / 2)) and
    nme_io (mean of the point's error / the target's outer-eye-corner distance, over images where that
    is defined). Without a mask, mean over points of rmse_px^2 equals the global rmse_px^2 and mean
    over points of nme_io equals the global nme_io."""
    pred, target, mask = _check(pred, target, layout, mask)
    dist_px = HALF * np.linalg.norm(pred - target, axis=-1)  # (N, K)
    ref, ref_ok = reference_distance(target, mask, layout, "io")
    ref_px = HALF * ref  # (N,)
    nme_mask = mask & ref_ok[:, None]  # (N, K)
    masked = np.where(mask, dist_px, np.nan)  # (N, K); NaN = missing, so nan-reductions skip it
    normed = np.where(nme_mask, dist_px / np.where(ref_ok, ref_px, 1.0)[:, None], np.nan)  # (N, K)
    n = mask.sum(axis=0)  # (K,)
    n_nme = nme_mask.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-missing columns give NaN, on purpose
        mean_px = np.nansum(masked, axis=0) / n
        rmse_px = np.sqrt(np.nansum(masked ** 2, axis=0) / (2 * n))
        nme = np.nansum(normed, axis=0) / n_nme
        median_px = np.full(layout.n_points, np.nan)
        present_cols = n > 0
        median_px[present_cols] = np.nanmedian(masked[:, present_cols], axis=0)
    return [
        {"name": name, "n": int(n[k]), "mean_px": float(mean_px[k]), "median_px": float(median_px[k]),
         "rmse_px": float(rmse_px[k]), "nme_io": float(nme[k])}
        for k, name in enumerate(layout.names)
    ]


def per_region_table(pred, target, layout: Layout, mask=None) -> list[dict]:
    """One row per region of the layout (e.g. jaw, brows, nose, eyes, mouth): name, points, mean_px (mean
    Euclidean pixel error over the region's present points) and nme_io (that error over the target's
    outer-eye-corner distance, averaged over images where it is defined), then a row for all points."""
    pred, target, mask = _check(pred, target, layout, mask)
    dist = np.linalg.norm(pred - target, axis=-1)  # (N, K) normalised units
    ref, ref_ok = reference_distance(target, mask, layout, "io")
    regions = {**layout.regions, "all": tuple(range(layout.n_points))}
    rows = []
    for name, index in regions.items():
        m = mask[:, list(index)]  # (N, R)
        d = np.where(m, dist[:, list(index)], 0.0).sum(1)  # (N,)
        n = m.sum(1)  # (N,)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_px = HALF * d.sum() / n.sum()
            per_image = np.where(ref_ok & (n > 0), d / np.maximum(n, 1) / np.where(ref_ok, ref, 1.0), np.nan)
        rows.append({"region": name, "points": len(index), "mean_px": float(mean_px),
                     "nme_io": float(np.nanmean(per_image)) if np.isfinite(per_image).any() else float("nan")})
    return rows


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict], columns) -> str:
    """A plain-text table: one header line, a rule, one line per row; numbers right-aligned
    (floats to 4 significant digits), text left-aligned. A missing key prints as '-'."""
    columns = list(columns)
    cells = [[_cell(row[c]) if c in row else "-" for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), (int, float, np.number)) for row in rows) for c in columns]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
