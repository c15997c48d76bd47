"""Inference over a face set and its metrics (the `evaluate` phase, shared by training and the CLI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.layout import Layout, normalise
from kplab.faces.training.metrics import keypoint_metrics
from kplab.faces.training.augment import flip_faces


class DerivedLayout(torch.nn.Module):
    """A model that answers in a layout its own derives: (N, 1, 96, 96) -> (N, 2 K_target)."""

    def __init__(self, model: torch.nn.Module, weights: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, x):
        points = self.model(x).view(len(x), self.weights.shape[1], 2)  # (N, K, 2)
        return torch.einsum("tk,nkc->ntc", self.weights.to(points.dtype), points).flatten(1)  # (N, 2 K_target)


def in_layout(model: torch.nn.Module, model_layout: Layout, target: Layout) -> torch.nn.Module:
    """`model` itself, or wrapped to answer in `target`'s points (raises when its layout cannot)."""
    if target.names == model_layout.names:
        return model
    return DerivedLayout(model, model_layout.converter(target))


def to_tensors(faces: FaceSet, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, 1, 96, 96) float in [0, 1], normalised points (N, K, 2) with 0 where missing, mask (N, K)."""
    return image_tensor(faces.images, device), *label_tensors(faces, device)


def image_tensor(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 (N, 96, 96) -> float (N, 1, 96, 96) in [0, 1] on `device`."""
    if not images.flags.writeable:  # a read-only memory map (packed.py): torch wants its own copy
        images = np.array(images)
    return torch.from_numpy(images).to(device).unsqueeze(1).float().div_(255)


def label_tensors(faces: FaceSet, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised points (N, K, 2) with 0 where missing, and the mask (N, K) of present points."""
    mask = torch.from_numpy(faces.mask).to(device)
    points = torch.from_numpy(np.nan_to_num(normalise(faces.keypoints), nan=0.0)).float().to(device)
    return points, mask


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, layout: Layout, tta: bool = False,
            batch_size: int = 64, dense: bool = False) -> torch.Tensor:
    """Normalised keypoints (N, K, 2) for images (N, 1, 96, 96); `tta` averages with the mirrored image.
    `dense`: every point a KeypointNet predicts, its output points then its dense ones, with `layout` the
    two stacked (`layout.stacked`), so the mirror swaps each set's own pairs.

    Chunks of 64 give the same numbers as 256 (checked bit for bit on faces15 val), hold a quarter of
    the activations and ran faster here (0.76 against 1.3 s for the 752 val faces, one thread)."""
    model.eval()

    def points(x):
        return model(x, dense=True) if dense else model(x).view(len(x), layout.n_points, 2)

    out = []
    for chunk in images.split(batch_size):
        chunk = chunk.contiguous(memory_format=torch.channels_last)
        pred = points(chunk)
        if tta:
            mirrored = chunk.flip(-1)
            _, back = flip_faces(mirrored, points(mirrored), layout)  # mirror points back
            pred = (pred + back) / 2
        out.append(pred)
    return torch.cat(out)


def evaluate(model, images, points, mask, layout: Layout, tta: bool = False) -> tuple[torch.Tensor, dict]:
    """Predict and score; returns (predictions (N, K, 2), metrics dict)."""
    pred = predict(model, images, layout, tta=tta)
    return pred, keypoint_metrics(pred, points, layout, mask=mask)


def write_training_figures(out: str | Path, history: list[dict], val_set: FaceSet) -> None:
    """OUT/curves.png (loss and val score per epoch) and OUT/val_grid.png (best model on val faces)."""
    from kplab.faces.training import report
    from kplab.faces.training.model import load_model

    out = Path(out)
    report.plot_curves(history, out / "curves.png")
    model = load_model(out)
    images, points, mask = to_tensors(val_set)
    pred = predict(model, images, val_set.layout)
    n = min(16, len(val_set))
    pick = np.random.default_rng(0).choice(len(val_set), n, replace=False)
    report.plot_face_grid(val_set.images[pick], pred[pick].numpy(), points[pick].numpy(), val_set.layout,
                          out / "val_grid.png")


def evaluation_report(model, faces: FaceSet, out: str | Path, tta: bool = False) -> tuple[dict, str]:
    """Metrics plus OUT/{metrics.json, ced.png, keypoints.csv, worst.png, random.png}; returns (metrics, text)."""
    from kplab import checkpoint
    from kplab.faces.training import report
    from kplab.faces.training.metrics import format_table, per_image_nme, per_keypoint_table, per_region_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layout = faces.layout
    device = next(model.parameters(), torch.empty(0)).device  # an ONNX Runtime model has no parameters
    images, points, mask = to_tensors(faces, device)
    pred, metrics = evaluate(model, images, points, mask, layout, tta=tta)
    pred, target, mask = pred.cpu().numpy(), points.cpu().numpy(), faces.mask
    nme = per_image_nme(pred, target, layout, mask=mask)
    rows = per_keypoint_table(pred, target, layout, mask=mask)
    regions = per_region_table(pred, target, layout, mask=mask)
    metrics = {**metrics, "layout": layout.name,
               "regions": {r["region"]: {"mean_px": r["mean_px"], "nme_io": r["nme_io"]} for r in regions}}
    checkpoint.atomic_write_json(out / "metrics.json", metrics)
    report.plot_ced({f"{faces.source or 'faces'}": nme}, out / "ced.png")
    report.write_keypoint_table(rows, out / "keypoints.csv")
    worst, random = report.worst_and_random(nme, min(16, len(faces)), seed=0)
    titles = [f"NME {100 * v:.1f}%" for v in nme]
    for name, idx in (("worst", worst), ("random", random)):
        shown = np.where(mask[idx, :, None], target[idx], np.nan)  # missing points are not drawn
        report.plot_face_grid(faces.images[idx], pred[idx], shown, layout, out / f"{name}.png",
                              titles=[titles[i] for i in idx])
    summary = format_table([{"metric": k, "value": v} for k, v in metrics.items() if k not in ("regions", "layout")],
                           ["metric", "value"])
    text = (f"{faces.source}: {len(faces)} faces, layout {layout.name}{' (flip TTA)' if tta else ''}\n{summary}\n\n"
            f"{format_table(regions, list(regions[0]))}\n\n"
            f"{format_table(rows, list(rows[0]))}\n\nfigures and tables in {out}")
    return metrics, text
