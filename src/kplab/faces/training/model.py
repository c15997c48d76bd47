"""Keypoint CNNs: a small residual backbone with a soft-argmax heatmap head (or a regression head).

Every model maps (N, 1, 96, 96) images in [0, 1] to (N, 2K) I2DL-normalised coordinates, so it drops
into the I2DL notebook (`model(image).view(-1, 15, 2)`), and carries an `hparams` dict like the
course's models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from kplab import checkpoint
from kplab.config import from_dict, to_dict
from kplab.errors import CheckpointError
from kplab.faces.training.layout import HALF, IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE, Layout, get_layout

# I2DL model limits.
MAX_PARAMS = 5_000_000
MAX_FILE_MB = 20.0


@dataclass
class ModelConfig:
    head: str = "heatmap"                  # "heatmap" (soft-argmax over K maps) or "regression"
    # The defaults are the shipped network: 0.5 M parameters, 95 MFLOPs per face, under 1 ms in ONNX
    # Runtime on one laptop core (README, Speed). The `best` preset widens it (faces-best.toml).
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels per stage; stage s runs at stride 2**(s+1)
    blocks: tuple[int, ...] = (0, 1, 1, 1)       # residual blocks per stage
    heatmap_stride: int = 8                # heatmap resolution = 96 / stride (8 -> 12x12)
    head_width: int = 32                   # channels of the upsampling path
    dropout: float = 0.1                   # Dropout2d before the head: whole feature maps, as suits convs
    softargmax_beta: float = 1.0           # initial inverse temperature (learned)
    # Dense supervision: also predict a denser layout's points (training sees them where the data has
    # them, e.g. the 68 iBUG points behind faces15.npz's 15). "aux": the output points keep their own
    # heatmaps and the dense ones are an extra task; "derive": the output points are the dense layout's
    # derivation of its own (a Kaggle eye centre = the mean of six predicted eye points).
    dense_layout: str = ""                 # a registered layout name, or "" for none
    dense_mode: str = "aux"


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1, act: bool = True):
        layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c), ConvBN(c, c, act=False))

    def forward(self, x):
        return F.relu(x + self.body(x))


class Backbone(nn.Module):
    """Stride-2 stem, then one stride-2 downsampling conv + residual blocks per stage."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        self.stem = ConvBN(1, widths[0], stride=2)  # (N, w0, 48, 48)
        stages, cin = [], widths[0]
        for i, (w, b) in enumerate(zip(widths, blocks)):
            down = ConvBN(cin, w, stride=2) if i > 0 else ConvBN(cin, w)
            stages.append(nn.Sequential(down, *[ResBlock(w) for _ in range(b)]))
            cin = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)  # strides 2, 4, 8, 16, ...
        return feats


def _cell_centres(size: int) -> torch.Tensor:
    """I2DL-normalised coordinates of the centres of `size` equal cells spanning the image."""
    px = (torch.arange(size, dtype=torch.float32) + 0.5) * (IMAGE_SIZE / size) - 0.5 + PIXEL_CENTRE
    return (px - HALF) / HALF


