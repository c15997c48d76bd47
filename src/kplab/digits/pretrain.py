"""Stage 1: denoising autoencoder on the unlabeled images.

Input: corrupt(x) = mask 20 % of pixels, then add N(0, 0.15²). Target: the clean x. Loss: BCE between
sigmoid(decoder(encoder(corrupt(x)))) and x (computed from logits for stability). Adam (L2 weight
decay), cosine lr per step. The weights with the lowest unlabeled-val loss are kept; that val set is
corrupted once with a fixed seed so epochs are compared on identical inputs.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from kplab.digits.augment import corrupt
from kplab.digits.model import Autoencoder
from kplab.digits.recipe import DigitsConfig
from kplab.digits.schedule import lr_factor, set_lr
from kplab.progress import bar, say


@torch.no_grad()
def reconstruction_loss(model: Autoencoder, noisy: torch.Tensor, clean: torch.Tensor, batch_size: int = 2048) -> float:
    """Mean per-pixel BCE over a set, in eval mode."""
    model.eval()
    total = sum(F.binary_cross_entropy_with_logits(model(n), c, reduction="sum").item()
                for n, c in zip(noisy.split(batch_size), clean.split(batch_size)))
    model.train()
    return total / clean.numel()


def pretrain(x_unlabeled: torch.Tensor, x_val: torch.Tensor, cfg: DigitsConfig,
             gen: torch.Generator) -> tuple[Autoencoder, dict]:
    """Train the DAE; returns the best-val-loss model and per-epoch history."""
    p = cfg.pretrain
    model = Autoencoder(cfg.model).to(x_unlabeled.device)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    noisy_val = corrupt(x_val, p.mask_rate, p.noise_std, torch.Generator().manual_seed(cfg.seed + 12345))
    steps_per_epoch = math.ceil(len(x_unlabeled) / p.batch_size)
    total = steps_per_epoch * p.epochs
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    best, best_state = math.inf, copy.deepcopy(model.state_dict())
    step = 0
    model.train()
    for epoch in range(p.epochs):
        order = torch.randperm(len(x_unlabeled), generator=gen)
        running = 0.0
        progress = bar(order.split(p.batch_size), desc=f"DAE epoch {epoch + 1}/{p.epochs}", total=steps_per_epoch)
        for idx in progress:
            set_lr(opt, lr_factor(p.schedule, step, total))
            clean = x_unlabeled[idx]  # (B, 784)
            noisy = corrupt(clean, p.mask_rate, p.noise_std, gen)
            loss = F.binary_cross_entropy_with_logits(model(noisy), clean)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item() * len(idx)
            step += 1
        val = reconstruction_loss(model, noisy_val, x_val)
        history["train_loss"].append(running / len(x_unlabeled))
        history["val_loss"].append(val)
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        say(f"DAE epoch {epoch + 1}: train BCE {history['train_loss'][-1]:.4f}, unlabeled-val BCE {val:.4f}")
    model.load_state_dict(best_state)
    model.eval()
    history["best_val_loss"] = best
    history["best_epoch"] = int(min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)) + 1
    return model, history
