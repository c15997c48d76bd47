"""Max and average pooling, forward and backward, on the same im2col windows as convolution.

For window (n, c, oh, ow) over the padded input xp, with taps t = (i, j):

    max:  y = max_t xp[n, c, oh*sH + i*dH, ow*sW + j*dW]      dL/dxp[argmax] += dy   (others get 0)
    avg:  y = (1 / D[oh, ow]) * sum_t xp[...]                 dL/dxp[every tap] += dy / D[oh, ow]

Max pooling pads with -inf, so padding never wins; average pooling pads with zeros and its divisor D
follows PyTorch: the window size clipped to the padded input (``count_include_pad=True``), the number
of real pixels it covers (``False``), or ``divisor_override``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kplab.scratch.module import Module
from kplab.scratch.padding import Pads, pad2d, pad2d_backward
from kplab.scratch.windows import Pair, col2im, im2col, output_size, pair


@dataclass(frozen=True)
class PoolGeometry:
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    out_hw: Pair
    pads: Pads  # padding actually applied: ceil_mode may add rows/columns at the bottom/right


def pool_geometry(hw: tuple[int, int], kernel_size, stride, padding, dilation, ceil_mode: bool) -> PoolGeometry:
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"kernel_size, stride and dilation must be >= 1, got {kernel}, {stride}, {dilation}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"pad should be at most half of kernel size, got padding={padding}, kernel_size={kernel}")
    out_hw, pads = [], []
    for size, k, s, p, d in zip(hw, kernel, stride, padding, dilation):
        n_out = output_size(size, k, s, p, p, d, ceil_mode)
        overhang = (n_out - 1) * s + d * (k - 1) + 1 - (size + 2 * p)  # > 0 only in ceil mode
        out_hw.append(n_out)
        pads.append((p, p + max(0, overhang)))
    return PoolGeometry(kernel, stride, padding, dilation, tuple(out_hw), tuple(pads))


def _check_4d(x: np.ndarray, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} expects input (N, C, H, W), got shape {x.shape}")


def _check_windows_touch_input(hw: tuple[int, int], geo: PoolGeometry) -> None:
    """Dilation can make a window that lies wholly in the padding; its maximum would be -inf."""
    for size, n_out, k, s, p, d in zip(hw, geo.out_hw, geo.kernel, geo.stride, geo.padding, geo.dilation):
        taps = np.arange(n_out)[:, None] * s - p + np.arange(k)[None, :] * d  # (n_out, k) input rows
        if not ((taps >= 0) & (taps < size)).any(axis=1).all():
            raise ValueError(f"a max-pooling window lies entirely in the padding (input size {size}, "
                             f"kernel {k}, stride {s}, padding {p}, dilation {d})")


@dataclass
class MaxPoolCache:
    argmax: np.ndarray  # (N, C, Ho, Wo) winning tap per window
    x_shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    geometry: PoolGeometry


def max_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode: bool = False) -> tuple[np.ndarray, np.ndarray, MaxPoolCache]:
    """(y (N, C, Ho, Wo), indices (N, C, Ho, Wo) into the flattened H*W input, cache)."""
    _check_4d(x, "max_pool2d")
    n, c, h, w = x.shape
    geo = pool_geometry((h, w), kernel_size, stride, padding, dilation, ceil_mode)
    (kh, kw), (ho, wo) = geo.kernel, geo.out_hw
    _check_windows_touch_input((h, w), geo)
    xp = pad2d(x, geo.pads, value=-np.inf)
    cols = im2col(xp, geo.kernel, geo.stride, geo.dilation, geo.out_hw).reshape(n, c, kh * kw, ho, wo)
    argmax = cols.argmax(axis=2)  # (N, C, Ho, Wo); the first maximum wins ties, as in PyTorch
    y = np.take_along_axis(cols, argmax[:, :, None], axis=2)[:, :, 0]  # (N, C, Ho, Wo)
    rows = np.arange(ho)[:, None] * geo.stride[0] + (argmax // kw) * geo.dilation[0] - geo.padding[0]
    cols_ = np.arange(wo)[None, :] * geo.stride[1] + (argmax % kw) * geo.dilation[1] - geo.padding[1]
    indices = rows * w + cols_  # (N, C, Ho, Wo) positions in the flattened H*W input
    return y, indices, MaxPoolCache(argmax, x.shape, xp.shape, geo)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """dx: each window's gradient goes to its maximum; overlapping windows add up."""
    geo = cache.geometry
    n, c, ho, wo = cache.argmax.shape
    dcols = np.zeros((n, c, geo.kernel[0] * geo.kernel[1], ho, wo), dtype=dy.dtype)
    np.put_along_axis(dcols, cache.argmax[:, :, None], dy[:, :, None], axis=2)
    dxp = col2im(dcols.reshape(n, c, *geo.kernel, ho, wo), cache.padded_shape, geo.stride, geo.dilation)
    return pad2d_backward(dxp, cache.x_shape, geo.pads)


