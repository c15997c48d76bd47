"""The fully connected head of a small CNN: flatten the feature maps, then an affine map.

Linear: y = x @ W^T + b with W (out, in); dL/dx = dy @ W, dL/dW = dy^T @ x, dL/db = sum_rows(dy).
"""

from __future__ import annotations

import numpy as np

from kplab.scratch.init import uniform_fan_in
from kplab.scratch.module import Module


class Flatten(Module):
    """`torch.nn.Flatten(start_dim=1, end_dim=-1)`: merge axes start_dim..end_dim into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)


class Linear(Module):
    """`torch.nn.Linear`: params ``weight`` (out_features, in_features), ``bias`` (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, *,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        rng = rng if rng is not None else np.random.default_rng()
        dtype = dtype or np.float32
        self.params["weight"] = uniform_fan_in(rng, (out_features, in_features), in_features, dtype)
        if bias:
            self.params["bias"] = uniform_fan_in(rng, (out_features,), in_features, dtype)
        self.zero_grad()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) got input shape {x.shape}")
        self._x = x
        y = x @ self.params["weight"].T  # (*, out)
        return y + self.params["bias"] if "bias" in self.params else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x2 = self._x.reshape(-1, self.in_features)  # (rows, in)
        dy2 = dy.reshape(-1, self.out_features)  # (rows, out)
        self._accumulate("weight", dy2.T @ x2)
        if "bias" in self.params:
            self._accumulate("bias", dy2.sum(axis=0))
        return dy @ self.params["weight"]
