"""Framing: photo points -> a 96 x 96 crop placed like the training crops, and crop points -> photo points.

Coordinates. Keypoints in a photo and in a crop use the same convention as the training data: the
centre of pixel column j is at x = j + PIXEL_CENTRE (layout.py). Each face gets one 2x3 affine
A = [M | t] mapping photo points to crop points, p_crop = M p_photo + t; the crop's pixels are
resampled with the same A (so pixels and points cannot disagree) and predictions go back through A^-1.

Framing. A model was trained on crops where the eyes and mouth sit at its framing target (for crops
that came ready, the training set's mean keypoints, `mean_shape` in model.json; for faces cut from
annotated photos, the layout's template, `framing_target`). A face is framed by the similarity
transform (scale, rotation, shift) that best carries its eyes and mouth onto the target's: from
where they typically sit in a detector box (detect.py measures that), then from predicted points.
The same rule cuts training crops from annotated photos (photo_faces.py), so the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kplab.errors import CheckpointError, KplabError
from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE, Layout
from kplab.geometry import invert_affine, matmul_affine, warp_points

# Points that frame a face: eyes and mouth (brows and nose tip move more with pose and expression).
FRAMING_POINTS = (
    "left_eye_center", "right_eye_center",
    "left_eye_inner_corner", "left_eye_outer_corner", "right_eye_inner_corner", "right_eye_outer_corner",
    "mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip", "mouth_center_bottom_lip",
)


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
    box_points: np.ndarray | None  # (M, 2) their typical positions inside a detector box, in box units

    @classmethod
    def for_layout(cls, layout: Layout, target_shape, box_points: dict | None = None) -> "Framing":
        """Framing onto `target_shape` (K, 2): a model's recorded framing target or mean shape, or a
        layout's template. `box_points` (name -> position in detector-box units) lets `from_boxes`
        frame detector boxes (detect.HAAR_BOX_POINTS for OpenCV's Haar cascade)."""
        target_shape = np.asarray(target_shape, np.float64)
        if target_shape.shape != (layout.n_points, 2) or not np.isfinite(target_shape).all():
            raise CheckpointError(f"the framing shape must be finite with shape ({layout.n_points}, 2) for "
                                  f"layout {layout.name}, got {target_shape.shape}")
        try:
            to_kaggle = layout.converter(KAGGLE15)  # (15, K)
        except KplabError:
            raise KplabError(f"layout {layout.name} cannot frame faces: it neither has nor derives the eye and "
                             f"mouth points ({', '.join(FRAMING_POINTS)})") from None
        weights = to_kaggle[[KAGGLE15.index(n) for n in FRAMING_POINTS]]  # (M, K)
        boxed = None if box_points is None else np.array([box_points[n] for n in FRAMING_POINTS], np.float64)
        return cls(layout, weights, weights @ target_shape, boxed)

    def from_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Crop affines (F, 2, 3) for detector boxes (F, 4) [x0, y0, x1, y1] (first pass)."""
        if self.box_points is None:
            raise ValueError("this framing knows no detector: build it with box_points to frame boxes")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        origin, extent = boxes[:, None, :2], boxes[:, None, 2:] - boxes[:, None, :2]  # (F, 1, 2)
        guessed = origin + self.box_points[None] * extent  # (F, M, 2) photo points
        return fit_similarity(guessed, np.broadcast_to(self.target, guessed.shape))

    def from_points(self, points: np.ndarray) -> np.ndarray:
        """Crop affines (F, 2, 3) that carry photo keypoints (F, K, 2) onto the target."""
        chosen = np.einsum("mk,fkc->fmc", self.weights, np.asarray(points, np.float64))  # (F, M, 2)
        return fit_similarity(chosen, np.broadcast_to(self.target, chosen.shape))
