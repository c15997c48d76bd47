"""Face detection: OpenCV's bundled frontal-face Haar cascade, and where the framing points sit in its boxes.

Boxes come out in keypoint coordinates (framing.py); `HAAR_BOX_POINTS` lets `Framing.from_boxes` place
a first crop from a box, measured on training crops by `calibrate_box_points`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kplab.errors import KplabError
from kplab.faces.training.framing import FRAMING_POINTS, _edge_to_point, apply_affine
from kplab.faces.training.layout import IMAGE_SIZE, PIXEL_CENTRE, Layout

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
        if not scale_factor > 1:
            raise KplabError(f"the detector's scale step must be above 1, got {scale_factor}")
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
