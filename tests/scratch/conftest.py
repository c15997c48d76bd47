"""Helpers for the scratch tests: run one computation through our layer and PyTorch's, compare everything."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits


def randomise(module: torch.nn.Module, rng: np.random.Generator) -> torch.nn.Module:
    """Random parameters (not the 1/0 defaults) and positive running variances, so nothing agrees by luck."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.from_numpy(rng.normal(size=tuple(b.shape))))
            elif name.endswith("running_var"):
                b.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, size=tuple(b.shape))))
    return module


def step_both(ours, theirs, x: np.ndarray, dy_seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One forward + backward through both; returns {what: (ours, torch)} for output, dx, grads, buffers.

    Parameter gradients are compared after zeroing both, so this can be called repeatedly.
    """
    ours.zero_grad()
    theirs.zero_grad(set_to_none=False)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    dy = np.random.default_rng(dy_seed).normal(size=tuple(yt.shape))
    yt.backward(torch.from_numpy(dy))
    y = ours.forward(x)
    dx = ours.backward(dy)
    pairs = {"output": (y, yt.detach().numpy()), "dx": (dx, xt.grad.numpy())}
    our_grads = dict(ours.named_grads())
    for name, p in theirs.named_parameters():
        pairs[f"grad {name}"] = (our_grads[name], p.grad.numpy())
    for name, b in theirs.named_buffers():
        if b is not None:
            owner = ours
            *path, leaf = name.split(".")
            for part in path:
                owner = owner.layers[int(part)]
            pairs[f"buffer {name}"] = (owner.buffers[leaf], b.numpy())
    return pairs


def assert_pairs_close(pairs: dict, atol: float = 1e-8) -> None:
    for what, (a, b) in pairs.items():
        assert np.shape(a) == np.shape(b), f"{what}: shape {np.shape(a)} != torch {np.shape(b)}"
        np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=what)


@pytest.fixture(scope="session")
def parity():
    """The helpers above as `parity.randomise`, `parity.step`, `parity.assert_close`.

    A session-scoped fixture, so hypothesis tests may use it.
    """
    return SimpleNamespace(randomise=randomise, step=step_both, assert_close=assert_pairs_close)


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas():
    """One BLAS thread for these NumPy-heavy tests: on a busy shared machine OpenBLAS's spinning worker
    threads made the small-CNN training test ~8x slower in wall time than one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
