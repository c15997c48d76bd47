"""Training: one plain loop (AdamW, warm-up + cosine, weight EMA, masked loss, best-by-val checkpoint).

Every epoch ends with an atomic training-state checkpoint, one file OUT/state/train.safetensors, so a
run killed at any moment resumes (`resume=True`) from the last finished epoch. All randomness of epoch e comes from generators
seeded with (seed, e), so a resumed run continues exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kplab import checkpoint, distributed
from kplab.config import to_dict
from kplab.errors import ConfigError
from kplab.faces.training.augment import AugmentConfig, Augmenter
from kplab.faces.training.batches import FaceTensors
from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.layout import HALF, get_layout
from kplab.faces.training.evaluate import evaluate, to_tensors
from kplab.faces.training.model import ModelConfig, build_model, count_params, save_model
from kplab.progress import bar, say


LOSSES = ("l1", "mse", "smooth_l1", "wing")
WING_PX = (4.0, 0.5)  # wing loss width and curvature in pixels, around the default's val RMSE of 1.4 px


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 45              # the defaults are the `default` preset (about five minutes on 2 cores)
    epoch_steps: int = 0          # 0: an epoch is one pass over the training set; N: at most N steps
    batch_size: int = 32          # the global batch: under torchrun each rank takes its share of it
    sync_batchnorm: bool = True   # under torchrun: BN statistics of the global batch (false: per rank)
    lr: float = 2e-3              # peak learning rate after warm-up
    min_lr_ratio: float = 0.01    # cosine decays to lr * min_lr_ratio
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    loss: str = "l1"              # "l1" | "mse" | "smooth_l1" | "wing" on normalised coordinates, masked
    wing_px: tuple[float, float] = WING_PX  # the wing loss's width and curvature, in pixels
    dense_weight: float = 1.0     # weight of the dense points' loss (model.dense_layout) beside the output points'
    ema_decay: float = 0.998      # per step; the EMA weights are what gets evaluated and saved
    grad_clip: float = 5.0
    val_tta: bool = False         # also average with the flipped image when validating
    threads: int = 0              # torch threads; 0 = all cores
    seed: int = 0


def learning_rate(step: int, total_steps: int, warmup_steps: int, lr: float, min_ratio: float) -> float:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_ratio` at `total_steps`."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def wing_loss(pred: torch.Tensor, target: torch.Tensor, width: float, curvature: float) -> torch.Tensor:
    """Per-coordinate wing loss (Feng et al. 2018): width * ln(1 + |d| / curvature) below `width`, where it
    pulls harder on small errors than L1 does, and |d| - C beyond (C makes the two pieces meet)."""
    d = (pred - target).abs()
    joint = width - width * math.log1p(width / curvature)
    return torch.where(d < width, width * torch.log1p(d / curvature), d - joint)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str,
                wing_px: tuple[float, float] = WING_PX) -> torch.Tensor:
    """Mean loss over present coordinates. pred/target (N, K, 2) normalised, mask (N, K) bool."""
    if kind == "wing":
        per_coord = wing_loss(pred, target, *(v / HALF for v in wing_px))  # pixels -> normalised units
    else:
        per_coord = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}[kind](
            pred, target, reduction="none")  # (N, K, 2)
    weights = mask.unsqueeze(-1).expand_as(per_coord).to(per_coord.dtype)
    return (per_coord * weights).sum() / weights.sum().clamp(min=1)


def supervised_loss(pred: torch.Tensor, y: torch.Tensor, m: torch.Tensor, cfg: TrainConfig,
                    ranks=distributed.Ranks()) -> torch.Tensor:
    """The output points' masked loss, plus `dense_weight` times the dense points' where the batch has them.

    pred (B, K [+ K_dense], 2) as `model(x, dense=True)` gives; y, m (B, K [+ K_dense], ...): the dense
    columns are there when the data carries dense points. A heatmap head cannot place a point outside
    the image (the jaw of a tight crop): such dense points are left out rather than pulled to the border."""
    n_out = pred.shape[1] - (get_layout(cfg.model.dense_layout).n_points if cfg.model.dense_layout else 0)
    own = masked_loss(pred[:, :n_out], y[:, :n_out], m[:, :n_out], cfg.loss, cfg.wing_px)
    loss = distributed.as_global_mean(own, m[:, :n_out], ranks)
    if y.shape[1] == n_out:
        return loss
    dense_mask = m[:, n_out:]
    if cfg.model.head == "heatmap":
        dense_mask = dense_mask & (y[:, n_out:].abs() <= 1).all(-1)
    dense = masked_loss(pred[:, n_out:], y[:, n_out:], dense_mask, cfg.loss, cfg.wing_px)
    return loss + cfg.dense_weight * distributed.as_global_mean(dense, dense_mask, ranks)


class EMA:
    """Exponential moving average of a model's parameters and buffers (BN statistics copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Short warm-up of the decay so early averages are not dominated by the random init.
        d = min(self.decay, (1 + step) / (10 + step))
        for e, m in zip(self.model.parameters(), model.parameters()):
            e.lerp_(m.detach(), 1 - d)
        for e, m in zip(self.model.buffers(), model.buffers()):
            e.copy_(m)


