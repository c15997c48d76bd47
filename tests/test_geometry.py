"""kplab.geometry against independent references: kornia's pixel-space warps, explicit 3x3 algebra,
torch.linalg.inv, and the centroid of a warped Gaussian dot."""

import math

import kornia
import pytest
import torch

from kplab.geometry import (compose_affine, hflip, hflip_affine, invert_affine, matmul_affine, random_affine,
                            warp_images, warp_points)


def homogeneous(A):
    """(N, 2, 3) -> (N, 3, 3) with bottom row [0, 0, 1]."""
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=A.dtype).expand(A.shape[0], 1, 3)
    return torch.cat([A, bottom], 1)


def grid_to_pixel(h, w, dtype=torch.float64):
    """3x3 map from the grid_sample(align_corners=False) frame to pixel indices: j = ((g + 1) W - 1) / 2."""
    return torch.tensor([[w / 2, 0, (w - 1) / 2], [0, h / 2, (h - 1) / 2], [0, 0, 1]], dtype=dtype)


def random_matrices(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    A = random_affine(n, rotation_deg=40, scale=(0.7, 1.3), shift=0.2, shear_deg=15, generator=g, dtype=dtype)
    flip = torch.rand(n, generator=g) < 0.5
    return matmul_affine(A, hflip_affine(flip, dtype))


def gaussian_dots(centres_px, h, w, sigma=1.6):
    """Images (N, 1, H, W) with one Gaussian blob each, centred at (x, y) pixel indices (N, 2)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")  # (H, W)
    d2 = (xs - centres_px[:, 0, None, None]) ** 2 + (ys - centres_px[:, 1, None, None]) ** 2  # (N, H, W)
    return torch.exp(-d2 / (2 * sigma**2))[:, None]


def centroids(images):
    """Intensity-weighted centroid (x, y) in pixel indices of (N, 1, H, W) -> (N, 2)."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=images.dtype), torch.arange(w, dtype=images.dtype),
                            indexing="ij")
    mass = images.sum((1, 2, 3))  # (N,)
    return torch.stack([(images[:, 0] * xs).sum((1, 2)), (images[:, 0] * ys).sum((1, 2))], -1) / mass[:, None]


