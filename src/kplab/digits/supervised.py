"""The supervised term of stages 2 and 3: balanced labeled batches, strong aug, mixup, smoothed CE.

    x̃ = λ·aug(x) + (1-λ)·aug(x)[perm],  λ ~ Beta(α, α)
    L_sup = λ·CE_ε(f(x̃), y) + (1-λ)·CE_ε(f(x̃), y[perm])
where CE_ε is cross-entropy with label smoothing ε. CE is linear in its target, so this equals CE
against the mixed smoothed target λ·t(y) + (1-λ)·t(y[perm]) (the tests check that identity).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import WeightedRandomSampler

from kplab.digits import augment
from kplab.digits.recipe import AugmentConfig, SupervisedConfig


def balanced_sampler(labels: torch.Tensor, num_samples: int, gen: torch.Generator | None) -> WeightedRandomSampler:
    """Draws each class equally often on average: weight of an image = 1 / (count of its class)."""
    labels = labels.cpu()  # the sampler draws on the CPU generator
    counts = torch.bincount(labels)  # (C,)
    weights = 1.0 / counts[labels].double()  # (N,)
    return WeightedRandomSampler(weights, num_samples=num_samples, replacement=True, generator=gen)


def epoch_batches(labels: torch.Tensor, cfg: SupervisedConfig, gen: torch.Generator | None) -> list[torch.Tensor]:
    """One sampler epoch (cfg.samples_per_epoch draws) cut into index batches of cfg.batch_size."""
    order = torch.tensor(list(balanced_sampler(labels, cfg.samples_per_epoch, gen)))  # (S,)
    return list(order.split(cfg.batch_size))


def endless_batches(labels: torch.Tensor, cfg: SupervisedConfig, gen: torch.Generator | None) -> Iterator[torch.Tensor]:
    """Labeled index batches forever, one sampler epoch after another (stage 3 draws one per step)."""
    while True:
        yield from epoch_batches(labels, cfg, gen)


def mix(x: torch.Tensor, alpha: float, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup inputs: (λ·x + (1-λ)·x[perm], perm, λ); alpha <= 0 means no mixing (λ = 1)."""
    if alpha <= 0:
        return x, torch.arange(len(x)), 1.0
    # Beta(α, α) from two Gammas, so the draw comes from our generator.
    a = torch._standard_gamma(torch.full((2,), float(alpha)), generator=gen)
    lam = float(a[0] / a.sum())
    perm = torch.randperm(len(x), generator=gen)
    return lam * x + (1 - lam) * x[perm], perm, lam


def mixup_loss(logits: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, lam: float,
               smoothing: float) -> torch.Tensor:
    """λ·CE_ε(logits, y) + (1-λ)·CE_ε(logits, y[perm]); logits (N, C), y (N,)."""
    loss = lam * F.cross_entropy(logits, y, label_smoothing=smoothing)
    if lam < 1.0:
        loss = loss + (1 - lam) * F.cross_entropy(logits, y[perm], label_smoothing=smoothing)
    return loss


def prepare(x: torch.Tensor, sup: SupervisedConfig, aug: AugmentConfig, use_mixup: bool,
            gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Strong aug then mixup on a labeled batch (N, 784): returns the inputs, the mix partner, λ."""
    if sup.augment:
        x = augment.strong(x, aug, gen)
    return mix(x, sup.mixup_alpha if use_mixup else 0.0, gen)
