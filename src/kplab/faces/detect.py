"""Photos -> face crops framed like the training data, and crop keypoints -> photo keypoints.

Coordinates. Keypoints in a photo and in a crop use the same convention as the training data: the
centre of pixel column j is at x = j + PIXEL_CENTRE (layout.py). Each face gets one 2x3 affine
A = [M | t] mapping photo points to crop points, p_crop = M p_photo + t; the crop's pixels are
resampled with the same A (so pixels and points cannot disagree) and predictions go back through A^-1.

Framing. The model was trained on crops where the eyes and mouth sit at its framing target (for crops
that came ready, the training set's mean keypoints, `mean_shape` in model.json; for faces cut from
annotated photos, the layout's template, `framing_target`). A face is framed by the similarity
transform (scale, rotation, shift) that best carries its eyes and mouth onto the target's:

- first pass: the points are where the framing points typically sit inside a Haar detector box,
  `HAAR_BOX_POINTS` (measured on the training crops by `calibrate_box_points`);
- later passes: the points are the previous pass's *predicted* eyes and mouth, which fixes the
  detector's loose box, its missing rotation and its scale drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kplab.errors import CheckpointError, KplabError
from kplab.faces.layout import IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE, Layout
from kplab.geometry import invert_affine, matmul_affine, warp_points

# Points that frame a face: eyes and mouth (brows and nose tip move more with pose and expression).
FRAMING_POINTS = (
    "left_eye_center", "right_eye_center",
    "left_eye_inner_corner", "left_eye_outer_corner", "right_eye_inner_corner", "right_eye_outer_corner",
    "mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip", "mouth_center_bottom_lip",
)

# Median position of each framing point inside OpenCV's frontal-face Haar box, in box units
# ((x - x0) / width, (y - y0) / height): measured by `calibrate_box_points` on 1,000 random faces15
# training crops (seed 0; the detector fired on 978). bench/faces_detector_calibration.py reprints them.
HAAR_BOX_POINTS = {
    "left_eye_center": (0.695, 0.402),
    "right_eye_center": (0.320, 0.405),
    "left_eye_inner_corner": (0.621, 0.406),
    "left_eye_outer_corner": (0.765, 0.397),
    "right_eye_inner_corner": (0.393, 0.408),
    "right_eye_outer_corner": (0.251, 0.402),
    "mouth_left_corner": (0.665, 0.812),
    "mouth_right_corner": (0.361, 0.816),
    "mouth_center_top_lip": (0.517, 0.768),
    "mouth_center_bottom_lip": (0.518, 0.892),
}

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity carrying src points onto dst points: (..., M, 2) -> (..., 2, 3).

    Minimises sum_i |s R src_i + t - dst_i|^2 over scale s, rotation R and shift t (no reflection).
    With centred points u_i = src_i - mean(src), v_i = dst_i - mean(dst) the optimum is

        a = sum(u . v) / sum|u|^2,   b = sum(u_x v_y - u_y v_x) / sum|u|^2,
        s R = [[a, -b], [b, a]],     t = mean(dst) - s R mean(src).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(-2, keepdims=True), dst.mean(-2, keepdims=True)  # (..., 1, 2)
    u, v = src - ms, dst - md  # (..., M, 2)
    norm = (u ** 2).sum((-2, -1))  # (...)
    if np.any(norm == 0):
        raise ValueError("fit_similarity: the source points coincide")
    a = (u * v).sum((-2, -1)) / norm
    b = (u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]).sum(-1) / norm
    m = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)  # (..., 2, 2)
    t = md[..., 0, :] - (m @ ms[..., 0, :, None])[..., 0]  # (..., 2)
    return np.concatenate([m, t[..., None]], -1)  # (..., 2, 3)


def apply_affine(points: np.ndarray, A: np.ndarray) -> np.ndarray:
    """p' = M p + t for points (F, K, 2) and affines (F, 2, 3)."""
    return warp_points(torch.as_tensor(points, dtype=torch.float64),
                       torch.as_tensor(A, dtype=torch.float64)).numpy()


