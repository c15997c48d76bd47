"""MNIST readers: the four idx files (raw or .gz) in a folder, or an .npz with x/y train/test.

Every reader returns `Mnist` with uint8 images (N, 28, 28) and int64 labels (N,) and checks what it
reads: idx magic numbers, dimensions against the byte count, image/label counts, label range.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kplab.errors import DataError

IMAGE_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
IDX_NAMES = {  # canonical file stems, as published
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
CLASSES = 10


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) int64
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) int64


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """One idx file (gzip-compressed when its name ends in .gz) as a uint8 array of its declared shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:  # gzip raises all three for damaged archives
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an idx header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: idx magic number is {found} (0x{found:08x}), expected {magic} "
                        f"(0x{magic:08x}); is this the right file?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: {state}: header declares shape {shape} = {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(folder: Path, stem: str) -> Path:
    """`stem` or `stem.gz` in `folder` (also the `stem.idx3-ubyte` spelling some mirrors use)."""
    for name in (stem, f"{stem}.gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {stem} (or {stem}.gz) file found")


def read_idx_folder(folder: str | Path) -> Mnist:
    folder = Path(folder)
    arrays = {}
    for key, stem in IDX_NAMES.items():
        arrays[key] = read_idx(find_idx(folder, stem), IMAGE_MAGIC if key.startswith("x") else LABEL_MAGIC)
    return _checked(arrays, folder)


def read_npz(path: str | Path) -> Mnist:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_NAMES if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; an MNIST .npz needs "
                                f"x_train, y_train, x_test, y_test (has {npz.files})")
            arrays = {k: npz[k] for k in IDX_NAMES}
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    return _checked(arrays, path)


def read_mnist(path: str | Path) -> Mnist:
    """A folder of idx files or an .npz file."""
    path = Path(path)
    if path.is_dir():
        return read_idx_folder(path)
    if path.suffix == ".npz":
        return read_npz(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    raise DataError(f"{path}: expected a folder of MNIST idx files or an .npz file")


def _checked(arrays: dict[str, np.ndarray], source: Path) -> Mnist:
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{source}: x_{part} has shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1:
            raise DataError(f"{source}: y_{part} has shape {y.shape}, expected (N,)")
        if len(x) != len(y):
            raise DataError(f"{source}: x_{part} has {len(x)} images but y_{part} has {len(y)} labels")
        if x.dtype != np.uint8:
            raise DataError(f"{source}: x_{part} has dtype {x.dtype}, expected uint8 pixels 0-255")
        if len(y) and (y.min() < 0 or y.max() >= CLASSES):
            raise DataError(f"{source}: y_{part} has labels outside 0-9 (min {y.min()}, max {y.max()})")
    return Mnist(**{k: (v.astype(np.int64) if k.startswith("y") else v) for k, v in arrays.items()})


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzip when the name ends in .gz); tests and exports use it."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
