"""Packed faces: a folder of uncompressed `.npy` arrays and a JSON manifest, read by memory mapping.

    DIR/manifest.json   {"format": "kplab-packed-faces", "version": 1, "count": N,
                         "keypoint_names": [...], "splits": {"train": [0, 3096], "val": [3096, 3848]},
                         "arrays": {"images": {"shape": [N, 96, 96], "dtype": "|u1"}, ...}, "source": ...}
    DIR/images.npy      uint8 (N, 96, 96)        mapped, never read whole
    DIR/keypoints.npy   float32 (N, K, 2) pixels  NaN where missing (read into memory: 120 bytes a face)
    DIR/names.npy, DIR/person.npy   fixed-width unicode (N,), when the source had them (mapped)
    DIR/dense_keypoints.npy   float32 (N, K_dense, 2), when the source had dense points (faces15.npz's 68;
                        manifest "dense_layout" names their layout)

Rows of one split are contiguous, so a split is a slice of the mapping, not a copy. Why plain `.npy`:
numpy maps it natively (no new dependency), any language can read it, and a batch of a seeded random
permutation is a few direct row reads. Formats made for streaming (WebDataset tar shards) read in
order, not by index; HDF5 and zarr add chunking and compression that a random 9 KB row does not need.

The manifest is written last, so a folder whose writing was interrupted has none and is refused.
"""

from __future__ import annotations

import json
import mmap
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kplab.errors import DataError, KplabError
from kplab.faces.training.faceset import FaceSet, hold_out
from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, Layout, get_layout, layout_for_names
from kplab.progress import say

FORMAT = "kplab-packed-faces"
VERSION = 1
MANIFEST = "manifest.json"


def is_packed(path) -> bool:
    """True for a folder with a packed-faces manifest (what `kplab pack` writes)."""
    return path is not None and (Path(path) / MANIFEST).is_file()


# ----------------------------------------------------------------------------------------------- writing

