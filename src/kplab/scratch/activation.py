"""The ReLU non-linearity: y = max(x, 0), dL/dx = dy * [x > 0] (the subgradient 0 at x = 0, as PyTorch)."""

from __future__ import annotations

import numpy as np

from kplab.scratch.module import Module


class ReLU(Module):
    """`torch.nn.ReLU`."""

    def __init__(self) -> None:
        super().__init__()
        self._positive: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        return np.where(self._positive, x, 0).astype(x.dtype, copy=False)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._positive
