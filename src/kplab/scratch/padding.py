"""Spatial padding of (N, C, H, W) arrays and its adjoint, for PyTorch's four `padding_mode`s.

Padding copies input pixels (or zeros) into a larger array, so its backward pass sums each padded
pixel's gradient onto the input pixel it was copied from. For ``zeros`` that is a crop; for the
other modes several padded pixels come from one input pixel, and we find them with an index map:
padding the array of pixel numbers ``arange(H * W)`` with the same mode tells, for every padded
position, which input pixel it holds.
"""

from __future__ import annotations

import numpy as np

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))

# PyTorch padding_mode -> numpy.pad mode with the same meaning.
NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def check_mode(mode: str) -> None:
    if mode not in NUMPY_MODES:
        raise ValueError(f"padding_mode must be one of {sorted(NUMPY_MODES)}, got {mode!r}")


def pad2d(x: np.ndarray, pads: Pads, mode: str = "zeros", value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of x (N, C, H, W) -> (N, C, H + top + bottom, W + left + right)."""
    check_mode(mode)
    if not any(p for side in pads for p in side):
        return x
    _check_fits(x.shape[-2:], pads, mode)
    width = ((0, 0), (0, 0)) + tuple(pads)
    if mode == "zeros":
        return np.pad(x, width, mode="constant", constant_values=value)
    return np.pad(x, width, mode=NUMPY_MODES[mode])


def pad2d_backward(dxp: np.ndarray, x_shape: tuple[int, ...], pads: Pads, mode: str = "zeros") -> np.ndarray:
    """Gradient of `pad2d` w.r.t. its input: dx[p] = sum of dxp over the padded copies of pixel p."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return dxp
    n, c, h, w = x_shape
    if mode == "zeros":
        return dxp[:, :, top: top + h, left: left + w]
    source = np.pad(np.arange(h * w).reshape(h, w), pads, mode=NUMPY_MODES[mode])  # (Hp, Wp) pixel numbers
    dx = np.zeros((n * c, h * w), dtype=dxp.dtype)
    np.add.at(dx, (slice(None), source.ravel()), dxp.reshape(n * c, -1))
    return dx.reshape(x_shape)


def _check_fits(hw: tuple[int, int], pads: Pads, mode: str) -> None:
    # PyTorch refuses pads that would reflect or wrap more than once; numpy would silently do it.
    for size, side, axis in zip(hw, pads, ("height", "width")):
        if mode == "reflect" and max(side) >= size:
            raise ValueError(f"reflect padding {max(side)} must be smaller than the input {axis} {size}")
        if mode == "circular" and max(side) > size:
            raise ValueError(f"circular padding {max(side)} must not exceed the input {axis} {size}")
