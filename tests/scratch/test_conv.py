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


def test_functional_conv2d_honours_the_padding_mode():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(1, 2, 6, 5)), rng.normal(size=(3, 2, 3, 3))
    ours = conv2d(x, w, padding=1, padding_mode="reflect")
    ref = F.conv2d(F.pad(torch.from_numpy(x), (1, 1, 1, 1), mode="reflect"), torch.from_numpy(w))
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-12)


@pytest.mark.parametrize("field", ["kernel_size", "stride", "dilation", "padding"])
def test_a_bad_size_argument_is_named_in_the_layer_and_the_function(field):
    args = dict(kernel_size=3)
    with pytest.raises(ValueError, match=rf"^{field} must be an int or a pair of ints, got \(1, 2, 3\)$"):
        Conv2d(2, 2, **{**args, field: (1, 2, 3)})
    if field != "kernel_size":
        with pytest.raises(ValueError, match=rf"^{field} must be non-negative, got -1$"):
            conv2d(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), **{field: -1})


def test_conv2d_function_defaults_and_shape_errors():
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(1, 2, 7, 6)), rng.normal(size=(4, 2, 3, 3))
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w)).numpy()  # stride 1, no padding, dilation 1, 1 group
    np.testing.assert_allclose(conv2d(x, w), ref, atol=1e-12)
    from kplab.scratch.conv import conv2d_forward
    np.testing.assert_allclose(conv2d_forward(x, w)[0], ref, atol=1e-12)  # the same defaults one level down
    with pytest.raises(ValueError, match=r"^conv2d expects x \(N, C, H, W\) and weight \(O, C/groups, kH, kW\), "
                                         r"got shapes \(1, 2, 7, 6\) and \(4, 2, 3\)$"):
        conv2d(x, w[..., 0])
    with pytest.raises(ValueError, match="got shapes"):
        conv2d(x[0], w)
    with pytest.raises(ValueError, match=r"^stride and dilation must be >= 1, got \(1, 1\) and \(0, 0\)$"):
        conv2d(x, w, dilation=0)
    with pytest.raises(ValueError, match=r"^stride and dilation must be >= 1, got \(0, 0\) and \(1, 1\)$"):
        conv2d(x, w, stride=0)


def test_conv2d_layer_init_rng_fan_in_and_messages():
    a, b = (Conv2d(4, 6, (3, 2), groups=2, rng=np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(a.params["weight"], b.params["weight"])
    bound = 1 / np.sqrt(4 // 2 * 3 * 2)  # fan-in C/G * kH * kW, as PyTorch
    w = Conv2d(4, 6, (3, 2), groups=2, rng=np.random.default_rng(6)).params["weight"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    with pytest.raises(ValueError, match=r"^padding='same' is not supported for strided convolutions$"):
        Conv2d(2, 2, 3, stride=2, padding="same")