def test_compose_affine_equals_product_of_elementary_matrices():
    rot, scale, shear = [30.0, -75.0, 0.0], [1.2, 0.8, 1.0], [10.0, 0.0, -20.0]
    shift = [[0.1, -0.2], [0.0, 0.3], [-0.5, 0.0]]
    A = compose_affine(torch.tensor(rot, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64),
                       torch.tensor(shift, dtype=torch.float64), torch.tensor(shear, dtype=torch.float64))
    for i in range(3):
        a, k = math.radians(rot[i]), math.tan(math.radians(shear[i]))
        T = torch.tensor([[1, 0, shift[i][0]], [0, 1, shift[i][1]], [0, 0, 1]], dtype=torch.float64)
        R = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
                         dtype=torch.float64)
        H = torch.tensor([[1, k, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
        S = torch.diag(torch.tensor([scale[i], scale[i], 1.0], dtype=torch.float64))
        torch.testing.assert_close(A[i], (T @ R @ H @ S)[:2], rtol=0, atol=1e-12)


def test_random_affine_ranges_and_determinism():
    assert torch.equal(random_matrices(50, seed=1), random_matrices(50, seed=1))
    assert not torch.equal(random_matrices(50, seed=1), random_matrices(50, seed=2))
    g = torch.Generator().manual_seed(2)
    A = random_affine(2000, rotation_deg=20, scale=(0.9, 1.1), shift=0.08, shear_deg=0, generator=g,
                      dtype=torch.float64)
    scale = torch.linalg.det(A[:, :, :2]).sqrt()  # without shear det = s^2
    angle = torch.rad2deg(torch.atan2(A[:, 1, 0], A[:, 0, 0]))
    assert 0.9 <= scale.min() and scale.max() <= 1.1 and scale.max() - scale.min() > 0.18
    assert angle.abs().max() <= 20 and angle.abs().max() > 19
    assert A[:, :, 2].abs().max() <= 0.08 and A[:, :, 2].abs().max() > 0.079


def test_random_affine_reframe_keeps_the_framing_of_the_rest_and_the_same_draws():
    """reframe p: a share p of the samples is scaled and shifted; the others are the same rotation and
    shear with scale 1 and shift 0 (compose_affine of their own draws), and p never reshuffles the draws."""
    def draw(reframe):
        g = torch.Generator().manual_seed(8)
        return random_affine(4000, rotation_deg=20, scale=(0.8, 1.25), shift=0.2, shear_deg=5, generator=g,
                             dtype=torch.float64, reframe=reframe)

    full, none, part = draw(1.0), draw(0.0), draw(0.3)
    assert none[:, :, 2].abs().max() == 0 and full[:, :, 2].abs().min() > 0
    torch.testing.assert_close(torch.linalg.det(none[:, :, :2]), torch.ones(4000, dtype=torch.float64))
    scale = torch.linalg.det(full[:, :, :2]).sqrt()  # shear and rotation keep areas: det = s^2
    torch.testing.assert_close(none[:, :, :2], full[:, :, :2] / scale[:, None, None], rtol=0, atol=1e-12)
    moved = (part[:, :, 2] != 0).any(1)  # (N,)
    assert 0.27 < moved.double().mean() < 0.33  # 0.3 +- 5 standard errors of 4000 draws
    torch.testing.assert_close(part[moved], full[moved], rtol=0, atol=0)
    torch.testing.assert_close(part[~moved], none[~moved], rtol=0, atol=0)


def test_invert_affine_matches_linalg_inv_and_rejects_singular():
    A = random_matrices(256, seed=3)
    torch.testing.assert_close(homogeneous(invert_affine(A)), torch.linalg.inv(homogeneous(A)),
                               rtol=0, atol=1e-12)
    singular = compose_affine(torch.zeros(2), torch.tensor([1.0, 0.0]), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="singular"):
        invert_affine(singular)


def test_matmul_affine_is_3x3_product():
    A, B = random_matrices(32, seed=4), random_matrices(32, seed=5)
    torch.testing.assert_close(homogeneous(matmul_affine(A, B)), homogeneous(A) @ homogeneous(B),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_warp_images_matches_kornia_in_pixel_coordinates(padding_mode):
    n, c, h, w = 6, 3, 20, 28  # non-square and multi-channel: axis order and scaling must be right
    images = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    A = random_matrices(n, seed=7)
    P = grid_to_pixel(h, w)
    A_px = (P @ homogeneous(A) @ torch.linalg.inv(P))[:, :2]  # same map, in pixel indices
    ours = warp_images(images, A, padding_mode=padding_mode)
    ref = kornia.geometry.transform.warp_affine(images, A_px, (h, w), padding_mode=padding_mode,
                                                align_corners=True)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_warp_images_identity_and_mirror_are_exact_pixel_maps():
    images = torch.rand(4, 2, 16, 12, generator=torch.Generator().manual_seed(8))
    identity = compose_affine(torch.zeros(4), torch.ones(4), torch.zeros(4, 2), torch.zeros(4))
    torch.testing.assert_close(warp_images(images, identity), images, rtol=0, atol=1e-6)
    mirror = hflip_affine(torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(warp_images(images, mirror), torch.flip(images, dims=[-1]), rtol=0, atol=1e-6)


def test_warp_points_matches_kornia_and_keeps_nan_local():
    A = random_matrices(8, seed=9)
    points = torch.rand(8, 15, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 2 - 1
    ref = kornia.geometry.linalg.transform_points(homogeneous(A), points)
    torch.testing.assert_close(warp_points(points, A), ref, rtol=0, atol=1e-12)
    points[2, 4, 0] = float("nan")
    moved = warp_points(points, A)
    assert torch.isnan(moved[2, 4]).all()
    assert torch.isfinite(moved).sum() == moved.numel() - 2


def test_dot_lands_on_warped_point():
    """A Gaussian dot at p, warped by A, has its intensity centroid within 0.1 px of A(p)."""
    n, h, w = 64, 96, 96
    g = torch.Generator().manual_seed(11)
    points = (torch.rand(n, 1, 2, generator=g, dtype=torch.float64) - 0.5) * 0.8  # (N, 1, 2) grid frame
    P = grid_to_pixel(h, w)
    to_px = lambda p: p @ P[:2, :2].T + P[:2, 2]  # noqa: E731
    images = gaussian_dots(to_px(points[:, 0]), h, w)
    A = random_matrices(n, seed=12)
    A[:, :, :2] *= 0.85  # keep every dot well inside the frame
    found = centroids(warp_images(images, A, padding_mode="zeros"))  # (N, 2) px
    expected = to_px(warp_points(points, A)[:, 0])
    error = (found - expected).norm(dim=-1)
    assert error.max() < 0.1, f"max dot error {error.max():.3f} px"
    moved = (expected - to_px(points[:, 0])).norm(dim=-1)
    assert moved.median() > 5  # the transforms really move the dots


def test_hflip_twice_is_identity_and_matches_kornia_and_mirror():
    g = torch.Generator().manual_seed(13)
    images, points = torch.rand(5, 1, 10, 14, generator=g), torch.rand(5, 4, 2, generator=g) * 2 - 1
    perm = [1, 0, 2, 3]
    f_images, f_points = hflip(images, points, perm)
    torch.testing.assert_close(f_images, kornia.geometry.transform.hflip(images), rtol=0, atol=0)
    torch.testing.assert_close(f_points[:, 0], torch.stack([-points[:, 1, 0], points[:, 1, 1]], -1))
    torch.testing.assert_close(f_points[:, 3], torch.stack([-points[:, 3, 0], points[:, 3, 1]], -1))
    back_images, back_points = hflip(f_images, f_points, perm)
    assert torch.equal(back_images, images) and torch.equal(back_points, points)
    # In pixel indices the point mirror is x -> W - 1 - x, the same map torch.flip applies to columns.
    P = grid_to_pixel(10, 14, torch.float32)
    before = points[:, 2] @ P[:2, :2].T + P[:2, 2]  # (N, 2) px
    after = f_points[:, 2] @ P[:2, :2].T + P[:2, 2]
    torch.testing.assert_close(after, torch.stack([13 - before[:, 0], before[:, 1]], -1))


def test_warp_shapes_are_checked_with_a_message_naming_both():
    A = torch.eye(2, 3).unsqueeze(0)  # (1, 2, 3)
    with pytest.raises(ValueError, match=r"^warp_images: need images \(N, C, H, W\) and A \(N, 2, 3\), "
                                         r"got \(1, 8, 8\) and \(1, 2, 3\)$"):
        warp_images(torch.zeros(1, 8, 8), A)
    with pytest.raises(ValueError, match=r"got \(2, 1, 8, 8\) and \(1, 2, 3\)$"):
        warp_images(torch.zeros(2, 1, 8, 8), A)  # one matrix for two images


def test_matrices_of_another_dtype_follow_the_images_and_points():
    A64 = compose_affine(torch.tensor([10.0], dtype=torch.float64), 1.1, torch.tensor([0.1, -0.05]), 3.0)
    images = torch.rand(1, 1, 16, 16)
    out = warp_images(images, A64)  # float32 images, float64 matrix
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, warp_images(images, A64.float()))
    points = torch.rand(1, 4, 2, dtype=torch.float64)
    moved = warp_points(points, A64.float())  # float64 points, float32 matrix
    assert moved.dtype == torch.float64
    torch.testing.assert_close(moved, warp_points(points, A64), atol=1e-6, rtol=0)


def test_random_affine_is_float64_uniform_draws_in_the_documented_order():
    n = 64
    A = random_affine(n, rotation_deg=20.0, scale=(0.8, 1.2), shift=0.1, shear_deg=5.0,
                      generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    u = [torch.rand(n, *s, generator=g, dtype=torch.float64) for s in ((), (), (2,), ())]
    rot, sc, sh, shr = -20 + 40 * u[0], 0.8 + 0.4 * u[1], -0.1 + 0.2 * u[2], -5 + 10 * u[3]
    torch.testing.assert_close(A, compose_affine(rot, sc, sh, shr), rtol=0, atol=1e-12)
    assert (sh < 0).any() and (sh > 0).any() and (shr < 0).any() and (shr > 0).any()  # both signs drawn


def test_singular_matrices_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^invert_affine: a matrix is singular \(determinant 0\)$"):
        invert_affine(torch.zeros(1, 2, 3))


def test_warp_is_quiet_and_honours_the_sampling_mode():
    import warnings

    images = torch.rand(1, 1, 8, 8)
    A = compose_affine(torch.tensor([0.0]), 1.0, torch.tensor([1 / 8, 0.0]), 0.0)  # half a pixel right
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "default grid_sample behaviour" warning: align_corners is explicit
        bilinear = warp_images(images, A)
        nearest = warp_images(images, A, mode="nearest")
    torch.testing.assert_close(bilinear[..., 1:], (images[..., :-1] + images[..., 1:]) / 2)
    assert torch.isin(nearest, images).all() and not torch.equal(nearest, bilinear)


def test_compose_affine_takes_integer_parameters_and_keeps_float64():
    A = compose_affine(torch.tensor([90]), torch.tensor([2]), torch.tensor([1, 0]), torch.tensor([0]))
    assert A.dtype == torch.float32
    torch.testing.assert_close(A, torch.tensor([[[0.0, -2.0, 1.0], [2.0, 0.0, 0.0]]]), atol=1e-6, rtol=0)
    A64 = compose_affine(torch.tensor([30.0], dtype=torch.float64), 1.0, [0.1, 0.2], 0.0)
    assert A64.dtype == torch.float64 and A64[0, 0, 2].item() == 0.1  # the shift is read in float64, exactly
