"""Conv2d against torch.nn.Conv2d in float64: outputs, dx, dweight, dbias over random hyperparameters."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kplab.scratch import Conv2d, conv2d

# PyTorch warns that it copies the input for asymmetric 'same' padding; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


@st.composite
def conv_cases(draw, padding_modes=tuple(PADDING_MODES)):
    """(Conv2d kwargs, (n, h, w)) with h and w drawn large enough for the padded kernel, so no draw
    is thrown away (filtering most draws makes hypothesis fail its health check)."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    padding = {"int": draw(st.integers(0, 3)), "pair": (draw(st.integers(0, 3)), draw(st.integers(0, 3))),
               "same": "same", "valid": "valid"}[kind]
    stride = (1, 1) if kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    args = dict(
        in_channels=groups * draw(st.integers(1, 3)), out_channels=groups * draw(st.integers(1, 3)),
        kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=draw(st.booleans()), padding_mode=draw(st.sampled_from(padding_modes)),
    )
    lo = [_smallest_input(args, axis) for axis in (0, 1)]
    return args, (draw(st.integers(1, 3)), draw(st.integers(lo[0], max(lo[0], 9))),
                  draw(st.integers(lo[1], max(lo[1], 9))))


def _smallest_input(args, axis: int) -> int:
    """The smallest input size along `axis` that torch accepts for these Conv2d arguments."""
    extent = args["dilation"][axis] * (args["kernel_size"][axis] - 1) + 1
    pad = args["padding"]
    if pad == "same":
        before, after = (extent - 1) // 2, extent - 1 - (extent - 1) // 2
    elif pad == "valid":
        before = after = 0
    else:
        before = after = pad if isinstance(pad, int) else pad[axis]
    lo = max(1, extent - before - after)
    if args["padding_mode"] == "reflect":
        lo = max(lo, max(before, after) + 1)  # reflection cannot reach past the opposite edge
    if args["padding_mode"] == "circular":
        lo = max(lo, max(before, after))
    return lo


@settings(max_examples=45, deadline=None)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_matches_torch(case, seed, parity):
    args, (n, h, w) = case
    rng = np.random.default_rng(seed)
    theirs = parity.randomise(torch.nn.Conv2d(**args).double(), rng)
    ours = Conv2d(**args).load_torch(theirs)
    x = rng.normal(size=(n, args["in_channels"], h, w))
    parity.assert_close(parity.step(ours, theirs, x, dy_seed=seed))


@settings(max_examples=20, deadline=None)
@given(case=conv_cases(padding_modes=("zeros",)), seed=st.integers(0, 2**16))
def test_functional_conv2d_matches_torch(case, seed):
    args, (n, h, w) = case
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(args["out_channels"], args["in_channels"] // args["groups"], *args["kernel_size"]))
    bias = rng.normal(size=args["out_channels"]) if args["bias"] else None
    x = rng.normal(size=(n, args["in_channels"], h, w))
    kw = dict(stride=args["stride"], padding=args["padding"], dilation=args["dilation"], groups=args["groups"])
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                        None if bias is None else torch.from_numpy(bias), **kw)
    np.testing.assert_allclose(conv2d(x, weight, bias, **kw), expected.numpy(), rtol=0, atol=1e-8)


def test_conv2d_is_cross_correlation_by_hand():
    # A 1x1x3x3 input and a 2x2 kernel: each output is the dot product of the kernel with one window,
    # computed here by hand (no flipping of the kernel).
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    k = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    expected = [[0 + 2 + 9 + 16, 1 + 4 + 12 + 20], [3 + 8 + 18 + 28, 4 + 10 + 21 + 32]]
    np.testing.assert_array_equal(conv2d(x, k)[0, 0], expected)


def test_default_init_follows_pytorch_bounds():
    layer = Conv2d(4, 64, 3, rng=np.random.default_rng(0))
    bound = 1 / np.sqrt(4 * 3 * 3)
    w = layer.params["weight"]
    assert w.dtype == np.float32 and layer.params["bias"].dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(layer.params["bias"]).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound  # std of U(-b, b) is b / sqrt(3)


def test_float32_forward_close_to_torch():
    rng = np.random.default_rng(1)
    theirs = torch.nn.Conv2d(3, 8, 5, padding=2)
    ours = Conv2d(3, 8, 5, padding=2).load_torch(theirs)
    x = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    y = ours.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "divisible by groups"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding="same"), "strided"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, padding="full"), "padding must be"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, padding_mode="mirror"), "padding_mode"),
])
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2d(**kwargs)


def test_bad_inputs_are_refused():
    layer = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        layer.forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        layer.forward(np.zeros((1, 3, 2, 2)))
    with pytest.raises(ValueError, match="must be smaller than the input"):
        Conv2d(3, 4, 3, padding=2, padding_mode="reflect").forward(np.zeros((1, 3, 2, 5)))