class PackWriter:
    """Writes a packed folder split by split, chunk by chunk, so the whole set never sits in memory.

    `sizes` gives every split's face count up front ({None: N} for a set without splits); chunks of a
    split are appended in order with `write`; `close` checks every row was written and writes the
    manifest.
    """

    def __init__(self, out: str | Path, sizes: Mapping[str | None, int], layout: Layout = KAGGLE15,
                 *, names: bool = True, person: bool = False, source: str = "", dense_layout: Layout | None = None):
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()):
            raise DataError(f"{self.out}: folder exists and is not empty; pack into a new folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self.layout, self.source = layout, source
        self.splits, start = {}, 0
        for split, size in sizes.items():
            self.splits[split] = [start, start + int(size)]
            start += int(size)
        self.count, self.filled = start, {s: 0 for s in sizes}
        self.arrays = {
            "images": self._create("images", np.uint8, (IMAGE_SIZE, IMAGE_SIZE)),
            "keypoints": self._create("keypoints", np.float32, (layout.n_points, 2)),
        }
        self.dense_layout = dense_layout
        if dense_layout is not None:
            self.arrays["dense_keypoints"] = self._create("dense_keypoints", np.float32, (dense_layout.n_points, 2))
        self.text_fields = [f for f, wanted in (("names", names), ("person", person)) if wanted]
        self.text: dict[str, list[np.ndarray]] = {f: [] for f in self.text_fields}

    def _create(self, name: str, dtype, row_shape: tuple[int, ...]) -> np.memmap:
        return np.lib.format.open_memmap(self.out / f"{name}.npy", mode="w+", dtype=dtype,
                                         shape=(self.count, *row_shape))

    def write(self, split: str | None, faces: FaceSet) -> None:
        if faces.layout.names != self.layout.names:
            raise ValueError(f"PackWriter: faces have layout {faces.layout.name}, the pack {self.layout.name}")
        start, stop = self.splits[split]
        at = start + self.filled[split]
        if at + len(faces) > stop:
            raise ValueError(f"PackWriter: split {split!r} holds {stop - start} faces; got more")
        self.arrays["images"][at:at + len(faces)] = faces.images
        self.arrays["keypoints"][at:at + len(faces)] = faces.keypoints
        if self.dense_layout is not None:
            if faces.dense_layout is None or faces.dense_layout.names != self.dense_layout.names:
                raise ValueError(f"PackWriter: faces from {faces.source} lack {self.dense_layout.name} dense points")
            self.arrays["dense_keypoints"][at:at + len(faces)] = faces.dense_keypoints
        for field in self.text_fields:
            value = getattr(faces, field)
            if value is None:
                raise ValueError(f"PackWriter: faces from {faces.source} lack '{field}'")
            self.text[field].append(np.asarray(value, dtype=str))
        self.filled[split] += len(faces)

    def close(self) -> Path:
        short = {s: (stop - start) - self.filled[s] for s, (start, stop) in self.splits.items()}
        if any(short.values()):
            raise ValueError(f"PackWriter: rows never written: {short}")
        arrays = {}
        for name, array in self.arrays.items():
            array.flush()
            arrays[name] = {"shape": list(array.shape), "dtype": array.dtype.str}
            del array
        self.arrays.clear()
        for field, parts in self.text.items():  # in split order, like the rows
            value = np.concatenate(parts) if parts else np.zeros(0, dtype="<U1")
            np.save(self.out / f"{field}.npy", value, allow_pickle=False)
            arrays[field] = {"shape": list(value.shape), "dtype": value.dtype.str}
        manifest = {"format": FORMAT, "version": VERSION, "count": self.count,
                    "keypoint_names": list(self.layout.names),
                    "splits": {s: r for s, r in self.splits.items() if s is not None},
                    "arrays": arrays, "source": self.source,
                    **({"dense_layout": self.dense_layout.name} if self.dense_layout is not None else {})}
        from kplab.checkpoint import atomic_write_json  # imports torch: only when writing

        atomic_write_json(self.out / MANIFEST, manifest)
        return self.out


def write_packed(out: str | Path, faces: FaceSet | Mapping[str, FaceSet]) -> Path:
    """Pack one FaceSet (no splits) or {split: FaceSet}; `names`/`person` and dense points kept when every
    set has them."""
    parts = dict(faces) if isinstance(faces, Mapping) else {None: faces}
    sets = list(parts.values())
    dense = sets[0].dense_layout
    if dense is None or any(f.dense_layout is None or f.dense_layout.names != dense.names for f in sets):
        dense = None
    writer = PackWriter(out, {s: len(f) for s, f in parts.items()}, sets[0].layout,
                        names=all(f.names is not None for f in sets),
                        person=all(f.person is not None for f in sets),
                        source=", ".join(sorted({f.source for f in sets})), dense_layout=dense)
    try:
        for split, part in parts.items():
            writer.write(split, part)
        return writer.close()
    except BaseException:
        shutil.rmtree(writer.out, ignore_errors=True)  # no half-written pack left behind
        raise


# ----------------------------------------------------------------------------------------------- reading

def read_packed(path: str | Path, split: str | None = None, layout: Layout | None = None) -> FaceSet:
    """One split (None: every row) as a FaceSet whose images (and names, person) are mapped views;
    layout None: the pack's own (from its keypoint names)."""
    path = Path(path)
    manifest = _manifest(path)
    if layout is None:
        try:
            layout = layout_for_names(manifest["keypoint_names"], str(path))
        except KplabError as e:
            raise DataError(str(e)) from None
    if split is None:
        start, stop = 0, manifest["count"]
    elif split in manifest["splits"]:
        start, stop = manifest["splits"][split]
    else:
        have = ", ".join(manifest["splits"]) or "none"
        raise DataError(f"{path}: no split {split!r} in the pack (splits: {have})")
    arrays = {name: _map(path, name, spec) for name, spec in manifest["arrays"].items()}
    keypoints = _select_keypoints(np.array(arrays["keypoints"][start:stop]), manifest["keypoint_names"],
                                  layout, path)
    part = (lambda name: arrays[name][start:stop] if name in arrays else None)
    dense = manifest.get("dense_layout")
    if dense is not None and "dense_keypoints" in arrays:
        try:
            dense = get_layout(dense)
        except KplabError as e:
            raise DataError(f"{path}: {e}") from None
        dense_points = np.array(arrays["dense_keypoints"][start:stop])  # small, like the keypoints: read
    else:
        dense, dense_points = None, None
    return FaceSet(part("images"), keypoints, layout, names=part("names"), person=part("person"),
                   source=f"{path}" + (f" [{split}]" if split else ""), dense_keypoints=dense_points,
                   dense_layout=dense)


def read_packed_train_val(path: str | Path, layout: Layout | None = None, seed: int = 0,
                          val_fraction: float = 0.1) -> tuple[FaceSet, FaceSet]:
    """Its train and val splits; a pack without them is held out like an .npz without splits (in memory)."""
    splits = packed_splits(path)
    if "train" in splits and "val" in splits:
        return read_packed(path, "train", layout), read_packed(path, "val", layout)
    faces = read_packed(path, None, layout)
    is_val = hold_out(len(faces), val_fraction, seed, groups=faces.groups)
    if is_val.all() or not is_val.any():
        raise DataError(f"{path}: {len(faces)} face(s) cannot be split into train and val")
    say(f"{path}: no train/val splits in the pack; holding out {is_val.sum()} of {len(faces)} faces "
        f"(val_fraction {val_fraction}, seed {seed}) and reading both into memory; "
        f"pack with splits to train without copying")
    return faces.subset(~is_val), faces.subset(is_val)


def packed_splits(path: str | Path) -> tuple[str, ...]:
    return tuple(_manifest(Path(path))["splits"])


def is_mapped(array: np.ndarray) -> bool:
    """True when `array` is a view of a memory mapping (its rows are read from disk on access)."""
    return isinstance(array, np.memmap) or isinstance(getattr(array, "base", None), (np.memmap, mmap.mmap))


def _manifest(path: Path) -> dict:
    where = path / MANIFEST
    try:
        manifest = json.loads(where.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no {MANIFEST} (not a packed folder, or its packing was interrupted)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{where}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(f"{where}: version {manifest.get('version')!r}; this kplab reads version {VERSION}")
    for key in ("count", "keypoint_names", "splits", "arrays"):
        if key not in manifest:
            raise DataError(f"{where}: field {key!r} missing")
    for key in ("images", "keypoints"):
        if key not in manifest["arrays"]:
            raise DataError(f"{where}: arrays lack {key!r}")
    count = manifest["count"]
    for split, bounds in manifest["splits"].items():
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not 0 <= bounds[0] <= bounds[1] <= count):
            raise DataError(f"{where}: split {split!r} has rows {bounds!r}, outside 0..{count}")
    return manifest


def _map(path: Path, name: str, spec: dict) -> np.ndarray:
    """The array `name`.npy mapped read-only, checked against the manifest's shape and dtype."""
    file = path / f"{name}.npy"
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{file}: missing (listed in {MANIFEST})") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{file}: not a readable .npy array ({e})") from None
    if list(array.shape) != spec.get("shape") or array.dtype.str != spec.get("dtype"):
        raise DataError(f"{file}: holds {array.dtype.str} {list(array.shape)}, but {MANIFEST} says "
                        f"{spec.get('dtype')} {spec.get('shape')} (file truncated or replaced?)")
    return array


def _select_keypoints(keypoints: np.ndarray, names: list[str], layout: Layout, path: Path) -> np.ndarray:
    missing = [n for n in layout.names if n not in names]
    if missing:
        raise DataError(f"{path}: keypoint(s) {', '.join(missing)} of layout {layout.name} are not in the pack")
    return keypoints[:, [names.index(n) for n in layout.names]]
