"""Stochastic gradient descent with PyTorch's momentum and weight-decay semantics.

    g = grad + weight_decay * p;   buf = g (first step) or momentum * buf + g;   p -= lr * buf
"""

from __future__ import annotations

import numpy as np

from kplab.scratch.module import Module


class SGD:
    def __init__(self, module: Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        self.module, self.lr, self.momentum, self.weight_decay = module, lr, momentum, weight_decay
        self._velocity: dict[str, np.ndarray] = {}

    def step(self) -> None:
        for (name, p), (_, grad) in zip(self.module.named_parameters(), self.module.named_grads()):
            g = grad + self.weight_decay * p if self.weight_decay else grad
            if self.momentum:
                v = self._velocity.get(name)
                g = self._velocity[name] = g.copy() if v is None else self.momentum * v + g
            p -= (self.lr * g).astype(p.dtype, copy=False)  # in place: the layer holds this very array

    def zero_grad(self) -> None:
        self.module.zero_grad()
