"""Convolution fundamentals from scratch: NumPy layers with forward and backward passes, equal to PyTorch.

Every layer is constructed with `torch.nn`'s argument names and defaults and exposes
``params`` / ``grads`` / ``buffers`` dicts, ``forward(x)``, ``backward(dy)``, ``train()`` / ``eval()``
and ``load_torch(module)``. NumPy only at run time; torch is imported only by ``load_torch`` callers.

The names below load on first use, so `kplab --help` (which imports this package's `commands`) does
not pay for NumPy.
"""

import importlib

_HOMES = {
    "kplab.scratch.activation": ["ReLU"],
    "kplab.scratch.conv": ["Conv2d", "conv2d"],
    "kplab.scratch.dropout": ["Dropout", "Dropout2d"],
    "kplab.scratch.gradient_check": ["GradCheckResult", "gradcheck", "numerical_gradient"],
    "kplab.scratch.linear": ["Flatten", "Linear"],
    "kplab.scratch.loss": ["cross_entropy", "mse_loss"],
    "kplab.scratch.module": ["Module", "Sequential"],
    "kplab.scratch.norm": ["BatchNorm2d", "GroupNorm", "InstanceNorm2d", "LayerNorm"],
    "kplab.scratch.optim": ["SGD"],
    "kplab.scratch.pool": ["AvgPool2d", "MaxPool2d", "avg_pool2d", "max_pool2d"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name):
    if name not in _HOME_OF:
        raise AttributeError(f"module 'kplab.scratch' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME_OF[name]), name)


def __dir__():
    return __all__
