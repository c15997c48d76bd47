"""Training faces as tensors, indexed one batch at a time: `faces[idx]` -> (images, points, mask).

A set in memory is converted once (float images, as before). A packed set (`packed.py`) stays on
disk: each batch reads its rows from the memory map and converts just those, with the same
arithmetic, so both give the same numbers. Pages of the map that a batch touched stay resident in
this process until released; every `RELEASE_BYTES` read they are dropped (the kernel's page cache
keeps them, so a later read is a cheap fault), which keeps resident memory flat however big the set.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch

from kplab.faces.data import FaceSet
from kplab.faces.evaluate import image_tensor, label_tensors, to_tensors
from kplab.faces.packed import is_mapped

RELEASE_BYTES = 64 << 20


class FaceTensors:
    def __init__(self, faces: FaceSet, device="cpu"):
        self.device = device
        self.mapped = faces.images if is_mapped(faces.images) else None
        if self.mapped is None:
            self.images, self.points, self.mask = to_tensors(faces, device)  # (N, 1, 96, 96), (N, K, 2), (N, K)
        else:
            self.points, self.mask = label_tensors(faces, device)  # labels are small: 120 bytes a face
            self.read_since_release = 0

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows `idx` (a 1-D index tensor, in its order): images (B, 1, 96, 96), points (B, K, 2), mask (B, K)."""
        if self.mapped is None:
            return self.images[idx], self.points[idx], self.mask[idx]
        rows = self.mapped[idx.cpu().numpy()]  # (B, 96, 96) uint8: reads just these rows from disk
        self.read_since_release += rows.nbytes
        if self.read_since_release >= RELEASE_BYTES:
            _release(self.mapped)
            self.read_since_release = 0
        return image_tensor(rows, self.device), self.points[idx], self.mask[idx]


def _release(array: np.ndarray) -> None:
    """Drop this process's resident pages of the mapping under `array` (Linux MADV_DONTNEED)."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)
