"""Batched augmentations against exact references (rot90, integer shifts) and their stated statistics."""


import pytest
import torch

from kplab.digits import augment
from kplab.digits.recipe import AffineConfig, AugmentConfig


def theta_for(n, angle=0.0, tx=0.0, ty=0.0, scale=1.0, shear=0.0, size=28):
    full = lambda v: torch.full((n,), float(v))  # noqa: E731
    return augment.affine(full(angle), torch.tensor([[float(tx), float(ty)]] * n), full(scale), full(shear), size, size)


def test_identity_parameters_give_identity():
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(augment.warp(x, theta_for(3)), x, atol=1e-5, rtol=0)


def test_ninety_degrees_is_counter_clockwise_rot90():
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(augment.warp(x, theta_for(2, angle=90)), torch.rot90(x, 1, dims=(2, 3)),
                               atol=1e-5, rtol=0)


def test_integer_translation_shifts_pixels_and_fills_zero():
    x = torch.rand(1, 1, 28, 28)
    out = augment.warp(x, theta_for(1, tx=3, ty=-2))  # right 3, up 2
    expected = torch.zeros_like(x)
    expected[..., :26, 3:] = x[..., 2:, :25]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_scale_and_shear_move_a_point_where_the_matrix_says():
    # One bright pixel at (col 16, row 14): 2.5 px right of the centre (13.5, 13.5), 0.5 px below it.
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 14, 16] = 1.0
    out = augment.warp(x, theta_for(1, scale=2.0))[0, 0]
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centroid = ((out * xs).sum() / out.sum(), (out * ys).sum() / out.sum())
    assert centroid[0].item() == pytest.approx(13.5 + 2 * 2.5, abs=0.05)
    assert centroid[1].item() == pytest.approx(13.5 + 2 * 0.5, abs=0.05)
    # x-shear by 45°: x' = x + tan(45°)·y, so a point 4 px below the centre moves 4 px right.
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 17:19, 13:15] = 1.0  # centred at (13.5, 17.5)
    out = augment.warp(x, theta_for(1, shear=45.0))[0, 0]
    assert ((out * xs).sum() / out.sum()).item() == pytest.approx(13.5 + 4.0, abs=0.05)


def test_random_affine_is_per_image_and_seeded():
    x = torch.rand(1, 1, 28, 28).expand(8, 1, 28, 28).contiguous()
    cfg = AffineConfig()
    a = augment.random_affine(x, cfg, torch.Generator().manual_seed(0))
    b = augment.random_affine(x, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert (a[0] - a[1]).abs().max() > 1e-3  # same input, different draws per image
    zero = AffineConfig(degrees=0, translate=0, scale=(1.0, 1.0), shear=0)
    torch.testing.assert_close(augment.random_affine(x, zero), x, atol=1e-5, rtol=0)


def test_random_erasing_rate_area_and_value():
    n = 4000
    x = torch.ones(n, 1, 28, 28)
    out = augment.random_erasing(x, 0.15, (0.01, 0.06), (0.3, 3.3), torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1).double()  # pixels set to 0, per image
    hit = erased > 0
    assert hit.double().mean().item() == pytest.approx(0.15, abs=0.02)  # binomial sd 0.006
    frac = erased[hit] / 784
    assert frac.min() >= 0.005 and frac.max() <= 0.075  # U(0.01, 0.06) of the area, up to rounding of sides
    assert frac.mean().item() == pytest.approx(0.035, abs=0.004)
    rect = out[hit.nonzero()[0, 0], 0] == 0  # the erased region is one axis-aligned rectangle
    rows, cols = rect.any(1).nonzero(), rect.any(0).nonzero()
    assert rect.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_corruption_masks_first_then_adds_noise():
    """On an all-ones image: masked pixels become pure noise N(0, σ²) (not exactly 0, which the opposite
    order would give), kept pixels 1 + N(0, σ²); the masked share is the mask rate."""
    x = torch.ones(200, 784)
    out = augment.corrupt(x, 0.2, 0.15, torch.Generator().manual_seed(0))
    masked = out < 0.5  # 0.5 is > 3σ from both modes
    assert masked.double().mean().item() == pytest.approx(0.2, abs=0.005)
    assert (out == 0).sum() == 0
    assert out[masked].mean().item() == pytest.approx(0.0, abs=0.005)
    assert out[masked].std().item() == pytest.approx(0.15, rel=0.02)
    assert out[~masked].mean().item() == pytest.approx(1.0, abs=0.005)
    assert out[~masked].std().item() == pytest.approx(0.15, rel=0.02)


def test_strong_and_weak_keep_flat_rows():
    x = torch.rand(5, 784)
    g = torch.Generator().manual_seed(1)
    assert augment.strong(x, AugmentConfig(), g).shape == (5, 784)
    assert augment.weak(x, AugmentConfig(), g).shape == (5, 784)
    # weak moves images less than strong on average
    big = torch.rand(1, 784).expand(400, 784)
    d_weak = (augment.weak(big, AugmentConfig(), g) - big).abs().mean()
    d_strong = (augment.strong(big, AugmentConfig(), g) - big).abs().mean()
    assert d_weak < d_strong
