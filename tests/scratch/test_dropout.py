"""Dropout and Dropout2d: statistical checks with fixed seeds (drop rate, whole maps, expectation),
eval-mode identity, and a backward pass that reuses the forward mask."""

import numpy as np
import pytest
import torch

from kplab.scratch import Dropout, Dropout2d


def _sigma(p: float, n: int) -> float:
    return np.sqrt(p * (1 - p) / n)  # standard deviation of a Bernoulli(p) frequency over n draws


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_rate_and_scaling(p):
    x = np.ones((200, 500))
    y = Dropout(p, rng=np.random.default_rng(0)).forward(x)
    dropped = y == 0
    assert abs(dropped.mean() - p) < 4 * _sigma(p, x.size)
    np.testing.assert_allclose(y[~dropped], 1 / (1 - p))  # inverted scaling of the survivors


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout2d_drops_whole_feature_maps(p):
    x = np.ones((300, 40, 5, 6))
    y = Dropout2d(p, rng=np.random.default_rng(1)).forward(x)
    maps = y.reshape(300, 40, -1)
    assert np.all(maps.min(axis=2) == maps.max(axis=2))  # every map is all zeros or all 1/(1-p)
    dropped = maps[:, :, 0] == 0
    assert abs(dropped.mean() - p) < 4 * _sigma(p, dropped.size)
    np.testing.assert_allclose(maps[~dropped], 1 / (1 - p))


def test_dropout2d_on_3d_input_drops_rows_like_pytorch():
    # (N, C, L): PyTorch (with a warning) drops whole length-L rows; so do we.
    y = Dropout2d(0.5, rng=np.random.default_rng(2)).forward(np.ones((50, 3, 25)))
    assert np.all(y.min(axis=2) == y.max(axis=2))
    with pytest.warns(UserWarning):
        t = torch.nn.Dropout2d(0.5)(torch.ones(50, 3, 25))
    assert torch.all(t.amin(dim=2) == t.amax(dim=2))


@pytest.mark.parametrize("layer_type", [Dropout, Dropout2d])
def test_expectation_is_preserved(layer_type):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 2, 2))
    layer = layer_type(0.4, rng=np.random.default_rng(4))
    draws = 20000
    mean = sum(layer.forward(x) for _ in range(draws)) / draws
    # Var(y) = x^2 p / (1 - p) per element; allow 5 standard errors.
    tolerance = 5 * np.abs(x) * np.sqrt(0.4 / 0.6 / draws)
    assert np.all(np.abs(mean - x) < tolerance)


@pytest.mark.parametrize("layer_type", [Dropout, Dropout2d])
def test_eval_mode_is_identity(layer_type):
    x = np.random.default_rng(5).normal(size=(4, 3, 5, 5))
    layer = layer_type(0.9, rng=np.random.default_rng(6)).eval()
    assert layer.forward(x) is x
    dy = np.ones_like(x)
    assert layer.backward(dy) is dy


@pytest.mark.parametrize("layer_type", [Dropout, Dropout2d])
def test_backward_applies_the_forward_mask(layer_type):
    x = np.random.default_rng(7).uniform(1, 2, size=(4, 3, 5, 5))  # nonzero, so y / x is the mask
    layer = layer_type(0.5, rng=np.random.default_rng(8))
    y = layer.forward(x)
    dy = np.random.default_rng(9).normal(size=x.shape)
    np.testing.assert_allclose(layer.backward(dy), dy * (y / x))


def test_fixed_seed_reproduces_masks_and_no_global_state():
    x = np.ones((10, 10))
    a = Dropout(0.5, rng=np.random.default_rng(42)).forward(x)
    np.random.seed(0)  # the legacy global generator must not matter
    b = Dropout(0.5, rng=np.random.default_rng(42)).forward(x)
    np.testing.assert_array_equal(a, b)


def test_edge_probabilities():
    x = np.random.default_rng(10).normal(size=(3, 4))
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)
    np.testing.assert_array_equal(Dropout(1.0).forward(x), np.zeros_like(x))
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)


def test_defaults_in_place_dtype_and_shapes():
    assert Dropout().p == 0.5 and Dropout2d().p == 0.5  # torch's default
    fresh = Dropout(0.5)
    dy = np.ones((2, 3))
    assert fresh.backward(dy) is dy  # nothing dropped yet: the gradient passes through
    x = np.ones((50, 40), np.float32)
    d = Dropout(0.5, inplace=True, rng=np.random.default_rng(0))
    y = d.forward(x)
    assert y is x and y.dtype == np.float32 and set(np.unique(y)) == {0.0, 2.0}
    assert Dropout(0.5, rng=np.random.default_rng(0)).forward(np.ones((4, 4), np.float32)).dtype == np.float32
    # (N, C): one decision per (n, c), i.e. per element; a 1-D input has no channels and is refused
    y2 = Dropout2d(0.5, rng=np.random.default_rng(1)).forward(np.ones((30, 20)))
    assert y2.shape == (30, 20) and 0.3 < (y2 == 0).mean() < 0.7
    with pytest.raises(ValueError, match=r"Dropout2d expects input \(N, C, H, W\) or \(N, C, L\), got shape \(5,\)"):
        Dropout2d(0.5).forward(np.ones(5))