class KeypointNet(nn.Module):
    def __init__(self, cfg: ModelConfig, layout: Layout = KAGGLE15):
        super().__init__()
        self.cfg, self.layout = cfg, layout
        self.hparams = {"model": to_dict(cfg), "layout": layout.to_dict()}
        self.backbone = Backbone(cfg.widths, cfg.blocks)
        self.drop = nn.Dropout2d(cfg.dropout)
        k = layout.n_points
        self.dense_layout = get_layout(cfg.dense_layout) if cfg.dense_layout else None
        if self.dense_layout is not None:
            if cfg.dense_mode not in ("aux", "derive"):
                raise ValueError(f"unknown dense_mode {cfg.dense_mode!r}; use 'aux' or 'derive'")
            derive = cfg.dense_mode == "derive"
            # (K, K_dense) mean weights; raises when the dense layout cannot give this layout's points
            self.register_buffer("derive", torch.as_tensor(self.dense_layout.converter(layout), dtype=torch.float32)
                                 if derive else torch.zeros(0), persistent=False)
            k = (0 if derive else k) + self.dense_layout.n_points  # every predicted point, output ones first
        if cfg.head == "heatmap":
            # Top-down path: the deepest features are upsampled stage by stage to the heatmap
            # stride, adding a 1x1 lateral of each stage on the way (a minimal FPN).
            strides = [2 ** (i + 1) for i in range(len(cfg.widths))]
            if cfg.heatmap_stride not in strides:
                raise ValueError(f"heatmap_stride must be one of {strides}")
            self.first_level = strides.index(cfg.heatmap_stride)
            self.laterals = nn.ModuleList(
                nn.Conv2d(w, cfg.head_width, 1) for w in cfg.widths[self.first_level:])
            self.smooth = ConvBN(cfg.head_width, cfg.head_width)
            self.to_heatmaps = nn.Conv2d(cfg.head_width, k, 1)
            size = IMAGE_SIZE // cfg.heatmap_stride
            self.register_buffer("grid", _cell_centres(size), persistent=False)
            self.log_beta = nn.Parameter(torch.tensor(float(cfg.softargmax_beta)).log())
        elif cfg.head == "regression":
            self.fc = nn.Linear(cfg.widths[-1], 2 * k)
        else:
            raise ValueError(f"unknown head {cfg.head!r}; use 'heatmap' or 'regression'")

    def heatmaps(self, x) -> torch.Tensor:
        feats = self.backbone(x)[self.first_level:]
        y = self.laterals[-1](self.drop(feats[-1]))
        for lateral, f in zip(reversed(self.laterals[:-1]), reversed(feats[:-1])):
            y = F.interpolate(y, size=f.shape[-2:], mode="bilinear", align_corners=False) + lateral(f)
        return self.to_heatmaps(self.smooth(y))  # (N, K, S, S) logits

    def predicted_points(self, x) -> torch.Tensor:
        """Every point the network predicts (N, K_all, 2): the output layout's, then the dense layout's."""
        n = x.shape[0]
        if self.cfg.head == "regression":
            f = self.drop(self.backbone(x)[-1]).mean((2, 3))
            return self.fc(f).view(n, -1, 2)
        logits = self.heatmaps(x) * self.log_beta.exp()  # (N, K, S, S)
        s = logits.shape[-1]
        prob = logits.flatten(2).softmax(-1).view(n, -1, s, s)
        x_coord = (prob.sum(2) * self.grid).sum(-1)  # (N, K): marginal over rows, expectation over columns
        y_coord = (prob.sum(3) * self.grid).sum(-1)
        return torch.stack((x_coord, y_coord), -1)  # (N, K, 2)

    def forward_dense(self, x) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output points (N, K, 2), dense points (N, K_dense, 2) or None without dense supervision)."""
        points = self.predicted_points(x)
        if self.dense_layout is None:
            return points, None
        dense = points[:, points.shape[1] - self.dense_layout.n_points:]
        if self.derive.numel():
            return torch.einsum("kd,ndc->nkc", self.derive.to(dense.dtype), dense), dense
        return points[:, :self.layout.n_points], dense

    def forward(self, x, dense: bool = False) -> torch.Tensor:
        """(N, 2K) output coordinates; with `dense`, (N, K + K_dense, 2) output then dense points (training:
        a keyword rather than a second method, so a DistributedDataParallel wrapper sees the call)."""
        points, dense_points = self.forward_dense(x)
        if not dense:
            return points.flatten(1)
        return points if dense_points is None else torch.cat([points, dense_points], 1)


def build_model(cfg: ModelConfig, layout: Layout = KAGGLE15) -> KeypointNet:
    return KeypointNet(cfg, layout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_i2dl_limits(n_params: int, file_mb: float) -> None:
    """Raise if a model breaks the I2DL limits (< 5 M parameters, saved file < 20 MB)."""
    if n_params >= MAX_PARAMS:
        raise ValueError(f"{n_params:,} parameters: the I2DL limit is fewer than {MAX_PARAMS:,}")
    if file_mb >= MAX_FILE_MB:
        raise ValueError(f"saved model is {file_mb:.1f} MB: the I2DL limit is under {MAX_FILE_MB:.0f} MB")


def save_model(directory: str | Path, model: KeypointNet, extra: dict | None = None) -> Path:
    """Write DIR/model.safetensors + DIR/model.json (architecture, layout, normalisation, extra)."""
    from kplab import __version__

    meta = {
        "kplab_version": __version__,
        "task": "faces",
        "model": to_dict(model.cfg),
        "layout": model.layout.to_dict(),
        "normalisation": {"image": "pixel/255", "keypoints": f"(kp - {HALF}) / {HALF}",
                          "image_size": IMAGE_SIZE, "pixel_centre": PIXEL_CENTRE},
        "n_params": count_params(model),
        **(extra or {}),
    }
    path = checkpoint.save(directory, model.state_dict(), meta)
    check_i2dl_limits(meta["n_params"], path.stat().st_size / 1e6)
    return path


def recorded_tta(meta: dict) -> bool:
    """Whether a model predicts with flip TTA unless told otherwise: one trained with `val_tta` was
    validated and picked that way, so its recorded val score is what it delivers with it."""
    return bool(meta.get("flip_tta", False))


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> KeypointNet:
    """Rebuild the model from DIR/model.json and load DIR/model.safetensors; eval mode."""
    tensors, meta = checkpoint.load(directory)
    if meta.get("task") != "faces":
        raise CheckpointError(f"{directory}: not a face keypoint model (task={meta.get('task')!r})")
    model = build_model(from_dict(ModelConfig, meta["model"]), Layout.from_dict(meta["layout"]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:  # missing, unexpected or mis-shaped tensors
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise CheckpointError(f"{directory}: weights do not fit the architecture in model.json ({first})") from None
    model.hparams.update({k: meta[k] for k in ("config", "metrics") if k in meta})
    return model.to(device).eval()
