"""Face framing geometry: similarity fits, crops whose pixels and points agree, detector boxes."""

import csv

import cv2
import numpy as np
import pytest

from kplab.faces.inference.detect import HAAR_BOX_POINTS, HaarFaceDetector, calibrate_box_points
from kplab.faces.training.framing import Framing, apply_affine, crop_faces, fit_similarity, uncrop_points, whole_image_affine
from kplab.faces.training.images import read_image, to_grey
from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE


def similarity(scale, angle_deg, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_fit_similarity_recovers_a_known_transform_and_matches_least_squares():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, size=(4, 10, 2))  # (F, M, 2)
    true = np.stack([similarity(s, a, tx, ty) for s, a, tx, ty in
                     zip([0.3, 1.0, 2.5, 0.8], [-40, 0, 12, 170], [5, -20, 0, 40], [0, 7, -3, 9])])
    dst = apply_affine(src, true)
    np.testing.assert_allclose(fit_similarity(src, dst), true, atol=1e-9)
    # With noise: compare with a direct least-squares solve of x' = a x - b y + tx, y' = b x + a y + ty.
    noisy = dst + rng.normal(0, 2.0, dst.shape)
    for f in range(len(src)):
        x, y = src[f, :, 0], src[f, :, 1]
        one, zero = np.ones_like(x), np.zeros_like(x)
        design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
        (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([noisy[f, :, 0], noisy[f, :, 1]]), rcond=None)
        np.testing.assert_allclose(fit_similarity(src[f], noisy[f]), [[a, -b, tx], [b, a, ty]], atol=1e-8)


