"""2-D convolution (really cross-correlation, as in every DL library), forward and backward, via im2col.

With input x (N, C, H, W), weight w (O, C/G, kH, kW), bias b (O,), G groups, stride s, dilation d
and padded input xp, output channel o in group g = o // (O/G) is

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} w[o, c, i, j] * xp[n, g*C/G + c, oh*sH + i*dH, ow*sW + j*dW]

so after `im2col` gathers the xp values into cols (N, G, K, Ho*Wo) with K = C/G * kH * kW, each
sample and group is one matrix product  Y_ng = W_g @ cols_ng  with W_g (O/G, K). The backward pass is
the same products transposed:

    dW_g = sum_n dY_ng @ cols_ng^T,   dcols_ng = W_g^T @ dY_ng,   db[o] = sum_{n, oh, ow} dy[n, o, oh, ow],

and `col2im` adds dcols back onto the pixels they were read from (overlapping windows sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kplab.scratch.init import uniform_fan_in
from kplab.scratch.module import Module
from kplab.scratch.padding import Pads, check_mode, pad2d, pad2d_backward
from kplab.scratch.windows import Pair, col2im, im2col, output_size, pair


def resolve_padding(padding, kernel: Pair, dilation: Pair) -> Pads:
    """PyTorch's `padding` (int, pair, 'valid' or 'same') as ((top, bottom), (left, right)).

    'same' pads dilation * (k - 1) in total per axis, the odd pixel at the bottom / right.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = pair(padding, "padding")
    return (ph, ph), (pw, pw)


@dataclass
class ConvCache:
    """What the backward pass needs from a forward call."""

    cols: np.ndarray  # (N, G, K, Ho*Wo)
    weight: np.ndarray  # (O, C/G, kH, kW)
    x_shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    pads: Pads
    stride: Pair
    dilation: Pair
    groups: int
    padding_mode: str


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
                   padding=0, dilation=1, groups: int = 1,
                   padding_mode: str = "zeros") -> tuple[np.ndarray, ConvCache]:
    """y (N, O, Ho, Wo) and the cache for `conv2d_backward`."""
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d expects x (N, C, H, W) and weight (O, C/groups, kH, kW), "
                         f"got shapes {x.shape} and {weight.shape}")
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    if c != cg * groups or o % groups:
        raise ValueError(f"weight {weight.shape} with groups={groups} expects {cg * groups} input channels "
                         f"and out channels divisible by groups; got input {x.shape}")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"stride and dilation must be >= 1, got {stride} and {dilation}")
    pads = resolve_padding(padding, (kh, kw), dilation)
    xp = pad2d(x, pads, padding_mode)  # (N, C, Hp, Wp)
    ho = output_size(h, kh, stride[0], *pads[0], dilation[0])
    wo = output_size(w, kw, stride[1], *pads[1], dilation[1])

    cols = im2col(xp, (kh, kw), stride, dilation, (ho, wo)).reshape(n, groups, cg * kh * kw, ho * wo)
    w_g = weight.reshape(groups, o // groups, cg * kh * kw)  # (G, O/G, K)
    y = np.matmul(w_g, cols).reshape(n, o, ho, wo)  # (N, G, O/G, Ho*Wo) -> (N, O, Ho, Wo)
    if bias is not None:
        y += bias.reshape(1, o, 1, 1)
    cache = ConvCache(cols, weight, x.shape, xp.shape, pads, stride, dilation, groups, padding_mode)
    return y, cache


def conv2d_backward(dy: np.ndarray, cache: ConvCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dweight, dbias) for upstream gradient dy (N, O, Ho, Wo)."""
    n, o, ho, wo = dy.shape
    g = cache.groups
    _, cg, kh, kw = cache.weight.shape
    dy_g = dy.reshape(n, g, o // g, ho * wo)  # (N, G, O/G, Ho*Wo)
    dweight = np.matmul(dy_g, cache.cols.swapaxes(-1, -2)).sum(axis=0)  # (G, O/G, K)
    dweight = dweight.reshape(cache.weight.shape)  # (O, C/G, kH, kW)
    dbias = dy.sum(axis=(0, 2, 3))  # (O,)
    w_g = cache.weight.reshape(g, o // g, cg * kh * kw)
    dcols = np.matmul(w_g.swapaxes(-1, -2), dy_g)  # (N, G, K, Ho*Wo)
    dcols = dcols.reshape(n, g * cg, kh, kw, ho, wo)  # (N, C, kH, kW, Ho, Wo)
    dxp = col2im(dcols, cache.padded_shape, cache.stride, cache.dilation)
    dx = pad2d_backward(dxp, cache.x_shape, cache.pads, cache.padding_mode)
    return dx, dweight, dbias


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, padding_mode: str = "zeros") -> np.ndarray:
    """Functional convolution with `torch.nn.functional.conv2d`'s arguments (plus `padding_mode`)."""
    return conv2d_forward(x, weight, bias, stride, padding, dilation, groups, padding_mode)[0]


class Conv2d(Module):
    """`torch.nn.Conv2d` in NumPy: params ``weight`` (O, C/groups, kH, kW) and ``bias`` (O,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype=None, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} "
                             f"must both be divisible by groups {groups}")
        check_mode(padding_mode)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride, self.dilation = pair(stride, "stride"), pair(dilation, "dilation")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = pair(padding, "padding")
        self.padding_mode = padding_mode
        rng = rng if rng is not None else np.random.default_rng()
        dtype = dtype or np.float32  # PyTorch's default dtype
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.params["weight"] = uniform_fan_in(rng, shape, fan_in, dtype)
        if bias:
            self.params["bias"] = uniform_fan_in(rng, (out_channels,), fan_in, dtype)
        self.zero_grad()
        self._cache: ConvCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._cache = conv2d_forward(x, self.params["weight"], self.params.get("bias"), self.stride,
                                        self.padding, self.dilation, self.groups, self.padding_mode)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dweight, dbias = conv2d_backward(dy, self._cache)
        self._accumulate("weight", dweight)
        if "bias" in self.params:
            self._accumulate("bias", dbias)
        return dx
