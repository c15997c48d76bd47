"""Face augmentation: pixels and I2DL keypoints move together for any pixel-centre convention, the mirror
relabels left/right, photometric jitter stays in range and leaves points alone; kornia as a blur oracle."""

import dataclasses

import kornia
import numpy as np
import pytest
import torch

from kplab.errors import ConfigError
from kplab.faces.training.augment import (AugmentConfig, Augmenter, flip_faces, gaussian_blur, points_from_grid,
                                 points_to_grid)
from kplab.faces.training.layout import HALF, IMAGE_SIZE, KAGGLE15, Layout, normalise, to_pixels

S = IMAGE_SIZE
GEOMETRY_OFF = dict(flip=0.0, rotation_deg=0.0, scale=(1.0, 1.0), shift=0.0, shear_deg=0.0)
PHOTOMETRY_OFF = dict(brightness=0.0, contrast=0.0, gamma=0.0, blur=0.0, noise=0.0, cutout=0.0)
ONE_POINT = Layout("one", ("dot",), ())


def config(**fields):
    return dataclasses.replace(AugmentConfig(), **fields)


def dots_at(points, pixel_centre, sigma=1.6):
    """Images (N, 1, S, S) with a Gaussian blob at each I2DL point (N, 2): array index j = u - pixel_centre."""
    index = to_pixels(points) - pixel_centre  # (N, 2)
    grid = torch.arange(S, dtype=points.dtype)
    dx = grid[None, None, :] - index[:, 0, None, None]  # (N, 1, S)
    dy = grid[None, :, None] - index[:, 1, None, None]  # (N, S, 1)
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))[:, None]  # (N, 1, S, S)


def centroid_points(images, pixel_centre):
    """Intensity centroid of each image, as an I2DL point (N, 2)."""
    grid = torch.arange(S, dtype=images.dtype)
    mass = images.sum((1, 2, 3))
    x = (images[:, 0] * grid[None, None, :]).sum((1, 2)) / mass
    y = (images[:, 0] * grid[None, :, None]).sum((1, 2)) / mass
    return normalise(torch.stack([x, y], -1) + pixel_centre)


def random_inputs(n, layout=KAGGLE15, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, S, S, generator=g)
    points = (torch.rand(n, layout.n_points, 2, generator=g) - 0.5) * 1.4
    mask = torch.rand(n, layout.n_points, generator=g) > 0.3
    return images, points, mask


def dot_errors_px(augment_pixel_centre, data_pixel_centre, n=48, seed=0):
    cfg = config(flip=0.5, rotation_deg=35.0, scale=(0.85, 1.15), shift=0.1, shear_deg=8.0, padding="zeros",
                 **PHOTOMETRY_OFF)
    augmenter = Augmenter(cfg, ONE_POINT, pixel_centre=augment_pixel_centre)
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(n, 1, 2, generator=g, dtype=torch.float64) - 0.5) * 0.9  # (N, 1, 2)
    images = dots_at(points[:, 0], data_pixel_centre)
    mask = torch.ones(n, 1, dtype=torch.bool)
    out_images, out_points, _ = augmenter(images, points, mask, torch.Generator().manual_seed(seed + 1))
    found = centroid_points(out_images, data_pixel_centre)
    return (found - out_points[:, 0]).norm(dim=-1) * HALF, (out_points - points).norm(dim=-1) * HALF


@pytest.mark.parametrize("pixel_centre", [0.0, 0.5, 1.0])
def test_dot_at_keypoint_stays_on_keypoint(pixel_centre):
    error, moved = dot_errors_px(pixel_centre, pixel_centre)
    assert error.max() < 0.1, f"max dot error {error.max():.3f} px"
    assert moved.median() > 3  # the augmentation really moved the points


def test_dot_test_detects_a_wrong_pixel_centre():
    """The check above has teeth: an augmenter half a pixel off the data's convention misses the dots."""
    error, _ = dot_errors_px(augment_pixel_centre=0.5, data_pixel_centre=0.0)
    assert error.max() > 0.5


