"""The tiny module system: every layer is a `Module` with explicit forward and backward passes.

A module keeps three dicts of NumPy arrays, named as in PyTorch so `load_torch` can copy by name:

- ``params``: learnable tensors (``weight``, ``bias``),
- ``grads``: d(loss)/d(param) with the same keys, *accumulated* by `backward` like PyTorch's
  ``.grad`` (call `zero_grad` between steps),
- ``buffers``: state that is not learned (``running_mean``, ``running_var``, ``num_batches_tracked``).

`forward(x)` caches what `backward(dy)` needs; `backward(dy)` returns dL/dx for the cached input.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class Module:
    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def named_children(self) -> list[tuple[str, Module]]:
        return []

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it, depth first."""
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """(dotted name, array) pairs, named as PyTorch's `named_parameters` names them."""
        for name, p in self.params.items():
            yield prefix + name, p
        for child_name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def named_grads(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """(dotted name, gradient) pairs in the same order as `named_parameters`."""
        for name in self.params:
            yield prefix + name, self.grads[name]
        for child_name, child in self.named_children():
            yield from child.named_grads(f"{prefix}{child_name}.")

    def parameters(self) -> list[np.ndarray]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for m in self.modules():
            m.grads = {name: np.zeros_like(p) for name, p in m.params.items()}

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def load_torch(self, module) -> Module:
        """Copy a PyTorch module's parameters and buffers in (same class name, names and shapes).

        Only tensors are copied, keeping their dtype; hyperparameters (stride, eps, ...) must already
        match. Gradients are reset to zero.
        """
        kind = type(self).__name__
        if type(module).__name__ != kind:
            raise ValueError(f"cannot load a torch {type(module).__name__} into a scratch {kind}")
        theirs = dict(module.named_parameters(recurse=False))
        theirs.update((k, v) for k, v in module.named_buffers(recurse=False) if v is not None)
        ours = set(self.params) | set(self.buffers)
        if set(theirs) != ours:
            raise ValueError(f"{kind}: torch module holds {sorted(theirs)}, ours holds {sorted(ours)}")
        for store in (self.params, self.buffers):
            for name, old in store.items():
                new = theirs[name].detach().cpu().numpy().copy()
                if new.shape != old.shape:
                    raise ValueError(f"{kind}.{name}: torch shape {new.shape} != ours {old.shape}")
                store[name] = new
        our_children, their_children = dict(self.named_children()), dict(module.named_children())
        if our_children.keys() != their_children.keys():
            raise ValueError(f"{kind}: torch children {list(their_children)} != ours {list(our_children)}")
        for name, child in our_children.items():
            child.load_torch(their_children[name])
        self.zero_grad()
        return self

    def _accumulate(self, name: str, grad: np.ndarray) -> None:
        self.grads[name] = self.grads[name] + grad


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse (the chain rule, one link at a time)."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self.layers = list(layers)

    def named_children(self) -> list[tuple[str, Module]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)