def uncrop_points(points: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Crop points (F, K, 2) back to photo points through A^-1 (F, 2, 3)."""
    inverse = invert_affine(torch.as_tensor(A, dtype=torch.float64))
    return warp_points(torch.as_tensor(points, dtype=torch.float64), inverse).numpy()


def _edge_to_point(A_edges: np.ndarray) -> np.ndarray:
    """An affine between pixel-edge frames (pixel j spans [j, j+1]) as one between keypoint frames.

    A keypoint p sits at edge coordinate e = p + 1/2 - PIXEL_CENTRE in both images, so
    p' = M p + t + (M - I)(1/2 - PIXEL_CENTRE) 1.
    """
    shift = 0.5 - PIXEL_CENTRE
    out = np.array(A_edges, np.float64)
    out[..., 2] += (out[..., :2] - np.eye(2)).sum(-1) * shift
    return out


def _point_to_index(A: np.ndarray) -> np.ndarray:
    """A keypoint-frame affine as the pixel-index-frame affine OpenCV's warpAffine expects.

    Pixel index i = p - PIXEL_CENTRE in both images, so i' = M i + t + (M - I) PIXEL_CENTRE 1.
    """
    out = np.array(A, np.float64)
    out[..., 2] += (out[..., :2] - np.eye(2)).sum(-1) * PIXEL_CENTRE
    return out


def whole_image_affine(height: int, width: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """The affine (2, 3) that fits a whole image into the size x size crop: uniform scale, centred
    (the image's pixel edges [0, W] x [0, H] land on a centred box inside [0, size]^2)."""
    s = size / max(height, width)
    edges = np.array([[s, 0.0, (size - s * width) / 2], [0.0, s, (size - s * height) / 2]])
    return _edge_to_point(edges)


def crop_faces(grey: np.ndarray, A: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resample one grey photo (H, W) uint8 into crops (F, size, size) uint8, crop f = A[f](photo).

    A crop that shrinks the photo by more than 2x first shrinks it by a whole factor with area
    averaging (OpenCV INTER_AREA), so the final bilinear warp does not alias.
    """
    import cv2

    A = np.asarray(A, np.float64).reshape(-1, 2, 3)
    crops = np.empty((len(A), size, size), np.uint8)
    shrunk: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # factor -> (image, edge-frame scale affine)
    h, w = grey.shape
    for f, a in enumerate(A):
        scale = np.sqrt(abs(np.linalg.det(a[:, :2])))  # crop pixels per photo pixel
        factor = int(1.0 / scale) if scale < 0.5 else 1
        source, a_src = grey, a
        if factor > 1:
            if factor not in shrunk:
                sw, sh = max(1, round(w / factor)), max(1, round(h / factor))
                small = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA)
                # The resize maps pixel edges e -> e * (sw / w, sh / h).
                down = _edge_to_point(np.array([[sw / w, 0.0, 0.0], [0.0, sh / h, 0.0]]))
                shrunk[factor] = (small, down)
            source, down = shrunk[factor]
            up = invert_affine(torch.as_tensor(down[None]))
            a_src = matmul_affine(torch.as_tensor(a[None], dtype=torch.float64), up).numpy()[0]
        crops[f] = cv2.warpAffine(source, _point_to_index(a_src), (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return crops


@dataclass(frozen=True)
class Framing:
    """The one rule that frames a face: the similarity that carries its eyes and mouth onto `target`.

    Framing points are named in the Kaggle 15-point layout (FRAMING_POINTS); a layout that is not that
    one reaches them through its derivation (iBUG 68: an eye centre is the mean of the eye's six points),
    so every layout frames faces the same way. The same rule cuts training crops from annotated photos
    (from the true points) and re-frames detected faces in `predict` (from predicted points).
    """

    layout: Layout
    weights: np.ndarray     # (M, K): framing points = weights @ layout points
    target: np.ndarray      # (M, 2) where the framing points land in the crop (keypoint frame)
    box_points: np.ndarray  # (M, 2) their typical positions inside a detector box, in box units

    @classmethod
    def for_layout(cls, layout: Layout, target_shape, box_points: dict = HAAR_BOX_POINTS) -> "Framing":
        """Framing onto `target_shape` (K, 2): a model's recorded framing target or mean shape, or a
        layout's template."""
        target_shape = np.asarray(target_shape, np.float64)
        if target_shape.shape != (layout.n_points, 2) or not np.isfinite(target_shape).all():
            raise CheckpointError(f"the framing shape must be finite with shape ({layout.n_points}, 2) for "
                                  f"layout {layout.name}, got {target_shape.shape}")
        try:
            to_kaggle = layout.converter(KAGGLE15)  # (15, K)
        except KplabError:
            raise KplabError(f"layout {layout.name} cannot frame faces: it neither has nor derives the eye and "
                             f"mouth points ({', '.join(FRAMING_POINTS)})") from None
        names = [n for n in FRAMING_POINTS if n in box_points]
        weights = to_kaggle[[KAGGLE15.index(n) for n in names]]  # (M, K)
        return cls(layout, weights, weights @ target_shape, np.array([box_points[n] for n in names], np.float64))

    def from_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Crop affines (F, 2, 3) for detector boxes (F, 4) [x0, y0, x1, y1] (first pass)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        origin, extent = boxes[:, None, :2], boxes[:, None, 2:] - boxes[:, None, :2]  # (F, 1, 2)
        guessed = origin + self.box_points[None] * extent  # (F, M, 2) photo points
        return fit_similarity(guessed, np.broadcast_to(self.target, guessed.shape))

    def from_points(self, points: np.ndarray) -> np.ndarray:
        """Crop affines (F, 2, 3) that carry photo keypoints (F, K, 2) onto the target."""
        chosen = np.einsum("mk,fkc->fmc", self.weights, np.asarray(points, np.float64))  # (F, M, 2)
        return fit_similarity(chosen, np.broadcast_to(self.target, chosen.shape))


class HaarFaceDetector:
    """OpenCV's bundled frontal-face Haar cascade (offline: the XML ships inside opencv-python).

    Pictures larger than `max_side` are searched at a reduced size (area-averaged), which keeps a
    12-megapixel photo to a fraction of a second; faces narrower than min_side x (side / max_side)
    pixels are then out of reach.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, max_side: int = 1024):
        import cv2

        path = Path(cv2.data.haarcascades) / HAAR_CASCADE
        self.cascade = cv2.CascadeClassifier(str(path)) if path.is_file() else None
        if self.cascade is None or self.cascade.empty():
            raise KplabError(f"{path}: OpenCV's Haar cascade is missing; install opencv-python-headless<5")
        self.scale_factor, self.min_neighbors, self.max_side = scale_factor, min_neighbors, max_side
        self.min_side = int(max(self.cascade.getOriginalWindowSize()))  # smallest face it can find

    def detect(self, grey: np.ndarray) -> np.ndarray:
        """Face boxes (F, 4) [x0, y0, x1, y1] in keypoint coordinates (pixel edges shifted by
        PIXEL_CENTRE - 1/2), largest first; (0, 4) when there is no face."""
        return self.detect_with_scores(grey)[0]

    def detect_with_scores(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (F, 4) as `detect` gives them, scores (F,)): a score is the cascade's last-stage
        margin for that box (OpenCV's level weight); higher is more face-like. Measured on the 985
        faces found in 1,000 faces15 training crops (padded, 2x): half score above 6.7, 1.7 % below 1.5."""
        import cv2

        h, w = grey.shape
        shrink = max(h, w) / self.max_side
        searched = grey
        if shrink > 1:
            size = (max(1, round(w / shrink)), max(1, round(h / shrink)))
            searched = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        # With outputRejectLevels the boxes are the same as detectMultiScale's; the weights come along.
        found, _, weights = self.cascade.detectMultiScale3(searched, scaleFactor=self.scale_factor,
                                                           minNeighbors=self.min_neighbors,
                                                           minSize=(self.min_side, self.min_side),
                                                           outputRejectLevels=True)
        if len(found) == 0:
            return np.zeros((0, 4)), np.zeros(0)
        # Pixel edges scale exactly with the resize: e -> e * (w / w_searched, h / h_searched).
        scale = np.array([w / searched.shape[1], h / searched.shape[0]] * 2)
        xywh = np.asarray(found, np.float64) * scale
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1) + (PIXEL_CENTRE - 0.5)
        order = np.argsort(-xywh[:, 2] * xywh[:, 3], kind="stable")
        return boxes[order], np.asarray(weights, np.float64).reshape(-1)[order]


def calibrate_box_points(detector: HaarFaceDetector, crops: np.ndarray, keypoints: np.ndarray,
                         layout: Layout, pad: int = IMAGE_SIZE // 4, upscale: int = 2) -> tuple[dict, int]:
    """Measure where the framing points sit inside detector boxes, on training crops with known points.

    Each crop (N, 96, 96) gets a replicated border of `pad` pixels (the tight training crop cuts the
    chin and forehead, which the detector wants to see) and is enlarged `upscale` times (past the
    detector's smallest window); the largest box that contains the eye midpoint counts. Returns the
    median box-unit position of every framing point, and how many crops gave a box.
    """
    import cv2

    names = [n for n in FRAMING_POINTS if n in layout.names]
    index = [layout.index(n) for n in names]
    eyes = [layout.index("left_eye_center"), layout.index("right_eye_center")]
    found = []
    for crop, points in zip(crops, keypoints):
        big = cv2.resize(cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE), None,
                         fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
        # Enlarging by an integer factor maps pixel edges e -> upscale * e.
        scaled = _edge_to_point(np.array([[upscale, 0.0, upscale * pad], [0.0, upscale, upscale * pad]]))
        p = apply_affine(points[None], scaled[None])[0]  # (K, 2)
        mid = p[eyes].mean(0)
        for box in detector.detect(big):
            if box[0] <= mid[0] <= box[2] and box[1] <= mid[1] <= box[3]:
                found.append((p[index] - box[:2]) / (box[2:] - box[:2]))  # (M, 2) box units
                break
    if not found:
        raise ValueError("calibrate_box_points: the detector found no face in any crop")
    median = np.nanmedian(np.stack(found), 0)  # (M, 2)
    return {n: (round(float(x), 3), round(float(y), 3)) for n, (x, y) in zip(names, median)}, len(found)
