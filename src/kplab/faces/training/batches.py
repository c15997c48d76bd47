"""Training faces as tensors, indexed one batch at a time: `faces[idx]` -> (images, points, mask).

A set in memory is converted once (float images, as before). A packed set (`packed.py`) stays on
disk: each batch reads its rows from the memory map and converts just those, with the same
arithmetic, so both give the same numbers. After each batch the map's pages are dropped from this
process (MADV_DONTNEED; the kernel's page cache keeps them): the kernel maps whole page-cache folios
(2 MB on the machine measured) around each 9 KB row, so without this resident memory climbs towards
the whole file within one epoch. Dropping costs about 2 ms a batch of 32 from a 200,000-face pack,
about 1 % of a step of the shipped network on one core.
"""

from __future__ import annotations

import mmap

import numpy as np
import torch

from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.evaluate import image_tensor, label_tensors, to_tensors
from kplab.faces.training.packed import is_mapped


class FaceTensors:
    def __init__(self, faces: FaceSet, device="cpu"):
        self.device = device
        self.mapped = faces.images if is_mapped(faces.images) else None
        if self.mapped is None:
            self.images, self.points, self.mask = to_tensors(faces, device)  # (N, 1, 96, 96), (N, K, 2), (N, K)
        else:
            self.points, self.mask = label_tensors(faces, device)  # labels are small: 120 bytes a face
            self.mapping = _mapping(self.mapped)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows `idx` (a 1-D index tensor, in its order): images (B, 1, 96, 96), points (B, K, 2), mask (B, K)."""
        if self.mapped is None:
            return self.images[idx], self.points[idx], self.mask[idx]
        rows = self.mapped[idx.cpu().numpy()]  # (B, 96, 96) uint8, a copy: reads just these rows from disk
        if self.mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
            self.mapping.madvise(mmap.MADV_DONTNEED)
        return image_tensor(rows, self.device), self.points[idx], self.mask[idx]


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    """The mmap object under a memory-mapped array (numpy keeps it at the end of the `.base` chain)."""
    while array is not None and not isinstance(array, mmap.mmap):
        array = getattr(array, "base", None)
    return array
