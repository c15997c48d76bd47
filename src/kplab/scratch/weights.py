"""Counting weights: why images need convolutions rather than fully connected layers.

A conv layer with F filters of size k x k over C input channels has F * k * k * C weights and F
biases, whatever the image size, because every output position reuses the same filter. A fully
connected layer from an H x W x C input to U output units has (H * W * C) * U weights and U biases.

The tutorial's example: a 32x32x3 image and one 5x5x3 filter (stride 1, no padding) give a 28x28
map with 5*5*3 = 75 weights (+1 bias); connecting all 3,072 inputs to all 784 map positions instead
needs 3,072 * 784 = 2,408,448 weights. For a 1000x1000x3 photo, one hidden layer of 1,000 units
already needs 3 * 10^9 weights, and a hidden layer as large as the input (3 * 10^6 units) 9 * 10^12.
"""

from __future__ import annotations

from dataclasses import dataclass

from kplab.scratch.windows import output_size


@dataclass(frozen=True)
class LayerCount:
    layer: str
    input: str  # "H x W x C"
    output: str
    weights: int
    biases: int

    @property
    def parameters(self) -> int:
        return self.weights + self.biases


def _shape(h: int, w: int, c: int) -> str:
    return f"{h}x{w}x{c}"


def conv_count(h: int, w: int, c: int, kernel: int, filters: int = 1, stride: int = 1,
               padding: int = 0) -> LayerCount:
    """A conv layer: output ((h + 2p - k) // s + 1) x (...) x filters."""
    ho, wo = (output_size(n, kernel, stride, padding, padding) for n in (h, w))
    return LayerCount(f"conv {kernel}x{kernel}x{c}, {filters} filter{'s' if filters > 1 else ''}",
                      _shape(h, w, c), _shape(ho, wo, filters), filters * kernel * kernel * c, filters)


def fully_connected_count(h: int, w: int, c: int, units: int, output: str | None = None) -> LayerCount:
    """Every one of the h*w*c inputs connected to every one of `units` outputs."""
    return LayerCount("fully connected", _shape(h, w, c), output or f"{units} units", h * w * c * units, units)


def tutorial_counts() -> list[LayerCount]:
    conv = conv_count(32, 32, 3, kernel=5)
    return [
        conv,
        fully_connected_count(32, 32, 3, units=28 * 28, output=conv.output),
        conv_count(1000, 1000, 3, kernel=5),
        fully_connected_count(1000, 1000, 3, units=1000),
        fully_connected_count(1000, 1000, 3, units=1000 * 1000 * 3, output="1000x1000x3 (same size)"),
    ]


def custom_counts(h: int, w: int, c: int, kernel: int, filters: int, stride: int, padding: int,
                  hidden: int | None) -> list[LayerCount]:
    """The user's conv layer, the fully connected layer with the same output size, and optionally
    a fully connected layer to `hidden` units."""
    conv = conv_count(h, w, c, kernel, filters, stride, padding)
    ho, wo, f = (int(v) for v in conv.output.split("x"))
    rows = [conv, fully_connected_count(h, w, c, units=ho * wo * f, output=conv.output)]
    if hidden is not None:
        rows.append(fully_connected_count(h, w, c, units=hidden))
    return rows
