"""The I2DL split of the MNIST training set, deterministic from a seed.

Per class (after one seeded shuffle of each class's indices): the first n_train/10 go to labeled
train, the next n_val/10 to labeled val, the next n_test/10 to labeled test. Everything left is
pooled, shuffled, and its first 1,000 become unlabeled val; the rest is unlabeled train. No image is
in two parts. When a labeled size is not a multiple of 10 the first classes get one extra image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kplab.digits.data import CLASSES
from kplab.digits.recipe import SplitConfig
from kplab.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """Indices into the MNIST training set."""

    labeled_train: np.ndarray
    labeled_val: np.ndarray
    labeled_test: np.ndarray
    unlabeled_val: np.ndarray
    unlabeled_train: np.ndarray


def per_class(total: int) -> np.ndarray:
    """How many images of each class a labeled part of `total` images takes (10 classes)."""
    counts = np.full(CLASSES, total // CLASSES)
    counts[: total % CLASSES] += 1
    return counts  # (10,)


def i2dl_split(labels: np.ndarray, cfg: SplitConfig) -> Split:
    if cfg.labeled_train < CLASSES:
        raise ConfigError(f"split.labeled_train={cfg.labeled_train}: need at least one label per class (10)")
    if min(cfg.labeled_val, cfg.labeled_test, cfg.unlabeled_val) < 0:
        raise ConfigError("split sizes must not be negative")
    rng = np.random.default_rng(cfg.seed)
    sizes = [per_class(cfg.labeled_train), per_class(cfg.labeled_val), per_class(cfg.labeled_test)]
    parts: list[list[np.ndarray]] = [[], [], []]
    rest = []
    for c in range(CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        need = sum(int(s[c]) for s in sizes)
        if len(idx) < need:
            raise DataError(f"class {c} has {len(idx)} training images; the split needs {need}")
        start = 0
        for part, s in zip(parts, sizes):
            part.append(idx[start: start + s[c]])
            start += s[c]
        rest.append(idx[start:])
    pool = rng.permutation(np.concatenate(rest))
    if len(pool) < cfg.unlabeled_val:
        raise DataError(f"only {len(pool)} images left for unlabeled val ({cfg.unlabeled_val} asked)")
    return Split(
        labeled_train=np.concatenate(parts[0]),
        labeled_val=np.concatenate(parts[1]),
        labeled_test=np.concatenate(parts[2]),
        unlabeled_val=pool[: cfg.unlabeled_val],
        unlabeled_train=pool[cfg.unlabeled_val:],
    )
