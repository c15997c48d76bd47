"""PyTorch's default initialisation for Conv2d and Linear weights and biases.

PyTorch draws weights with kaiming_uniform_(a=sqrt(5)), whose bound gain * sqrt(3 / fan_in) with
gain = sqrt(2 / (1 + a^2)) = sqrt(1/3) simplifies to 1 / sqrt(fan_in); biases use the same bound.
So both are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with fan_in = inputs feeding one output unit.
"""

from __future__ import annotations

import numpy as np


def uniform_fan_in(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
