"""Hand-coded convolution filters, applied with our own `conv2d`.

Before CNNs learned their filters, people designed them. Each kernel here is a classic; conv2d (a
cross-correlation, so no kernel flip) slides it over the image with zero padding:

    identity        leaves the image unchanged                    (sum 1)
    box blur 5x5    average of the 25 neighbours                   (sum 1)
    Gaussian 5x5    binomial [1 4 6 4 1]^T [1 4 6 4 1] / 256        (sum 1), a smooth blur
    sharpen         5 * centre - 4 neighbours: image + (-Laplacian) (sum 1)
    Sobel x / y     smoothed derivative d/dx (image right) and d/dy (image down)  (sum 0)
    Laplacian       4-neighbour second derivative, responds to blobs and edges on both sides (sum 0)
    emboss          a diagonal derivative plus the image, looks like relief (sum 1)

plus the gradient magnitude sqrt(Sobel_x^2 + Sobel_y^2), which is not itself a linear filter.
"""

from __future__ import annotations

import numpy as np

from kplab.scratch.conv import conv2d

GRADIENT_MAGNITUDE = "gradient magnitude"


def filter_bank() -> dict[str, np.ndarray]:
    """name -> kernel (3x3 or 5x5, float64), a fresh copy on every call."""
    binomial = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    sobel_x = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    return {
        "identity": np.array([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]),
        "box blur": np.full((5, 5), 1 / 25),
        "Gaussian": np.outer(binomial, binomial) / 256,
        "sharpen": np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
        "Sobel x": sobel_x,
        "Sobel y": sobel_x.T.copy(),
        "Laplacian": np.array([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]),
        "emboss": np.array([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    }


def apply_filters(image: np.ndarray) -> dict[str, np.ndarray]:
    """Every bank filter (and the gradient magnitude) applied to a (H, W) image, output (H, W) each.

    All kernels are centred in 5x5 (zeros around a 3x3 change nothing) so one conv2d call with eight
    output channels and padding 2 does all of them.
    """
    bank = filter_bank()
    weight = np.zeros((len(bank), 1, 5, 5))  # (8, 1, 5, 5)
    for i, kernel in enumerate(bank.values()):
        off = (5 - kernel.shape[0]) // 2
        weight[i, 0, off: off + kernel.shape[0], off: off + kernel.shape[1]] = kernel
    out = conv2d(image[None, None].astype(np.float64), weight, padding=2)[0]  # (8, H, W)
    results = dict(zip(bank, out))
    results[GRADIENT_MAGNITUDE] = np.hypot(results["Sobel x"], results["Sobel y"])
    return results