def max_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Functional max pooling with `torch.nn.functional.max_pool2d`'s arguments."""
    y, indices, _ = max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)
    return (y, indices) if return_indices else y


def avg_divisor(hw: tuple[int, int], geo: PoolGeometry, count_include_pad: bool,
                divisor_override: int | None) -> np.ndarray:
    """D (Ho, Wo): what each window's sum is divided by, exactly as PyTorch computes it."""
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("divisor_override must be non-zero")
        return np.full(geo.out_hw, float(divisor_override))
    extents = []
    for size, n_out, k, s, p in zip(hw, geo.out_hw, geo.kernel, geo.stride, geo.padding):
        start = np.arange(n_out) * s - p
        end = np.minimum(start + k, size + p)  # windows are clipped to the (symmetric) padded input
        extents.append(end - start if count_include_pad else np.minimum(end, size) - np.maximum(start, 0))
    return np.outer(extents[0], extents[1]).astype(float)  # (Ho, Wo)


@dataclass
class AvgPoolCache:
    divisor: np.ndarray  # (Ho, Wo)
    x_shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    geometry: PoolGeometry


def avg_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                       count_include_pad: bool = True,
                       divisor_override: int | None = None) -> tuple[np.ndarray, AvgPoolCache]:
    _check_4d(x, "avg_pool2d")
    n, c, h, w = x.shape
    geo = pool_geometry((h, w), kernel_size, stride, padding, 1, ceil_mode)
    (kh, kw), (ho, wo) = geo.kernel, geo.out_hw
    xp = pad2d(x, geo.pads)
    sums = im2col(xp, geo.kernel, geo.stride, geo.dilation, geo.out_hw).reshape(n, c, kh * kw, ho, wo).sum(axis=2)
    divisor = avg_divisor((h, w), geo, count_include_pad, divisor_override).astype(x.dtype)
    return sums / divisor, AvgPoolCache(divisor, x.shape, xp.shape, geo)  # (N, C, Ho, Wo)


def avg_pool2d_backward(dy: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    geo = cache.geometry
    n, c, ho, wo = dy.shape
    share = dy / cache.divisor  # (N, C, Ho, Wo)
    dcols = np.broadcast_to(share[:, :, None, None], (n, c, *geo.kernel, ho, wo))
    dxp = col2im(dcols, cache.padded_shape, geo.stride, geo.dilation)
    return pad2d_backward(dxp, cache.x_shape, geo.pads)


def avg_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> np.ndarray:
    """Functional average pooling with `torch.nn.functional.avg_pool2d`'s arguments."""
    return avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)[0]


class MaxPool2d(Module):
    """`torch.nn.MaxPool2d`; with ``return_indices`` forward returns (y, indices) like PyTorch."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode
        self._cache: MaxPoolCache | None = None

    def forward(self, x: np.ndarray):
        y, indices, self._cache = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                                     self.dilation, self.ceil_mode)
        return (y, indices) if self.return_indices else y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return max_pool2d_backward(dy, self._cache)


class AvgPool2d(Module):
    """`torch.nn.AvgPool2d`."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        self._cache: AvgPoolCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self._cache = avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                            self.count_include_pad, self.divisor_override)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return avg_pool2d_backward(dy, self._cache)
