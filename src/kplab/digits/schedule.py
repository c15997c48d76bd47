"""Learning-rate schedules as pure functions of the step, applied by `set_lr`."""

from __future__ import annotations

import math

import torch

from kplab.errors import ConfigError

SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base lr at `step` of `total`: constant 1, or cosine ½(1 + cos(π·step/total))."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ConfigError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Scale every group's own base lr (kept in `base_lr`, so discriminative rates keep their ratio)."""
    for group in optimizer.param_groups:
        group["lr"] = group.setdefault("base_lr", group["lr"]) * factor
