"""Accuracy (percent) of a classifier on the I2DL parts and the full MNIST test set."""

from __future__ import annotations

import torch
from torch import nn

from kplab.digits.dataset import Parts
from kplab.digits.model import count_params


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Class indices (N,) in eval mode (dropout off); restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(chunk).argmax(dim=1) for chunk in x.split(batch_size)])
    model.train(was_training)
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * (predict(model, x) == y).double().mean().item()


def scores(model: nn.Module, parts: Parts) -> dict[str, float]:
    """`acc_val` (100 labeled val), `acc_test100` (the I2DL score), `acc_test_full` (10,000 images)."""
    return {
        "acc_val": accuracy(model, parts.x_val, parts.y_val),
        "acc_test100": accuracy(model, parts.x_test100, parts.y_test100),
        "acc_test_full": accuracy(model, parts.x_test, parts.y_test),
        "params": count_params(model),
    }
