"""Keypoint layouts (names and left/right flip pairs) and the I2DL coordinate normalisation.

Every other module asks a `Layout` how many points there are; nothing else hard-codes 15 or 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGE_SIZE = 96  # faces are IMAGE_SIZE x IMAGE_SIZE grey crops
# I2DL normalisation: (kp - CENTER) / HALF, so (0, 0) is the image centre and the face fills about [-1, 1].
CENTER = 48.0
HALF = 48.0
# Keypoint value (in pixels) at the centre of pixel column/row 0 of the image array. The shared faces
# carry 1-based (Matlab-style, as in the iBUG annotations) labels: a model trained without flips
# predicts mirrored val faces with a mean x bias of +1.50 px if we assume 0.5 here and +0.50 px with
# 1.0 (score on mirrored val 268 vs 348; unmirrored 370). With 0.5 the I2DL-normalised coordinates
# would coincide with grid_sample(align_corners=False) coordinates; any value is a constant shift
# applied where pixels and points meet (geometry, drawing, crops from photos).
PIXEL_CENTRE = 1.0


@dataclass(frozen=True)
class Layout:
    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]  # (subject-left index, subject-right index)

    def __post_init__(self):
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"layout {self.name}: keypoint names repeat")
        seen = [i for pair in self.flip_pairs for i in pair]
        if len(set(seen)) != len(seen) or any(not 0 <= i < len(self.names) for i in seen):
            raise ValueError(f"layout {self.name}: flip pairs must be distinct, in-range indices")

    @property
    def n_points(self) -> int:
        return len(self.names)

    @property
    def n_outputs(self) -> int:
        return 2 * len(self.names)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Index array p such that flipped_points = mirror(points)[p] (pairs swapped, others kept)."""
        perm = np.arange(self.n_points)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def csv_columns(self) -> list[str]:
        """Column names in Kaggle/I2DL order: name_x, name_y for each point."""
        return [f"{n}_{axis}" for n in self.names for axis in ("x", "y")]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "names": list(self.names), "flip_pairs": [list(p) for p in self.flip_pairs]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layout":
        return cls(d["name"], tuple(d["names"]), tuple(tuple(p) for p in d["flip_pairs"]))


KAGGLE15 = Layout(
    name="kaggle15",
    names=(
        "left_eye_center", "right_eye_center",
        "left_eye_inner_corner", "left_eye_outer_corner",
        "right_eye_inner_corner", "right_eye_outer_corner",
        "left_eyebrow_inner_end", "left_eyebrow_outer_end",
        "right_eyebrow_inner_end", "right_eyebrow_outer_end",
        "nose_tip",
        "mouth_left_corner", "mouth_right_corner",
        "mouth_center_top_lip", "mouth_center_bottom_lip",
    ),
    flip_pairs=((0, 1), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12)),
)


def normalise(points_px):
    """Pixel coordinates -> I2DL normalised coordinates (works on NumPy arrays and tensors)."""
    return (points_px - CENTER) / HALF


def to_pixels(points_norm):
    """I2DL normalised coordinates -> pixel coordinates."""
    return points_norm * HALF + CENTER
