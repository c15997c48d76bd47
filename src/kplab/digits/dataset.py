"""The split's parts as float tensors the MLP eats: rows of 784 pixels in [0, 1]."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from kplab.digits.data import Mnist
from kplab.digits.split import Split


@dataclass(frozen=True)
class Parts:
    x_train: torch.Tensor  # (100, 784) labeled train
    y_train: torch.Tensor  # (100,)
    x_val: torch.Tensor  # (100, 784) labeled val
    y_val: torch.Tensor
    x_test100: torch.Tensor  # (100, 784) labeled test: the I2DL score
    y_test100: torch.Tensor
    x_unlabeled: torch.Tensor  # (58700, 784) unlabeled train
    x_unlabeled_val: torch.Tensor  # (1000, 784)
    x_test: torch.Tensor  # (10000, 784) the full MNIST test set
    y_test: torch.Tensor

    def to(self, device: str | torch.device) -> Parts:
        return Parts(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def rows(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1]."""
    return torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)


def build_parts(mnist: Mnist, split: Split) -> Parts:
    x, y = mnist.x_train, torch.from_numpy(mnist.y_train)
    return Parts(
        x_train=rows(x[split.labeled_train]), y_train=y[split.labeled_train],
        x_val=rows(x[split.labeled_val]), y_val=y[split.labeled_val],
        x_test100=rows(x[split.labeled_test]), y_test100=y[split.labeled_test],
        x_unlabeled=rows(x[split.unlabeled_train]),
        x_unlabeled_val=rows(x[split.unlabeled_val]),
        x_test=rows(mnist.x_test), y_test=torch.from_numpy(mnist.y_test),
    )
