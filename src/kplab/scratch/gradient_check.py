"""Numerical gradient checking: compare a module's analytic backward with central differences.

For a fixed random upstream gradient dy, the scalar L(x, theta) = sum(forward(x) * dy) has
dL/dx = backward(dy) and dL/dtheta = grads. Each entry is estimated independently by

    dL/da ~ (L(a + eps) - L(a - eps)) / (2 eps),

whose error is O(eps^2) (truncation) + O(machine_eps / eps) (rounding): about 1e-10 in float64
with eps = 1e-6, which is why the check insists on float64.

Stochastic layers must see the same randomness on every evaluation, and batch norm must not drift
its running statistics while being probed, so every evaluation starts from the same generator
states and buffers; the module is left as it was found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kplab.scratch.module import Module


@dataclass
class GradCheckResult:
    max_abs_error: dict[str, float]  # "input" and every dotted parameter name -> max |analytic - numeric|
    passed: bool

    @property
    def worst(self) -> float:
        return max(self.max_abs_error.values())


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of f() w.r.t. every entry of `array`, perturbed in place and restored."""
    grad = np.zeros(array.shape, dtype=np.float64)
    for idx in np.ndindex(*array.shape):
        original = array[idx]
        array[idx] = original + eps
        f_plus = f()
        array[idx] = original - eps
        f_minus = f()
        array[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


class _FrozenState:
    """Snapshot of every generator state and buffer inside a module, restorable at will."""

    def __init__(self, module: Module) -> None:
        self._modules = list(module.modules())
        self._rng = [m.rng.bit_generator.state if hasattr(m, "rng") else None for m in self._modules]
        self._buffers = [{k: v.copy() for k, v in m.buffers.items()} for m in self._modules]

    def restore(self) -> None:
        for m, rng_state, buffers in zip(self._modules, self._rng, self._buffers):
            if rng_state is not None:
                m.rng.bit_generator.state = rng_state
            m.buffers = {k: v.copy() for k, v in buffers.items()}


def gradcheck(module: Module, x: np.ndarray, *, dy: np.ndarray | None = None, eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, seed: int = 0) -> GradCheckResult:
    """Check dL/dx and every dL/dparam of `module` at input x (float64 throughout)."""
    bad = [name for name, p in module.named_parameters() if p.dtype != np.float64]
    if bad or np.asarray(x).dtype != np.float64:
        raise ValueError(f"gradcheck needs float64 input and parameters (dtype=np.float64); "
                         f"not float64: {bad or ['input']}")
    x = np.array(x, dtype=np.float64)  # our own copy: it is perturbed in place
    state = _FrozenState(module)

    def loss() -> float:
        state.restore()
        return float(np.sum(module.forward(x) * dy))

    state.restore()
    y = module.forward(x)
    if dy is None:
        dy = np.random.default_rng(seed).normal(size=y.shape)
    saved_grads = {id(m): m.grads for m in module.modules()}
    module.zero_grad()
    state.restore()
    module.forward(x)
    analytic = {"input": module.backward(dy)} | {name: g.copy() for name, g in module.named_grads()}
    numeric = {"input": numerical_gradient(loss, x, eps)}
    numeric |= {name: numerical_gradient(loss, p, eps) for name, p in module.named_parameters()}

    state.restore()
    for m in module.modules():
        m.grads = saved_grads[id(m)]
    errors = {k: float(np.max(np.abs(analytic[k] - numeric[k]), initial=0.0)) for k in numeric}
    passed = all(np.allclose(analytic[k], numeric[k], rtol=rtol, atol=atol) for k in numeric)
    return GradCheckResult(errors, passed)