def blob_image(points, height, width, sigma):
    """Gaussian dots (peak 200 on 20) centred on keypoints (K, 2) in the keypoint frame."""
    xs = np.arange(width) + PIXEL_CENTRE  # keypoint coordinate of each pixel centre
    ys = np.arange(height) + PIXEL_CENTRE
    image = np.full((height, width), 20.0)
    for px, py in points:
        image += 200 * np.exp(-((xs[None] - px) ** 2 + (ys[:, None] - py) ** 2) / (2 * sigma ** 2))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def centroid(image, near, radius):
    """Intensity-weighted centre (keypoint frame) of the dot near `near`, background removed."""
    x0, y0 = (np.round(near - PIXEL_CENTRE).astype(int) - radius)
    patch = image[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(float) - 20.0
    patch = np.clip(patch, 0, None)
    ys, xs = np.mgrid[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] + PIXEL_CENTRE
    return np.array([(patch * xs).sum(), (patch * ys).sum()]) / patch.sum()


@pytest.mark.parametrize("scale, angle", [(0.3, 20.0), (0.45, -8.0), (1.0, 0.0), (1.7, 35.0)])
def test_crop_pixels_land_where_the_affine_sends_the_points(scale, angle):
    # Dots at known sub-pixel places in a photo; after cropping, each dot's measured centre must sit
    # where the same affine sends its point (this pins the pixel-centre convention and the
    # anti-aliasing shrink used for strong downscaling).
    h, w = 500, 420
    crop_centre = np.array([IMAGE_SIZE / 2, IMAGE_SIZE / 2])
    A = similarity(scale, angle, 0, 0)
    photo_centre = np.array([w / 2 + 0.37, h / 2 - 0.21])
    A[:, 2] = crop_centre - A[:, :2] @ photo_centre
    crop_points = np.array([[30.3, 30.7], [66.1, 29.4], [48.55, 50.2], [31.9, 70.25], [65.4, 66.8]])
    photo_points = uncrop_points(crop_points[None], A[None])[0]
    sigma_crop = 2.5
    photo = blob_image(photo_points, h, w, sigma_crop / scale)
    crop = crop_faces(photo, A[None])[0]
    radius = int(4 * sigma_crop)
    measured = np.array([centroid(crop, p, radius) for p in crop_points])
    np.testing.assert_allclose(measured, apply_affine(photo_points[None], A[None])[0], atol=0.1)
    np.testing.assert_allclose(apply_affine(photo_points[None], A[None])[0], crop_points, atol=1e-9)


def test_whole_image_affine_is_identity_for_a_crop_and_centres_other_shapes():
    np.testing.assert_allclose(whole_image_affine(IMAGE_SIZE, IMAGE_SIZE), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    A = whole_image_affine(100, 200)  # wide image: width fills the crop, height is centred
    edges = np.array([[0.0, 0.0], [200.0, 100.0]]) + (PIXEL_CENTRE - 0.5)  # outer pixel edges
    np.testing.assert_allclose(apply_affine(edges[None], A[None])[0] - (PIXEL_CENTRE - 0.5),
                               [[0, 24], [96, 72]], atol=1e-9)


def test_framing_from_points_puts_a_face_onto_the_mean_shape():
    from kplab.faces.training.synthetic import synthetic_faces

    mean_shape = synthetic_faces(1, seed=3).keypoints[0].astype(float)
    framing = Framing.for_layout(KAGGLE15, mean_shape)
    S = similarity(0.6, 25.0, 10.0, -4.0)  # the crop -> photo placement of a face
    photo_points = apply_affine(mean_shape[None], S[None])
    A = framing.from_points(photo_points)
    np.testing.assert_allclose(apply_affine(photo_points, A)[0], mean_shape, atol=1e-9)
    with pytest.raises(Exception, match="framing shape"):
        Framing.for_layout(KAGGLE15, np.zeros((14, 2)))


def _detectable_synthetic_faces(n):
    """Synthetic faces the Haar cascade finds when shown alone at 2x on a replicated border."""
    from kplab.faces.training.synthetic import synthetic_faces

    faces = synthetic_faces(30, seed=0)
    detector = HaarFaceDetector()
    found = []
    for image, points in zip(faces.images, faces.keypoints):
        big = cv2.resize(cv2.copyMakeBorder(image, 24, 24, 24, 24, cv2.BORDER_REPLICATE), None, fx=2, fy=2)
        if len(detector.detect(big)) == 1:
            found.append((image, points))
        if len(found) == n:
            return found
    pytest.fail("fewer detectable synthetic faces than needed")


def test_haar_boxes_are_largest_first_in_the_keypoint_frame_and_empty_without_a_face():
    detector = HaarFaceDetector()
    assert detector.min_side == max(detector.cascade.getOriginalWindowSize())
    assert detector.detect(np.full((120, 160), 128, np.uint8)).shape == (0, 4)
    # Two faces on one canvas, at 1.5x and 3x (pasted with exact integer-factor and half-pixel maths).
    (small, small_pts), (big, big_pts) = _detectable_synthetic_faces(2)
    canvas = np.full((400, 560), 90, np.uint8)
    placed = []
    for image, points, factor, (x, y) in ((small, small_pts, 2, (40, 120)), (big, big_pts, 3, (250, 60))):
        up = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
        canvas[y:y + up.shape[0], x:x + up.shape[1]] = up
        # Integer upscaling maps pixel edges e -> factor * e; shift by the paste offset.
        placed.append((points + 0.5 - PIXEL_CENTRE) * factor + (x, y) - 0.5 + PIXEL_CENTRE)
    boxes = detector.detect(canvas)
    assert len(boxes) == 2
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas[0] > areas[1]
    for box, points in zip(boxes, placed[::-1]):  # largest first: the 3x face
        eyes_mouth = points[[0, 1, 11, 12]]
        assert (eyes_mouth >= box[:2]).all() and (eyes_mouth <= box[2:]).all()


def test_large_pictures_are_searched_small_and_boxes_come_back_in_full_size_pixels(detectable_face):
    grey, points = detectable_face  # (200, 240) canvas
    detector = HaarFaceDetector(max_side=240)
    small = detector.detect(grey)
    big = detector.detect(cv2.resize(grey, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST))  # (1200, 1440)
    assert len(small) == len(big) == 1
    # Same search picture, so the box is the small one's edges times 6 (in the keypoint frame).
    edges = lambda b: b - (PIXEL_CENTRE - 0.5)  # noqa: E731
    np.testing.assert_allclose(edges(big[0]), 6 * edges(small[0]), atol=1e-9)
    scaled = (points + 0.5 - PIXEL_CENTRE) * 6 - 0.5 + PIXEL_CENTRE
    assert (scaled[[0, 1, 11, 12]] >= big[0, :2]).all() and (scaled[[0, 1, 11, 12]] <= big[0, 2:]).all()


def _photo_truth(shared_data):
    folder = shared_data / "faces" / "photos"
    with open(folder / "keypoints.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(folder / r["file"], np.array([float(r[c]) for c in KAGGLE15.csv_columns()]).reshape(-1, 2))
            for r in rows]


@pytest.mark.real
def test_first_pass_framing_on_real_photos_is_close_to_the_training_framing(shared_data):
    data = np.load(shared_data / "faces" / "faces15.npz")
    mean_shape = np.nanmean(data["keypoints"][data["split"] == "train"], 0)
    framing = Framing.for_layout(KAGGLE15, mean_shape, HAAR_BOX_POINTS)
    detector = HaarFaceDetector()
    errors = []
    for path, truth in _photo_truth(shared_data):
        boxes = detector.detect(to_grey(read_image(path)))
        mid = truth[[0, 1]].mean(0)
        inside = [b for b in boxes if b[0] <= mid[0] <= b[2] and b[1] <= mid[1] <= b[3]]
        assert inside, f"{path.name}: no box around the face"
        in_crop = apply_affine(truth[None], framing.from_boxes(np.array(inside[:1])))[0]
        errors.append(np.linalg.norm(framing.weights @ in_crop - framing.target, axis=1).mean())
    # Crop pixels (the training crop's eye distance is about 48 px): loose but clearly on the face.
    assert np.median(errors) < 6.0 and max(errors) < 16.0


@pytest.mark.real
def test_box_calibration_constants_are_what_the_training_crops_give(shared_data):
    data = np.load(shared_data / "faces" / "faces15.npz")
    train = np.flatnonzero(data["split"] == "train")
    pick = np.random.default_rng(1).choice(train, 50, replace=False)
    table, found = calibrate_box_points(HaarFaceDetector(), data["images"][pick], data["keypoints"][pick],
                                        KAGGLE15)
    assert found >= 45
    for name, (u, v) in table.items():
        assert abs(u - HAAR_BOX_POINTS[name][0]) < 0.03 and abs(v - HAAR_BOX_POINTS[name][1]) < 0.03, name


def test_anti_aliased_crop_of_fine_stripes_is_flat_grey():
    # 1-px stripes shrunk 4x must average out (area averaging over whole stripe pairs); a plain
    # bilinear warp samples one phase of them and turns them black or white.
    stripes = np.tile(np.array([0, 255], np.uint8), (480, 240))  # (480, 480)
    A = similarity(0.25, 0.0, 0.0, 0.0)
    crop = crop_faces(stripes, A[None])[0].astype(float)
    assert abs(crop.mean() - 127.5) < 2 and crop.std() < 2
    plain = cv2.warpAffine(stripes, A, (96, 96), flags=cv2.INTER_LINEAR).astype(float)
    assert abs(plain.mean() - 127.5) > 100  # the failure this guards against is real
