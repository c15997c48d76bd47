"""The four norms against PyTorch in float64 (outputs, dx, dgamma, dbeta, running statistics), and the
axes each one normalises over, checked directly on the output."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kplab.scratch import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm

momenta = st.sampled_from([0.1, 0.5, None])
spatial = st.integers(1, 5)


def _train_then_eval(ours, theirs, shapes, seed, parity):
    """Three training steps on different batches, then one evaluation step; compare after each."""
    rng = np.random.default_rng(seed)
    for step, shape in enumerate(shapes):
        if step == len(shapes) - 1:
            ours.eval(), theirs.eval()
        x = rng.normal(loc=rng.normal(), scale=rng.uniform(0.5, 3), size=shape)
        parity.assert_close(parity.step(ours, theirs, x, dy_seed=seed + step))


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 4), n=st.integers(1, 4), h=spatial, w=spatial, momentum=momenta,
       affine=st.booleans(), track=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm_matches_torch(c, n, h, w, momentum, affine, track, seed, parity):
    n = max(n, 2) if h * w == 1 else n  # training needs more than one value per channel
    args = dict(num_features=c, eps=1e-5, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = parity.randomise(torch.nn.BatchNorm2d(**args).double(), np.random.default_rng(seed))
    ours = BatchNorm2d(**args).load_torch(theirs)
    _train_then_eval(ours, theirs, [(n, c, h, w), (n + 1, c, h, w), (n, c, h, w), (n, c, h, w)], seed, parity)


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4), k=st.integers(1, 3),
       affine=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_norm_matches_torch(shape, k, affine, bias, seed, parity):
    normalized = tuple(shape[-min(k, len(shape) - 1):])
    args = dict(normalized_shape=normalized, eps=1e-5, elementwise_affine=affine, bias=bias)
    theirs = parity.randomise(torch.nn.LayerNorm(**args).double(), np.random.default_rng(seed))
    ours = LayerNorm(**args).load_torch(theirs)
    _train_then_eval(ours, theirs, [tuple(shape)] * 2, seed, parity)


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 4), n=st.integers(1, 3), h=spatial, w=spatial, momentum=momenta,
       affine=st.booleans(), track=st.booleans(), seed=st.integers(0, 2**16))
def test_instance_norm_matches_torch(c, n, h, w, momentum, affine, track, seed, parity):
    h = max(h, 2)  # training needs more than one spatial element
    args = dict(num_features=c, eps=1e-5, momentum=momentum, affine=affine, track_running_stats=track)
    theirs = parity.randomise(torch.nn.InstanceNorm2d(**args).double(), np.random.default_rng(seed))
    ours = InstanceNorm2d(**args).load_torch(theirs)
    _train_then_eval(ours, theirs, [(n, c, h, w), (n + 1, c, h, w), (n, c, h, w)], seed, parity)


@settings(max_examples=30, deadline=None)
@given(groups=st.integers(1, 3), per_group=st.integers(1, 3), n=st.integers(1, 3),
       spatial_shape=st.lists(st.integers(1, 4), min_size=0, max_size=2), affine=st.booleans(),
       seed=st.integers(0, 2**16))
def test_group_norm_matches_torch(groups, per_group, n, spatial_shape, affine, seed, parity):
    c = groups * per_group
    n = max(n, 2) if per_group * np.prod(spatial_shape) == 1 else n  # PyTorch needs > 1 value per group
    args = dict(num_groups=groups, num_channels=c, eps=1e-5, affine=affine)
    theirs = parity.randomise(torch.nn.GroupNorm(**args).double(), np.random.default_rng(seed))
    ours = GroupNorm(**args).load_torch(theirs)
    _train_then_eval(ours, theirs, [(n, c, *spatial_shape)] * 2, seed, parity)


def test_running_statistics_by_hand():
    # One batch, momentum 0.1: running_mean = 0.9*0 + 0.1*mean, running_var = 0.9*1 + 0.1*unbiased var.
    x = np.array([1.0, 2.0, 3.0, 6.0]).reshape(2, 1, 2, 1)
    layer = BatchNorm2d(1, dtype=np.float64)
    layer.forward(x)
    assert layer.buffers["running_mean"][0] == pytest.approx(0.1 * 3.0)
    assert layer.buffers["running_var"][0] == pytest.approx(0.9 + 0.1 * 14.0 / 3.0)  # sum sq dev 14, M-1 = 3
    assert int(layer.buffers["num_batches_tracked"]) == 1


# For x of shape (N, C, H, W) = (4, 6, 3, 5): the axes each norm averages over, and a layer doing it.
AXES = {
    "batch": ((0, 2, 3), lambda: BatchNorm2d(6, dtype=np.float64)),
    "layer": ((1, 2, 3), lambda: LayerNorm((6, 3, 5), dtype=np.float64)),
    "instance": ((2, 3), lambda: InstanceNorm2d(6)),
    "group": (None, lambda: GroupNorm(3, 6, dtype=np.float64)),  # (C/G, H, W) per (n, g): see below
}


@pytest.mark.parametrize("kind", list(AXES))
def test_each_norm_standardises_exactly_its_axes(kind):
    axes, make = AXES[kind]
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 6, 3, 5))
    y = make().forward(x)
    if kind == "group":
        y, axes = y.reshape(4, 3, 2, 3, 5), (2, 3, 4)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, atol=1e-5)  # var/(var + eps) with var ~ 4
    # ... and no finer: the groups inside one of its sets are not each standardised.
    per_instance_means = y.reshape(4, 6, -1).mean(axis=2)
    if kind != "instance":
        assert np.abs(per_instance_means).max() > 0.05


def test_input_checks():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm2d(2).forward(np.ones((1, 2, 1, 1)))
    with pytest.raises(ValueError, match="3 channels"):
        BatchNorm2d(2).forward(np.ones((2, 3, 2, 2)))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"expects input \(\*, 3, 2\)"):
        LayerNorm((3, 2)).forward(np.ones((2, 2, 3)))


def test_norm_defaults_dtypes_and_messages_follow_torch():
    for ours, theirs in ((BatchNorm2d(3), torch.nn.BatchNorm2d(3)), (InstanceNorm2d(3), torch.nn.InstanceNorm2d(3)),
                         (GroupNorm(1, 3), torch.nn.GroupNorm(1, 3)), (LayerNorm(3), torch.nn.LayerNorm(3))):
        assert ours.eps == theirs.eps == 1e-5
        assert sorted(ours.params) == sorted(n for n, _ in theirs.named_parameters()), type(ours).__name__
        for name, value in {**ours.params, **ours.buffers}.items():
            assert value.dtype == (np.int64 if name == "num_batches_tracked" else np.float32), (type(ours), name)
    assert BatchNorm2d(3).momentum == InstanceNorm2d(3).momentum == 0.1
    wide = BatchNorm2d(3, dtype=np.float64)
    assert {v.dtype for v in [*wide.params.values(), wide.buffers["running_mean"], wide.buffers["running_var"]]} \
        == {np.dtype(np.float64)}
    x = np.ones((2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"^BatchNorm2d expects input \(N, C, H, W\), got shape \(2, 3, 2\)$"):
        BatchNorm2d(3).forward(x[..., 0])
    with pytest.raises(ValueError, match=r"^BatchNorm2d\(3\) got input with 2 channels \(shape \(2, 2, 2, 2\)\)$"):
        BatchNorm2d(3).forward(x[:, :2])
    with pytest.raises(ValueError, match=r"^BatchNorm2d: expected more than 1 value per channel when training, "
                                         r"got input shape \(1, 3, 1, 1\)$"):
        BatchNorm2d(3).forward(np.ones((1, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"^InstanceNorm2d: expected more than 1 spatial element when training, "
                                         r"got input shape \(2, 3, 1, 1\)$"):
        InstanceNorm2d(3).forward(np.ones((2, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"^GroupNorm: expected more than 1 value per group, got input shape "
                                         r"\(1, 3, 1, 1\)$"):
        GroupNorm(3, 3).forward(np.ones((1, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"^num_channels 6 must be divisible by num_groups 4$"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"^LayerNorm\(3, 2\) expects input \(\*, 3, 2\), got shape \(2, 2, 3\)$"):
        LayerNorm((3, 2)).forward(np.ones((2, 2, 3)))