def train_one_epoch(model, ema, optimizer, augmenter, data: FaceTensors, cfg: TrainConfig, epoch: int,
                    steps_per_epoch: int, total_steps: int, ranks=distributed.Ranks()) -> float:
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    torch.manual_seed(ranks.seed(cfg.seed * 100_003 + epoch))  # dropout draws from the global generator
    order = torch.randperm(len(data), generator=gen)  # the same on every rank
    model.train()
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    running, progress = 0.0, bar(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}")
    for i in progress:
        step = epoch * steps_per_epoch + i
        batch = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
        share = ranks.share(len(batch))  # this rank's rows of the global batch (all of it when alone)
        ranks.log_rows(epoch, i, batch[share])
        x, y, m = augmenter(*data[batch[share]], gen, share=share, batch=len(batch))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total_steps, warmup, cfg.lr, cfg.min_lr_ratio)
        pred = model(x.contiguous(memory_format=torch.channels_last), dense=True)  # (B, K [+ K_dense], 2)
        loss = supervised_loss(pred, y, m, cfg, ranks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if ema is not None:  # rank 0 only
            ema.update(model, step)
        running += (loss.item() - running) / (i + 1)
        progress.set_postfix(loss=f"{running:.4f}")
    progress.close()
    return distributed.mean(running, ranks)


def _state_tensors(model, ema, optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten everything needed to resume into tensors + JSON (no pickle)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value)
    return tensors, {"param_groups": opt["param_groups"]}


def _restore_state(tensors, meta, model, ema, optimizer) -> None:
    def strip(prefix):
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict(strip("model."))
    if ema is not None:
        ema.model.load_state_dict(strip("ema."))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in strip("optim.").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def train(cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet, out: str | Path,
          device: str = "cpu", resume: bool = False, config_extra: dict | None = None) -> dict[str, Any]:
    """Train, keep the best EMA weights by val score in OUT/model.*; return the final metrics dict."""
    out = Path(out)
    if cfg.loss not in LOSSES:
        raise ConfigError(f"loss = {cfg.loss!r}: use one of {', '.join(LOSSES)}")
    ranks = distributed.start(device)  # under torchrun: join the other ranks (see distributed.py)
    device = ranks.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    layout = train_set.layout
    if cfg.model.dense_layout and get_layout(cfg.model.dense_layout).names == layout.names:
        # A recipe with dense supervision (the default preset) trained on the dense layout itself (68 points)
        say(f"note: the data's own layout is {layout.name}, the dense layout: trained without a second set of points")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dense_layout=""))
    model = build_model(cfg.model, layout).to(device).to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema_decay) if ranks.main else None
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on BN, biases, temperature
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    train_data = train_set  # what the batches hold: with dense supervision, the dense points appended
    if cfg.model.dense_layout:  # the dense points ride along as more points through augmentation
        dense = get_layout(cfg.model.dense_layout)
        if train_set.dense_layout is not None and train_set.dense_layout.names == dense.names:
            train_data = train_set.with_dense_stacked()
        else:  # the network is the same; only the output points are supervised
            say(f"note: {train_set.source or 'the training data'} carries no {dense.name} points, so only its "
                f"{layout.n_points} points are supervised (faces15.npz carries the 68 as keypoints68; a 68-point "
                f"source read with --layout {layout.name} keeps them)")
    augmenter = Augmenter(cfg.augment, train_data.layout)
    data = FaceTensors(train_data, device)  # a packed set stays on disk and is read batch by batch
    val = to_tensors(val_set, device)
    steps_per_epoch = len(train_set) // cfg.batch_size  # drop the ragged last batch (BN needs > 1)
    if cfg.epoch_steps > 0:
        steps_per_epoch = min(steps_per_epoch, cfg.epoch_steps)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training faces is fewer than one batch of {cfg.batch_size}")
    total_steps = cfg.epochs * steps_per_epoch

    saved_config = {"train": to_dict(cfg), **(config_extra or {})}
    # The training faces' mean keypoints (pixels): `predict` frames new faces to match them, unless the
    # crops were cut from photos onto a known framing target, which then travels instead.
    framing = {"mean_shape": np.nanmean(train_set.keypoints, axis=0).round(3).tolist()}  # (K, 2)
    if train_set.framing_target is not None:
        framing["framing_target"] = train_set.framing_target.round(3).tolist()
    history: list[dict[str, Any]] = []
    best, start_epoch = -math.inf, 0
    state_file = out / "state" / "train.safetensors"  # one file: a kill cannot split tensors from metadata
    if resume and state_file.is_file():
        tensors, meta = checkpoint.load_state(state_file)
        if meta.get("config") != to_dict(cfg):
            raise ConfigError(f"{out}: --resume needs the same config as the interrupted run "
                              f"(saved in {state_file})")
        _restore_state(tensors, meta, model, ema, optimizer)  # every rank resumes from rank 0's state
        history, best, start_epoch = meta["history"], meta["best_score"], meta["epoch"] + 1
        say(f"resuming {out} after epoch {start_epoch} (best val score so far {best:.1f})")
    elif resume:
        say(f"nothing to resume in {out}; starting from scratch")

    say(f"model: {count_params(model):,} parameters; {len(train_set)} train / {len(val_set)} val faces; "
        f"{steps_per_epoch} steps per epoch")
    t0 = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    trained = distributed.wrap(model, ranks, cfg.sync_batchnorm)  # DDP under torchrun, else `model`
    for epoch in range(start_epoch, cfg.epochs):
        loss = train_one_epoch(trained, ema, optimizer, augmenter, data, cfg, epoch,
                               steps_per_epoch, total_steps, ranks)
        if not ranks.main:
            continue  # evaluation, checkpoints and logs are rank 0's
        _, metrics = evaluate(ema.model, *val, layout, tta=cfg.val_tta)
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_score": metrics["score"],
                        "val_rmse_px": metrics["rmse_px"], "val_nme_io": metrics["nme_io"],
                        "elapsed_s": time.perf_counter() - t0})
        improved = metrics["score"] > best
        if improved:
            best = metrics["score"]
            save_model(out, ema.model, {"config": saved_config, **framing, "flip_tta": cfg.val_tta,
                                         "metrics": {"val": metrics, "epoch": epoch + 1}})
        say(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}  val score {metrics['score']:.1f}  "
            f"rmse {metrics['rmse_px']:.2f}px  nme_io {100 * metrics['nme_io']:.2f}%"
            f"{'  (best)' if improved else ''}  [{history[-1]['elapsed_s']:.0f}s]")
        tensors, meta = _state_tensors(model, ema, optimizer)
        checkpoint.save_state(state_file, tensors, {**meta, "epoch": epoch, "history": history,
                                                    "best_score": best, "config": to_dict(cfg)})
    summary = {"best_val_score": best, "epochs": cfg.epochs, "wall_s": history[-1]["elapsed_s"] if history else 0,
               "n_params": count_params(model), "history": history}
    if ranks.main:
        checkpoint.atomic_write_json(out / "metrics.json", summary)
    distributed.finish(ranks)
    return summary