@pytest.mark.parametrize("pixel_centre", [0.0, 0.5, 1.0])
def test_frame_conversion_round_trip_and_offset(pixel_centre):
    points = torch.rand(3, 15, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(points_from_grid(points_to_grid(points, pixel_centre), pixel_centre), points)
    offset = (0.5 - pixel_centre) / HALF  # g - n, from the definitions of both frames
    torch.testing.assert_close(points_to_grid(points, pixel_centre) - points, torch.full_like(points, offset))


@pytest.mark.parametrize("pixel_centre", [0.0, 0.5, 1.0])
def test_flip_twice_is_identity(pixel_centre):
    images, points, _ = random_inputs(4)
    once = flip_faces(images, points, KAGGLE15, pixel_centre)
    twice = flip_faces(*once, KAGGLE15, pixel_centre)
    assert torch.equal(twice[0], images)
    torch.testing.assert_close(twice[1], points, rtol=0, atol=1e-6)
    assert not torch.allclose(once[1], points)


@pytest.mark.parametrize("pixel_centre", [0.0, 0.5, 1.0])
def test_flip_swaps_names(pixel_centre):
    """The physical left eye (bright dot, image right) ends at image left, now named right_eye_center."""
    left, right = KAGGLE15.index("left_eye_center"), KAGGLE15.index("right_eye_center")
    points = torch.zeros(1, KAGGLE15.n_points, 2, dtype=torch.float64)
    # On pixel centres (array index + pixel_centre), so each dot's peak is one pixel of value 1.
    points[0, left] = normalise(torch.tensor([67.0, 35.0]) + pixel_centre)
    points[0, right] = normalise(torch.tensor([28.0, 37.0]) + pixel_centre)
    images = dots_at(points[:, left], pixel_centre) + 0.5 * dots_at(points[:, right], pixel_centre)
    f_images, f_points = flip_faces(images, points, KAGGLE15, pixel_centre)
    assert f_points[0, left, 0] > 0 > f_points[0, right, 0]  # the names keep their image side

    def brightness_at(point):  # intensity at the nearest pixel of an I2DL point
        col, row = torch.round(to_pixels(point) - pixel_centre).long().tolist()
        return f_images[0, 0, row, col].item()

    assert brightness_at(f_points[0, right]) == pytest.approx(1.0, abs=1e-6)
    assert brightness_at(f_points[0, left]) == pytest.approx(0.5, abs=1e-6)


def test_augmenter_flip_permutes_mask_and_missing_points():
    images, points, mask = random_inputs(64, seed=1)
    points[~mask] = float("nan")
    perm = torch.as_tensor(KAGGLE15.flip_permutation)
    for p, expect_flipped in ((1.0, True), (0.0, False)):
        _, out_points, out_mask = Augmenter(config(flip=p), KAGGLE15)(images, points, mask,
                                                                     torch.Generator().manual_seed(2))
        assert torch.equal(out_mask, mask[:, perm] if expect_flipped else mask)
        assert torch.equal(torch.isnan(out_points).any(-1), ~out_mask)
    _, out_points, out_mask = Augmenter(config(flip=0.5), KAGGLE15)(images, points, mask,
                                                                   torch.Generator().manual_seed(3))
    flipped = (out_mask == mask[:, perm]).all(1) & (out_mask != mask).any(1)
    kept = (out_mask == mask).all(1)
    assert (flipped | kept).all() and 10 < flipped.sum() < 54
    assert torch.equal(torch.isnan(out_points).any(-1), ~out_mask)


def test_augmenter_is_deterministic_for_a_generator():
    images, points, mask = random_inputs(16, seed=4)
    augmenter = Augmenter(config(blur=0.5, cutout=0.5), KAGGLE15)
    run = lambda seed: augmenter(images, points, mask, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_photometric_keeps_range_and_points():
    images, points, mask = random_inputs(64, seed=7)
    images[:8] = 0.0
    images[8:16] = 1.0
    strong = config(**GEOMETRY_OFF, brightness=0.5, contrast=1.0, gamma=1.0, blur=1.0, noise=0.3, cutout=1.0)
    out, out_points, out_mask = Augmenter(strong, KAGGLE15)(images, points, mask, torch.Generator().manual_seed(8))
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    assert (out == 0).any() and (out == 1).any()  # the clamp was needed and applied
    torch.testing.assert_close(out_points, points, rtol=0, atol=1e-6)
    assert torch.equal(out_mask, mask)


def test_all_off_is_identity():
    images, points, mask = random_inputs(8, seed=9)
    out, out_points, out_mask = Augmenter(config(**GEOMETRY_OFF, **PHOTOMETRY_OFF), KAGGLE15)(
        images, points, mask, torch.Generator().manual_seed(10))
    torch.testing.assert_close(out, images, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_points, points, rtol=0, atol=1e-6)


def photometric(images, seed=11, **fields):
    cfg = config(**GEOMETRY_OFF, **{**PHOTOMETRY_OFF, **fields})
    return Augmenter(cfg, KAGGLE15).photometric(images, torch.Generator().manual_seed(seed))


def test_brightness_adds_a_uniform_offset_per_image():
    out = photometric(torch.full((400, 1, S, S), 0.5), brightness=0.2)
    offset = out[:, 0, 0, 0] - 0.5  # (N,)
    assert torch.allclose(out, offset[:, None, None, None] + 0.5, atol=1e-6)  # constant per image
    assert offset.abs().max() <= 0.2 + 1e-6
    assert abs(offset.std().item() - 0.2 / 3**0.5) < 0.02  # U(-b, b) has std b / sqrt(3)


def test_contrast_scales_about_the_mean():
    g = torch.Generator().manual_seed(12)
    images = 0.4 + 0.2 * torch.rand(200, 1, S, S, generator=g)  # no clamping can occur
    out = photometric(images, contrast=0.3)
    torch.testing.assert_close(out.mean((1, 2, 3)), images.mean((1, 2, 3)), rtol=0, atol=1e-5)
    ratio = out.std((1, 2, 3)) / images.std((1, 2, 3))
    assert 0.7 - 1e-4 <= ratio.min() and ratio.max() <= 1.3 + 1e-4 and ratio.max() - ratio.min() > 0.5


def test_gamma_is_a_power_per_image():
    images = torch.linspace(0.05, 0.95, S * S).reshape(1, 1, S, S).expand(100, 1, S, S).contiguous()
    out = photometric(images, gamma=0.3)
    exponent = torch.log(out) / torch.log(images)  # (N, 1, S, S), constant per image
    torch.testing.assert_close(exponent, exponent[:, :, :1, :1].expand_as(exponent), rtol=0, atol=1e-3)
    e = exponent[:, 0, 0, 0]
    assert np.exp(-0.3) - 1e-3 <= e.min() and e.max() <= np.exp(0.3) + 1e-3 and e.max() - e.min() > 0.4


def test_noise_std_is_at_most_the_setting():
    images = torch.full((200, 1, S, S), 0.5)
    stds = (photometric(images, noise=0.05) - images).std((1, 2, 3))  # (N,)
    assert stds.max() < 0.05 * 1.03
    assert abs(stds.mean().item() - 0.025) < 0.004  # std ~ U(0, noise)


def test_cutout_paints_one_flat_rectangle():
    images = torch.rand(32, 1, S, S, generator=torch.Generator().manual_seed(13))
    out = photometric(images, cutout=1.0, cutout_size=0.3)
    # Everything else is off, but gamma's exp(log x) is only exact to float rounding.
    for changed, o in zip(((out - images).abs() > 1e-5)[:, 0], out[:, 0]):  # per image: the painted region
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        assert 0 < len(rows) <= 0.3 * S + 1 and 0 < len(cols) <= 0.3 * S + 1
        box = o[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert torch.all(box == box[0, 0])  # flat, rectangular (a few random pixels may equal the fill)


def test_gaussian_blur_matches_kornia_per_sample_sigma():
    images = torch.rand(5, 2, 40, 32, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    sigma = torch.tensor([0.5, 0.8, 1.0, 1.3, 1.5], dtype=torch.float64)
    ours = gaussian_blur(images, sigma, radius=5)
    ref = kornia.filters.gaussian_blur2d(images, (11, 11), torch.stack([sigma, sigma], -1), border_type="reflect")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_blur_probability_selects_images():
    images = torch.rand(64, 1, S, S, generator=torch.Generator().manual_seed(15))
    changed = (photometric(images, blur=0.5) - images).abs().amax((1, 2, 3)) > 1e-3  # (N,)
    assert 16 < changed.sum() < 48
    assert (photometric(images, blur=1.0) - images).abs().amax((1, 2, 3)).min() > 1e-3


def test_bad_config_and_shapes_are_named():
    with pytest.raises(ConfigError, match="augment.flip"):
        Augmenter(config(flip=1.5), KAGGLE15)
    with pytest.raises(ConfigError, match="augment.scale"):
        Augmenter(config(scale=(1.2, 0.9)), KAGGLE15)
    with pytest.raises(ConfigError, match="augment.padding"):
        Augmenter(config(padding="wrap"), KAGGLE15)
    images, points, mask = random_inputs(2)
    with pytest.raises(ValueError, match="points"):
        Augmenter(AugmentConfig(), KAGGLE15)(images, points[:, :3], mask, torch.Generator())


@pytest.mark.real
def test_real_faces_keep_subject_left_at_image_right(shared_data):
    """Dataset fact: the subject's left eye/mouth corner lies at image right; flips must keep it so."""
    with np.load(shared_data / "faces" / "faces15.npz") as data:
        images = torch.from_numpy(data["images"][:64]).float().div(255)[:, None]
        points = normalise(torch.from_numpy(data["keypoints"][:64]).float())
    mask = torch.isfinite(points).all(-1)
    pairs = [(KAGGLE15.index(f"left_{n}"), KAGGLE15.index(f"right_{n}"))
             for n in ("eye_center", "eye_outer_corner")] + \
            [(KAGGLE15.index("mouth_left_corner"), KAGGLE15.index("mouth_right_corner"))]

    def subject_left_at_image_right(p):
        return all(bool((p[:, a, 0] > p[:, b, 0]).all()) for a, b in pairs)

    assert subject_left_at_image_right(points)
    assert subject_left_at_image_right(flip_faces(images, points, KAGGLE15)[1])
    _, augmented, _ = Augmenter(config(flip=1.0), KAGGLE15)(images, points, mask, torch.Generator().manual_seed(16))
    assert subject_left_at_image_right(augmented)


RULES = [  # (field, accepted edge values, refused values, the rule the message states)
    ("flip", [0.0, 1.0], [-0.01, 1.01], "a probability in [0, 1]"),
    ("blur", [0.0, 1.0], [-0.01, 1.01], "a probability in [0, 1]"),
    ("cutout", [0.0, 1.0], [-0.01, 1.01], "a probability in [0, 1]"),
    ("reframe", [0.0, 1.0], [-0.01, 1.01], "a probability in [0, 1]"),
    ("rotation_deg", [0.0], [-0.5], ">= 0"),
    ("shift", [0.0], [-0.01], ">= 0"),
    ("brightness", [0.0], [-0.01], ">= 0"),
    ("gamma", [0.0], [-0.01], ">= 0"),
    ("noise", [0.0], [-0.01], ">= 0"),
    ("shear_deg", [0.0, 59.9], [-0.1, 60.0], "in [0, 60)"),
    ("contrast", [0.0, 1.0], [-0.01, 1.01], "in [0, 1]"),
    ("scale", [(0.5, 0.5), (0.01, 3.0)], [(0.0, 1.0), (1.2, 0.9)], "a range (lo, hi) with 0 < lo <= hi"),
    ("blur_sigma", [(0.5, 0.5), (1.0, 16.0)], [(0.0, 1.0), (2.0, 1.0), (1.0, 16.1)],
     "a range (lo, hi) with 0 < lo <= hi <= 16"),
    ("cutout_size", [1.0, 0.01], [0.0, 1.01], "in (0, 1]"),
    ("padding", ["border", "zeros"], ["wrap"], '"border" or "zeros"'),
]


@pytest.mark.parametrize("field, good, bad, rule", RULES, ids=[r[0] for r in RULES])
def test_each_config_field_is_checked_at_its_edges_and_named(field, good, bad, rule):
    for value in good:
        Augmenter(config(**{field: value}), KAGGLE15)
    for value in bad:
        with pytest.raises(ConfigError) as err:
            Augmenter(config(**{field: value}), KAGGLE15)
        assert str(err.value) == f"augment.{field} must be {rule}, got {value!r}"


def test_a_share_of_a_batch_is_augmented_as_in_the_whole_batch():
    images, points, mask = random_inputs(8, seed=16)
    augmenter = Augmenter(config(blur=0.5, cutout=0.5, noise=0.05), KAGGLE15)
    whole = augmenter(images, points, mask, torch.Generator().manual_seed(17))
    part = augmenter(images[3:6], points[3:6], mask[3:6], torch.Generator().manual_seed(17), share=slice(3, 6), batch=8)
    for a, b in zip(whole, part):
        torch.testing.assert_close(a[3:6], b, rtol=0, atol=1e-6)
    alone = augmenter(images[3:6], points[3:6], mask[3:6], torch.Generator().manual_seed(17))
    assert not torch.allclose(alone[0], part[0])  # drawn as a batch of its own, the rows differ


def test_blur_radius_covers_three_sigma_and_refuses_images_too_small():
    assert Augmenter(config(blur_sigma=(0.5, 1.5)), KAGGLE15).blur_radius == 5
    assert Augmenter(config(blur_sigma=(0.5, 2.0)), KAGGLE15).blur_radius == 6
    with pytest.raises(ValueError, match="radius 8 needs images larger than 8 pixels"):
        gaussian_blur(torch.rand(1, 1, 8, 8), torch.tensor([1.0]), radius=8)
    gaussian_blur(torch.rand(1, 1, 9, 9), torch.tensor([1.0]), radius=8)


def test_zeros_padding_leaves_uncovered_corners_black_and_border_repeats_edges():
    images = torch.ones(1, 1, S, S)
    points, mask = torch.zeros(1, 15, 2), torch.ones(1, 15, dtype=torch.bool)
    shrink = dict(GEOMETRY_OFF, scale=(0.5, 0.5))  # the face shrinks to the middle half of the image
    for padding, corner in (("zeros", 0.0), ("border", 1.0)):
        out, _, _ = Augmenter(config(**shrink, **PHOTOMETRY_OFF, padding=padding), KAGGLE15)(
            images, points, mask, torch.Generator().manual_seed(0))
        assert out[0, 0, 0, 0].item() == pytest.approx(corner, abs=1e-6)
        assert out[0, 0, 48, 48].item() == pytest.approx(1.0, abs=1e-6)


def test_geometric_alone_draws_per_sample_and_keeps_float64_points():
    images, points, mask = random_inputs(16, seed=18)
    augmenter = Augmenter(config(flip=0.5), KAGGLE15)
    out, moved, out_mask = augmenter.geometric(images, points.double(), mask, torch.Generator().manual_seed(19))
    assert moved.dtype == torch.float64  # float32 images, float64 points: the affine follows the points
    same = augmenter.geometric(images, points.double(), mask, torch.Generator().manual_seed(19), rows=(slice(None), 16))
    assert torch.equal(out, same[0]) and torch.equal(moved, same[1])
    perm = torch.as_tensor(KAGGLE15.flip_permutation)
    flipped = (out_mask != mask).any(1)
    assert 0 < flipped.sum() < 16  # each sample draws its own mirror
    assert torch.equal(out_mask[flipped], mask[flipped][:, perm])


def test_photometry_first_clamps_pixels_outside_zero_to_one():
    images = torch.rand(4, 1, S, S, generator=torch.Generator().manual_seed(20))
    outside = images.clone()
    outside[:, :, :10] = 1.3  # above white ...
    outside[:, :, 10:20] = -0.2  # ... and below black, as an interpolating warp may leave them
    inside = outside.clamp(0, 1)
    a = photometric(outside, gamma=0.3, contrast=0.3)
    assert torch.isfinite(a).all() and torch.equal(a, photometric(inside, gamma=0.3, contrast=0.3))


def test_cutout_rectangles_spread_over_the_image_with_sides_and_greys_in_range():
    images = torch.full((64, 1, S, S), 0.5)
    out = photometric(images, cutout=1.0, cutout_size=0.3)
    sides, centres, fills = [], [], []
    for changed, o in zip(((out - images).abs() > 1e-5)[:, 0], out[:, 0]):
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        if len(rows) == 0:  # a grey equal to the background
            continue
        sides.append(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1).item())
        centres.append(((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2))
        fills.append(o[rows.min(), cols.min()].item())
    # sides U(0.1, 1) x 0.3 x 96 px: among 64 the largest comes near 29 px (a box cut by the border is smaller)
    assert 0.8 * 0.3 * S < max(sides) <= 0.3 * S + 1
    rows_c, cols_c = zip(*centres)  # centres uniform over the image: every quadrant gets some
    for r_half in (lambda r: r < S / 2, lambda r: r >= S / 2):
        for c_half in (lambda c: c < S / 2, lambda c: c >= S / 2):
            assert any(r_half(r) and c_half(c) for r, c in centres)
    assert sum(f >= 1.0 for f in fills) <= 1 and sum(f <= 0.0 for f in fills) <= 1  # greys U(0, 1), no clipping
    assert max(fills) - min(fills) > 0.8


def test_gaussian_blur_takes_sigma_of_another_dtype():
    images = torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(21))
    sigma = torch.tensor([0.7, 1.2], dtype=torch.float64)
    out = gaussian_blur(images, sigma, radius=4)  # float32 images, float64 sigma: computed in float32
    assert out.dtype == torch.float32 and torch.equal(out, gaussian_blur(images, sigma.float(), radius=4))
