"""Inverted dropout: zero activations at random while training, identity when evaluating.

Training draws a keep mask k ~ Bernoulli(1 - p) and computes y = x * k / (1 - p); the scaling makes
E[y] = x, so evaluation can simply return x. The backward pass applies the same mask:
dL/dx = dy * k / (1 - p).

`Dropout` draws one k per element. `Dropout2d` draws one k per (n, c) feature map and broadcasts it
over the remaining axes, so whole channels vanish together: neighbouring pixels of a map are highly
correlated, and dropping single pixels would barely regularise a conv layer. For a 3-D input
(N, C, L) it drops whole rows of length L, as PyTorch (with a warning) does.

Randomness comes only from the layer's own ``rng`` (a numpy Generator), never from global state.
"""

from __future__ import annotations

import numpy as np

from kplab.scratch.module import Module


class Dropout(Module):
    """`torch.nn.Dropout(p=0.5, inplace=False)` with an explicit random generator."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace
        self.rng = rng if rng is not None else np.random.default_rng()
        self._mask: np.ndarray | None = None  # k / (1 - p), broadcastable to the input

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(self.mask_shape(x.shape)) >= self.p  # P(keep) = 1 - p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        self._mask = (keep * scale).astype(x.dtype)
        if self.inplace:
            x *= self._mask
            return x
        return x * self._mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy if self._mask is None else dy * self._mask


class Dropout2d(Dropout):
    """`torch.nn.Dropout2d`: one keep/drop decision per (n, c) feature map."""

    def mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) < 2:
            raise ValueError(f"Dropout2d expects input (N, C, H, W) or (N, C, L), got shape {shape}")
        return shape[:2] + (1,) * (len(shape) - 2)
