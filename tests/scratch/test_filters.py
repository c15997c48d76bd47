"""Hand-coded filters through our conv2d, against OpenCV's filter2D and against calculus."""

import cv2
import numpy as np
import pytest

from kplab.scratch.filters import GRADIENT_MAGNITUDE, apply_filters, filter_bank

SUMS = {"identity": 1, "box blur": 1, "Gaussian": 1, "sharpen": 1, "Sobel x": 0, "Sobel y": 0,
        "Laplacian": 0, "emboss": 1}


def opencv_reference(image: np.ndarray) -> dict[str, np.ndarray]:
    """The same filters by OpenCV: filter2D is also a correlation; BORDER_CONSTANT pads with zeros."""
    out = {name: cv2.filter2D(image, cv2.CV_64F, k, borderType=cv2.BORDER_CONSTANT)
           for name, k in filter_bank().items()}
    out[GRADIENT_MAGNITUDE] = np.hypot(out["Sobel x"], out["Sobel y"])
    return out


def test_bank_has_the_promised_filters():
    bank = filter_bank()
    assert {name: round(float(k.sum()), 12) for name, k in bank.items()} == SUMS
    assert {k.shape for k in bank.values()} == {(3, 3), (5, 5)}


def test_filters_match_opencv_on_a_random_image():
    image = np.random.default_rng(0).uniform(size=(23, 31))
    ours, ref = apply_filters(image), opencv_reference(image)
    assert set(ours) == set(ref)
    for name in ref:
        np.testing.assert_allclose(ours[name], ref[name], atol=1e-12, err_msg=name)


def test_derivative_filters_on_known_functions():
    y, x = np.mgrid[0:12, 0:15].astype(float)
    inner = (slice(2, -2), slice(2, -2))
    # f = 0.5 x: Sobel x sums (1 + 2 + 1) * (f(x+1) - f(x-1)) = 4 * 2 * 0.5 = 4; Sobel y sees nothing.
    ramp = apply_filters(0.5 * x)
    np.testing.assert_allclose(ramp["Sobel x"][inner], 4.0)
    np.testing.assert_allclose(ramp["Sobel y"][inner], 0.0, atol=1e-12)
    # f = x^2 + 3 y^2: the discrete Laplacian is exactly 2 + 6 = 8 everywhere inside.
    np.testing.assert_allclose(apply_filters(x ** 2 + 3 * y ** 2)["Laplacian"][inner], 8.0)
    # Smoothing filters and sharpen leave a constant image constant away from the border.
    flat = apply_filters(np.full((12, 15), 0.7))
    for name in ("identity", "box blur", "Gaussian", "sharpen"):
        np.testing.assert_allclose(flat[name][inner], 0.7, err_msg=name)


@pytest.mark.parametrize("name", ["Sobel x", "Sobel y"])
def test_sobel_matches_opencv_sobel_operator(name):
    image = np.random.default_rng(1).uniform(size=(20, 20))
    dx, dy = (1, 0) if name == "Sobel x" else (0, 1)
    expected = cv2.Sobel(image, cv2.CV_64F, dx, dy, ksize=3, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(apply_filters(image)[name], expected, atol=1e-12)
