"""Batched augmentations against exact references (rot90, integer shifts) and their stated statistics."""


import math

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


def test_gaussian_kernel_is_normalised_with_the_gaussian_ratio():
    k = augment.gaussian_kernel(4.0)
    assert len(k) == 2 * 12 + 1  # radius ceil(3 sigma)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert (k[13] / k[12]).item() == pytest.approx(math.exp(-1 / 32), rel=1e-6)  # exp(-1 / (2 sigma^2))
    assert (k[12 - 5] / k[12]).item() == pytest.approx(math.exp(-25 / 32), rel=1e-6)


@pytest.mark.parametrize("dx, dy", [(1.0, 0.0), (0.0, 2.0), (-3.0, 1.0)])
def test_a_constant_elastic_offset_reads_that_many_pixels_away(dx, dy):
    # offsets (dx, dy) mean output pixel (x, y) reads the input at (x + dx, y + dy): content moves by -offset
    x = torch.rand(2, 1, 28, 28)
    offsets = torch.tensor([dx, dy]).expand(2, 28, 28, 2)
    out = augment.warp_elastic(x, theta_for(2), offsets)
    expected = torch.zeros_like(x)
    sx, sy = int(dx), int(dy)
    expected[..., max(0, -sy):28 - max(0, sy), max(0, -sx):28 - max(0, sx)] = \
        x[..., max(0, sy):28 - max(0, -sy), max(0, sx):28 - max(0, -sx)]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_elastic_offsets_have_the_blurred_uniform_statistics():
    # Interior pixels: sum_ij k_i k_j u_ij with u ~ U(-1, 1): mean 0, sd = alpha * sqrt(1/3) * sum(k^2);
    # neighbours of a Gaussian-blurred white field correlate by exp(-1 / (4 sigma^2)).
    alpha, sigma = 34.0, 4.0
    g = torch.Generator().manual_seed(0)
    off = augment.elastic_offsets(600, 28, 28, alpha, sigma, g)  # (N, H, W, 2)
    assert off.shape == (600, 28, 28, 2)
    k = augment.gaussian_kernel(sigma)
    inner = off[:, 12:16, 12:16]  # four pixels from every edge is past the reflected border's reach
    assert inner.mean().item() == pytest.approx(0.0, abs=0.05)
    assert inner.std().item() == pytest.approx(alpha * math.sqrt(1 / 3) * (k ** 2).sum().item(), rel=0.05)
    a, b = off[:, 13, 13, 0], off[:, 13, 14, 0]
    corr = ((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std())
    assert corr.item() == pytest.approx(math.exp(-1 / (4 * sigma ** 2)), abs=0.01)
    dx, dy = off[..., 0].flatten(), off[..., 1].flatten()
    assert abs(torch.corrcoef(torch.stack([dx, dy]))[0, 1].item()) < 0.05  # the two axes are independent


def test_strong_draws_nothing_more_without_elastic_and_is_seeded_with_it():
    x = torch.rand(6, 784)
    cfg = AugmentConfig()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    plain = augment.random_erasing(augment.random_affine(x.view(-1, 1, 28, 28), cfg.strong, g2),
                                   cfg.erase_p, cfg.erase_scale, cfg.erase_ratio, g2).reshape(6, 784)
    torch.testing.assert_close(augment.strong(x, cfg, g1), plain, rtol=0, atol=0)
    assert torch.equal(g1.get_state(), g2.get_state())  # the recipe's random stream is untouched

    elastic = AugmentConfig(elastic_alpha=34.0)
    first = augment.strong(x, elastic, torch.Generator().manual_seed(3))
    torch.testing.assert_close(augment.strong(x, elastic, torch.Generator().manual_seed(3)), first, rtol=0, atol=0)
    assert (first - plain).abs().max() > 0.1  # same affines, now distorted
