"""Synthetic faces: deterministic, varied, and drawn exactly where their keypoints say."""

import dataclasses

import numpy as np
import pytest

from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE, Layout
from kplab.faces.training.synthetic import render_face, sample_face, synthetic_faces

NAMES = KAGGLE15.names
I = {name: i for i, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def faces():
    return synthetic_faces(120, seed=11)


def specs(n, seed):
    return [sample_face(np.random.default_rng(child)) for child in np.random.SeedSequence(seed).spawn(n)]


def upright(spec):
    """The same face without yaw and roll, so its features line up with the image axes."""
    return dataclasses.replace(spec, pose=dataclasses.replace(spec.pose, yaw=0.0, roll=0.0))


def drawn_where(spec, **colours):
    """(96, 96) bool: pixels that change when the given colour fields change (clean renders)."""
    a, _ = render_face(spec, clean=True)
    b, _ = render_face(dataclasses.replace(spec, **colours), clean=True)
    return np.abs(a.astype(int) - b) > 2


def test_same_seed_same_faces_and_prefix_stable():
    a, b = synthetic_faces(6, seed=3), synthetic_faces(6, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    shorter = synthetic_faces(3, seed=3)  # face i depends only on (seed, i)
    np.testing.assert_array_equal(shorter.images, a.images[:3])
    assert a.images.dtype == np.uint8 and a.images.shape == (6, 96, 96)
    assert a.keypoints.dtype == np.float32 and a.keypoints.shape == (6, 15, 2)


def test_variety_across_seeds_and_faces(faces):
    other = synthetic_faces(8, seed=12)
    assert np.abs(other.images.astype(int) - faces.images[:8]).mean() > 20
    # keypoints move per face roughly as much as in the real data (eye centre x std 3.5 px, y 2.4 px)
    std = faces.keypoints.std(axis=0)  # (15, 2)
    assert 2.0 < std[I["left_eye_center"], 0] < 6.0 and 1.2 < std[I["left_eye_center"], 1] < 5.0
    # appearance varies: grey levels, and the optional parts all occur
    assert faces.images.mean(axis=(1, 2)).std() > 10
    drawn = specs(300, seed=5)
    assert 0.05 < np.mean([s.glasses is not None for s in drawn]) < 0.3
    assert 0.1 < np.mean([len(s.occluders) > 0 for s in drawn]) < 0.45
    assert 0.2 < np.mean([s.mouth_open > 0 for s in drawn]) < 0.5
    assert 0.03 < np.mean([s.hair is None for s in drawn]) < 0.25
    assert np.ptp([s.pose.roll for s in drawn]) > 0.3 and np.ptp([s.pose.yaw for s in drawn]) > 0.5


def test_keypoints_inside_and_subject_left_on_image_right(faces):
    kp = faces.keypoints
    assert np.isfinite(kp).all() and faces.mask.all()
    assert kp.min() >= 0 and kp.max() <= IMAGE_SIZE
    for left, right in KAGGLE15.flip_pairs:  # every "left" point lies right of its partner
        assert (kp[:, left, 0] > kp[:, right, 0]).all(), (NAMES[left], NAMES[right])
    assert (kp[:, I["mouth_center_top_lip"], 1] < kp[:, I["mouth_center_bottom_lip"], 1]).all()
    assert (kp[:, I["left_eyebrow_inner_end"], 1] < kp[:, I["left_eye_center"], 1]).all()
    assert (kp[:, I["nose_tip"], 1] < kp[:, I["mouth_center_top_lip"], 1]).all()


@pytest.mark.parametrize("seed", [1, 2])
def test_pupil_intensity_centroid_is_the_eye_centre_keypoint(seed):
    """The darkness the pupil adds (pupil vs iris colour) is centred on the eye-centre keypoint."""
    ys, xs = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE] + PIXEL_CENTRE  # keypoint coordinates of pixel centres
    errors = []
    for spec in specs(15, seed):
        image, kp = render_face(spec, clean=True)
        np.testing.assert_array_equal(kp, spec.keypoints())
        no_pupil, _ = render_face(dataclasses.replace(spec, pupil=spec.iris), clean=True)
        darkness = no_pupil.astype(float) - image
        for eye in (I["left_eye_center"], I["right_eye_center"]):
            near = (np.abs(xs - kp[eye, 0]) < 4) & (np.abs(ys - kp[eye, 1]) < 4)
            w = darkness * near
            assert w.sum() > 0
            errors.append(np.hypot((w * xs).sum() / w.sum() - kp[eye, 0], (w * ys).sum() / w.sum() - kp[eye, 1]))
    assert max(errors) < 0.25, max(errors)


def test_mouth_and_brow_outlines_end_at_their_keypoints():
    """On upright clean faces, the drawn lips span corner to corner and the lip points sit on their edges."""
    ys, xs = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE] + PIXEL_CENTRE
    for spec in specs(6, seed=8):
        spec = upright(spec)
        _, kp = render_face(spec, clean=True)
        lips = drawn_where(spec, lips=spec.lips * 0.5)
        assert abs(xs[lips].min() - kp[I["mouth_right_corner"], 0]) < 1.0
        assert abs(xs[lips].max() - kp[I["mouth_left_corner"], 0]) < 1.0
        column = np.abs(xs - kp[I["mouth_center_top_lip"], 0]) < 0.5
        assert abs(ys[lips & column].min() - kp[I["mouth_center_top_lip"], 1]) < 1.0
        column = np.abs(xs - kp[I["mouth_center_bottom_lip"], 0]) < 0.5
        assert abs(ys[lips & column].max() - kp[I["mouth_center_bottom_lip"], 1]) < 1.2
        brows = drawn_where(spec, brow=spec.brow * 0.4) & (ys < kp[I["left_eye_center"], 1] - 4)
        for inner, outer in (("left_eyebrow_inner_end", "left_eyebrow_outer_end"),
                             ("right_eyebrow_inner_end", "right_eyebrow_outer_end")):
            side = (xs > 48) if inner.startswith("left") else (xs < 48)
            extent = xs[brows & side]
            ends = sorted([kp[I[inner], 0], kp[I[outer], 0]])
            assert abs(extent.min() - ends[0]) < 1.5 and abs(extent.max() - ends[1]) < 1.5


def test_layout_selects_points_by_name():
    two = Layout("two", ("nose_tip", "left_eye_center"), ())
    full, picked = synthetic_faces(3, seed=4), synthetic_faces(3, seed=4, layout=two)
    np.testing.assert_array_equal(picked.keypoints, full.keypoints[:, [I["nose_tip"], I["left_eye_center"]]])
    with pytest.raises(ValueError, match="chin"):
        synthetic_faces(1, seed=0, layout=Layout("odd", ("chin",), ()))


@pytest.mark.real
def test_framing_matches_the_real_data(shared_data):
    """Mean keypoints within 0.6 px of faces15.npz's, spread within 0.6x..2x: roughly the real framing."""
    with np.load(shared_data / "faces" / "faces15.npz", allow_pickle=False) as npz:
        real = npz["keypoints"]
    kp = np.stack([spec.keypoints() for spec in specs(800, seed=6)])  # (800, 15, 2), no rendering needed
    assert np.abs(kp.mean(axis=0) - real.mean(axis=0)).max() < 0.6
    ratio = kp.std(axis=0) / real.std(axis=0)
    assert 0.6 < ratio.min() and ratio.max() < 2.0
