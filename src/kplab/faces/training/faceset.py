"""`FaceSet`: the one in-memory form of faces every reader returns and every stage consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kplab.errors import DataError
from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, Layout


@dataclass
class FaceSet:
    images: np.ndarray  # (N, 96, 96) uint8
    keypoints: np.ndarray  # (N, K, 2) float32 pixels (x, y); NaN marks a missing keypoint
    layout: Layout = KAGGLE15
    names: np.ndarray | None = None  # (N,) str, e.g. "training.csv:row 17"
    person: np.ndarray | None = None  # (N,) str identity, when known
    source: str = ""  # human description for messages
    photo: np.ndarray | None = None  # (N,) str: the photo each face was cut from (faces of a photo stay together)
    framing_target: np.ndarray | None = None  # (K, 2): where the crops put the face, for faces cut from photos
    # Denser points of the same faces in the same crop frame (68 iBUG points behind 15 Kaggle ones), which
    # training may supervise too (ModelConfig.dense_layout); NaN where missing.
    dense_keypoints: np.ndarray | None = None  # (N, K_dense, 2) float32 pixels
    dense_layout: Layout | None = None

    def __post_init__(self):
        where = self.source or "faces"
        self.images = np.asarray(self.images)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{where}: images must be uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                            f"got {self.images.dtype} {self.images.shape}")
        if self.keypoints.shape != (n, self.layout.n_points, 2):
            raise DataError(f"{where}: keypoints must have shape ({n}, {self.layout.n_points}, 2) for "
                            f"layout {self.layout.name}, got {self.keypoints.shape}")
        if np.isinf(self.keypoints).any():
            raise DataError(f"{where}: keypoints contain infinite values")
        # A point is missing as a whole: a lone NaN coordinate hides the other one too.
        nan = np.isnan(self.keypoints)
        if (nan.any(-1) != nan.all(-1)).any():
            self.keypoints = self.keypoints.copy()
            self.keypoints[nan.any(-1)] = np.nan
        if self.framing_target is not None:
            self.framing_target = np.asarray(self.framing_target, dtype=np.float32)
            if self.framing_target.shape != (self.layout.n_points, 2):
                raise DataError(f"{where}: framing_target must have shape ({self.layout.n_points}, 2), "
                                f"got {self.framing_target.shape}")
        if (self.dense_keypoints is None) != (self.dense_layout is None):
            raise DataError(f"{where}: dense_keypoints and dense_layout come together")
        if self.dense_keypoints is not None:
            self.dense_keypoints = np.asarray(self.dense_keypoints, dtype=np.float32)
            if self.dense_keypoints.shape != (n, self.dense_layout.n_points, 2):
                raise DataError(f"{where}: dense keypoints must have shape ({n}, {self.dense_layout.n_points}, 2) "
                                f"for layout {self.dense_layout.name}, got {self.dense_keypoints.shape}")
        for field in ("names", "person", "photo"):
            value = getattr(self, field)
            if value is not None:
                value = np.asarray(value, dtype=str)
                if value.shape != (n,):
                    raise DataError(f"{where}: {field} must have shape ({n},), got {value.shape}")
                setattr(self, field, value)

    @property
    def mask(self) -> np.ndarray:
        """(N, K) bool, True where the keypoint is present."""
        return ~np.isnan(self.keypoints).any(-1)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> "FaceSet":
        """The faces at `index` (an int array or an (N,) bool mask), as a new FaceSet."""
        index = np.atleast_1d(np.asarray(index))
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise ValueError(f"bool mask has shape {index.shape}, expected ({len(self)},)")
        else:
            index = index.astype(np.intp)  # also makes an empty list a valid index
        pick = (lambda a: None if a is None else a[index])
        return FaceSet(self.images[index], self.keypoints[index], self.layout, pick(self.names),
                       pick(self.person), self.source, pick(self.photo), self.framing_target,
                       pick(self.dense_keypoints), self.dense_layout)

    def as_layout(self, layout: Layout | None) -> "FaceSet":
        """These faces in another layout that theirs derives (68 -> 15), or themselves. The points they were
        derived from stay on as the dense points."""
        if layout is None or layout.names == self.layout.names:
            return self
        from kplab.faces.training.layout import convert_points

        target = None if self.framing_target is None else convert_points(self.framing_target, self.layout, layout)
        return FaceSet(self.images, convert_points(self.keypoints, self.layout, layout).astype(np.float32),
                       layout, self.names, self.person, self.source, self.photo, target,
                       self.keypoints, self.layout)

    def with_dense_stacked(self) -> "FaceSet":
        """The faces with their dense points appended as more points (layout `stacked`), for training."""
        from kplab.faces.training.layout import stacked

        if self.dense_keypoints is None:
            raise DataError(f"{self.source or 'faces'}: no dense keypoints to stack")
        return FaceSet(self.images, np.concatenate([self.keypoints, self.dense_keypoints], 1),
                       stacked(self.layout, self.dense_layout), self.names, self.person, self.source, self.photo)

    @property
    def groups(self) -> np.ndarray | None:
        """What must not be split between train and val: the person where known, else the photo."""
        return self.person if self.person is not None else self.photo


def hold_out(n: int, fraction: float, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool, True for a deterministic random ~`fraction` of rows; whole groups go together.

    Groups (e.g. person ids) are shuffled by `seed` and taken until the held-out rows reach
    round(fraction * n); without groups every row is its own group.
    """
    groups = np.arange(n) if groups is None else np.asarray(groups)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniq))
    target = max(1, round(fraction * n))
    taken = order[: np.searchsorted(np.cumsum(counts[order]), target) + 1]
    chosen = np.zeros(len(uniq), dtype=bool)
    chosen[taken] = True
    return chosen[inverse.reshape(-1)]
