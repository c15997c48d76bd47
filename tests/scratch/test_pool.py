"""MaxPool2d / AvgPool2d against PyTorch in float64, including ceil_mode, indices and divisor rules."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kplab.scratch import AvgPool2d, MaxPool2d, avg_pool2d, max_pool2d


@st.composite
def pool_cases(draw, dilation: bool):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if dilation:
        args["dilation"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # The padded input must hold one (dilated) window; drawing sizes from there wastes no draws.
    lo = [max(1, d * (k - 1) + 1 - 2 * p)
          for k, p, d in zip(kernel, padding, args.get("dilation", (1, 1)))]
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)),
             draw(st.integers(lo[0], max(lo[0], 9))), draw(st.integers(lo[1], max(lo[1], 9))))
    return args, shape


def _windows_touch_input(args, shape) -> bool:
    # With dilation a window can lie wholly in the padding; PyTorch then reads and writes out of
    # bounds (wrong gradients, crashes), so such cases are compared with our refusal instead.
    stride = args["stride"] or args["kernel_size"]
    expected = torch.nn.functional.max_pool2d(torch.zeros(shape), **args).shape[2:]
    for size, n_out, k, s, p, d in zip(shape[2:], expected, args["kernel_size"], stride, args["padding"],
                                       args["dilation"]):
        for o in range(n_out):
            if not any(0 <= o * s - p + i * d < size for i in range(k)):
                return False
    return True


@settings(max_examples=50, deadline=None)
@given(case=pool_cases(dilation=True), seed=st.integers(0, 2**16))
def test_max_pool_matches_torch(case, seed, parity):
    args, shape = case
    x = np.random.default_rng(seed).normal(size=shape)
    if not _windows_touch_input(args, shape):
        with pytest.raises(ValueError, match="entirely in the padding"):
            max_pool2d(x, **args)
        return
    parity.assert_close(parity.step(MaxPool2d(**args), torch.nn.MaxPool2d(**args), x, dy_seed=seed))
    _, indices = max_pool2d(x, **args, return_indices=True)
    _, expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), **args, return_indices=True)
    np.testing.assert_array_equal(indices, expected.numpy())


@settings(max_examples=50, deadline=None)
@given(case=pool_cases(dilation=False), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, 1, 5]), seed=st.integers(0, 2**16))
def test_avg_pool_matches_torch(case, count_include_pad, divisor_override, seed, parity):
    args, shape = case
    args |= dict(count_include_pad=count_include_pad, divisor_override=divisor_override)
    x = np.random.default_rng(seed).normal(size=shape)
    parity.assert_close(parity.step(AvgPool2d(**args), torch.nn.AvgPool2d(**args), x, dy_seed=seed))
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **args)
    np.testing.assert_allclose(avg_pool2d(x, **args), expected.numpy(), rtol=0, atol=1e-8)


def test_max_pool_by_hand():
    x = np.array([[1.0, 5, 2, 0], [3, 4, 8, 1], [0, 0, 1, 1], [9, 2, 3, 7]]).reshape(1, 1, 4, 4)
    layer = MaxPool2d(2)
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[5, 8], [9, 7]])
    dx = layer.backward(np.array([[10.0, 20], [30, 40]]).reshape(1, 1, 2, 2))[0, 0]
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx, expected)


def test_overlapping_windows_sum_their_gradients():
    # 3x3 windows with stride 1 on a 4x4 input: the centre pixels sit in all four windows.
    layer = AvgPool2d(3, stride=1)
    layer.forward(np.zeros((1, 1, 4, 4)))
    dx = layer.backward(np.full((1, 1, 2, 2), 9.0))[0, 0]
    np.testing.assert_array_equal(dx, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


def test_bad_pooling_arguments_are_refused():
    with pytest.raises(ValueError, match="at most half of kernel size"):
        MaxPool2d(2, padding=2).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        AvgPool2d(2).forward(np.zeros((4, 4)))


def test_functional_pools_default_like_torch_and_name_bad_arguments():
    from kplab.scratch.pool import avg_pool2d, avg_pool2d_forward, max_pool2d, max_pool2d_forward

    x = np.random.default_rng(2).normal(size=(2, 3, 7, 6))
    t = torch.from_numpy(x)
    # stride defaults to the kernel, no padding, no dilation, floor mode, padding counted
    np.testing.assert_allclose(max_pool2d(x, 2), F.max_pool2d(t, 2).numpy())
    np.testing.assert_allclose(max_pool2d_forward(x, 2)[0], F.max_pool2d(t, 2).numpy())
    y, idx = max_pool2d(x, 3, 2, 1, return_indices=True)
    ty, tidx = F.max_pool2d(t, 3, 2, 1, return_indices=True)
    np.testing.assert_allclose(y, ty.numpy())
    assert np.array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(avg_pool2d(x, 2), F.avg_pool2d(t, 2).numpy())
    np.testing.assert_allclose(avg_pool2d_forward(x, 3, 2, 1)[0], F.avg_pool2d(t, 3, 2, 1).numpy())
    for field in ("kernel_size", "stride", "padding", "dilation"):
        args = {"kernel_size": 2, field: (1, 2, 3)}
        with pytest.raises(ValueError, match=rf"^{field} must be an int or a pair of ints, got \(1, 2, 3\)$"):
            max_pool2d(x, **args)
    with pytest.raises(ValueError, match=r"^kernel_size, stride and dilation must be >= 1, got \(2, 2\), \(0, 0\), "
                                         r"\(1, 1\)$"):
        max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match=r"^pad should be at most half of kernel size, got padding=\(2, 2\), "
                                         r"kernel_size=\(3, 3\)$"):
        avg_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"^avg_pool2d expects input \(N, C, H, W\), got shape \(3, 7, 6\)$"):
        avg_pool2d(x[0], 2)
    with pytest.raises(ValueError, match=r"^max_pool2d expects input \(N, C, H, W\), got shape \(3, 7, 6\)$"):
        max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match="^divisor_override must be non-zero$"):
        avg_pool2d(x, 2, divisor_override=0)


def test_pool_layers_default_like_torch():
    x = np.random.default_rng(3).normal(size=(1, 2, 9, 8))
    t = torch.from_numpy(x)
    np.testing.assert_allclose(MaxPool2d(3).forward(x), torch.nn.MaxPool2d(3)(t).numpy())
    np.testing.assert_allclose(AvgPool2d(3).forward(x), torch.nn.AvgPool2d(3)(t).numpy())
    y, idx = MaxPool2d(2, return_indices=True).forward(x)
    assert np.array_equal(idx, torch.nn.MaxPool2d(2, return_indices=True)(t)[1].numpy())
