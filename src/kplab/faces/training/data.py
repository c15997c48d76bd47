"""Face readers and writers: I2DL folder, Kaggle/I2DL CSV, our `.npz`, synthetic faces.

Every reader returns a `FaceSet`: uint8 images (N, 96, 96) and float32 pixel keypoints (N, K, 2), with
NaN where a keypoint is missing (Kaggle's empty cells). Bad input raises `DataError` naming the file,
the row and the field; nothing here prints except through `progress.say`.

Sources (`read_faces(path, split)`):
- None, "synthetic" or "synthetic:N": generated faces (see `synthetic.py`). Splits train (N faces,
  default 2,000), val and test (N // 5 each, default 400), drawn from disjoint seed streams.
- a folder: I2DL layout, split train -> training.csv (the default), val -> val.csv, test -> test.csv;
  rows with any missing keypoint are dropped, as the I2DL reader does.
- a `.csv` file: Kaggle or I2DL CSV, every row kept (gaps become NaN); it has no splits.
- a `.npz` file: `images`, `keypoints`, optional `split`, `person`, `names`, `keypoint_names`,
  `photo`, `framing_target`; split=None reads every row.
- a packed folder (`kplab pack`, see packed.py): its images stay on disk, memory-mapped.
- annotated full-size photos (a folder with `.pts` files, an imglab `.xml`, a CSV with a `file`
  column): faces cut out and framed by `photo_faces.py`; no splits.

The layout comes from the file (point names, or the count where a file has no names) unless the
caller names one; a layout the file's derives is computed (15 Kaggle points from 68 iBUG points).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kplab.errors import ConfigError, DataError, KplabError
from kplab.faces.training.faceset import FaceSet, hold_out
from kplab.faces.training.layout import (IBUG68, IMAGE_SIZE, KAGGLE15, LAYOUTS, Layout, layout_for_count,
                                        layout_for_names)
from kplab.progress import say

N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
SYNTHETIC_TRAIN_SIZE = 2000  # "synthetic" alone; "synthetic:N" sets it
SYNTHETIC_SPLITS = ("train", "val", "test")
I2DL_FILES = {"train": "training.csv", "val": "val.csv", "test": "test.csv"}


# ----------------------------------------------------------------------------------------------- reading

def read_faces(path: str | Path | None, split: str | None = None, *, layout: Layout | None = None,
               seed: int = 0) -> FaceSet:
    """Read one split of a face source (see the module docstring for what each source offers).

    layout None: the file's own (from its point names or count; Kaggle 15 for synthetic faces); a layout
    the file's layout derives (15 points from a 68-point file) is computed from it."""
    if _is_synthetic(path):
        n_train = _synthetic_size(path)
        split = split or "train"
        if split not in SYNTHETIC_SPLITS:
            raise DataError(f"synthetic faces have splits {', '.join(SYNTHETIC_SPLITS)}; got split {split!r}")
        _warn_synthetic(path, {split: _synthetic_split_size(n_train, split)}, seed)
        return _synthetic(n_train, split, seed, layout or KAGGLE15)
    path = Path(path)
    if _is_packed(path):
        return _packed().read_packed(path, split, layout)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if is_photo_source(path):
        if split is not None:
            raise DataError(f"{path}: annotated photos have no splits (got split {split!r}); omit the split "
                            f"to read every face")
        from kplab.faces.training.photo_faces import read_photo_faces

        return read_photo_faces(path, layout)
    if path.is_dir():
        return _read_i2dl_split(path, split or "train", layout)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if split is not None:
            raise DataError(f"{path}: a CSV file has no splits (got split {split!r}); omit the split "
                            f"to read every row, or use an I2DL folder or an .npz with a split field")
        return read_csv(path, layout)
    if suffix == ".npz":
        return read_npz(path, split, layout)
    raise DataError(f"{path}: unknown face data; expected an I2DL folder, a .csv, a .npz, a folder of photos "
                    f"with .pts files, an imglab .xml or 'synthetic[:N]'")


def is_photo_source(path: Path) -> bool:
    """Full-size photos with annotations: an imglab .xml, a CSV with a `file` column instead of `Image`,
    or a folder that is not an I2DL folder."""
    if path.is_dir():
        return not _is_packed(path) and not any((path / f).is_file() for f in I2DL_FILES.values())
    if path.suffix.lower() == ".xml":
        return True
    if path.suffix.lower() == ".csv" and path.is_file():
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        return "file" in header and "Image" not in header
    return False


def read_train_val(path: str | Path | None, *, layout: Layout | None = None, seed: int = 0,
                   val_fraction: float = 0.1, val: str | Path | None = None) -> tuple[FaceSet, FaceSet]:
    """Training and validation faces from one source.

    - `val` given: every face of `path` trains, and `val`'s faces (its val split where it has one)
      validate.
    - npz with `split`: its train and val rows. npz without `split`, a Kaggle CSV and annotated photos:
      a deterministic hold-out of about `val_fraction` of the faces chosen by `seed`, whole people (or
      whole photos) at a time where the file knows them (so no person or photo is in both).
    - I2DL folder: training.csv and val.csv.
    - synthetic ("synthetic:N"): N training faces (default 2,000) and N // 5 validation faces
      (default 400) from disjoint seed streams.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    if val is not None:
        train = read_faces(path, "train" if "train" in available_splits(path) else None, layout=layout, seed=seed)
        return train, read_faces(val, "val" if "val" in available_splits(val) else None, layout=train.layout,
                                 seed=seed)
    if _is_synthetic(path):
        n_train = _synthetic_size(path)
        _warn_synthetic(path, {s: _synthetic_split_size(n_train, s) for s in ("train", "val")}, seed)
        return (_synthetic(n_train, "train", seed, layout or KAGGLE15),
                _synthetic(n_train, "val", seed, layout or KAGGLE15))
    path = Path(path)
    if _is_packed(path):
        return _packed().read_packed_train_val(path, layout, seed, val_fraction)
    if path.is_dir() and not is_photo_source(path):
        return _read_i2dl_split(path, "train", layout), _read_i2dl_split(path, "val", layout)
    if path.suffix.lower() == ".npz" and available_splits(path):
        return read_npz(path, "train", layout), read_npz(path, "val", layout)
    faces = read_faces(path, layout=layout)
    is_val = hold_out(len(faces), val_fraction, seed, groups=faces.groups)
    if is_val.all() or not is_val.any():
        raise DataError(f"{path}: {len(faces)} face(s) cannot be split into train and val")
    unit = "people" if faces.person is not None else "photos" if faces.photo is not None else "faces"
    say(f"{path}: no val split in the data; holding out {is_val.sum()} of {len(faces)} faces for validation "
        f"(whole {unit}; val_fraction {val_fraction}, seed {seed}; --val DATA gives your own)")
    train, val_set = faces.subset(~is_val), faces.subset(is_val)
    train.source, val_set.source = f"{faces.source} (train hold-out)", f"{faces.source} (val hold-out)"
    return train, val_set


def available_splits(path: str | Path | None) -> tuple[str, ...]:
    """The split names `read_faces(path, split)` accepts; () for a source without splits (a CSV)."""
    if _is_synthetic(path):
        return SYNTHETIC_SPLITS
    path = Path(path)
    if _is_packed(path):
        return _packed().packed_splits(path)
    if path.is_dir():
        return tuple(s for s, f in I2DL_FILES.items() if (path / f).is_file())
    if path.suffix.lower() == ".npz" and path.is_file():
        with _open_npz(path) as npz:
            if "split" not in npz.files:
                return ()
            return tuple(str(s) for s in np.unique(_npz_field(npz, "split", path).astype(str)))
    return ()


def read_csv(path: str | Path, layout: Layout | None = None) -> FaceSet:
    """A Kaggle/I2DL CSV: the layout's `<name>_x`/`<name>_y` columns and `Image`; extra columns ignored.

    layout None: the registered layout whose columns the header has (Kaggle 15 when none matches, so
    the error names the missing Kaggle columns).

    Empty keypoint cells become NaN. Row numbers in errors count data rows from 1 (the header is
    line 1 of the file, so data row r is line r + 1 when no cell spans lines).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise DataError(f"{path}: empty file (no header row)")
            header_names = [h.strip() for h in header]
            layout = layout or _csv_layout(header_names)
            columns = _column_indices(path, header_names, layout)
            images, keypoints, rows = [], [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                r = len(rows) + 1
                where = f"{path}, row {r} (line {reader.line_num})"
                if len(row) < len(header):
                    raise DataError(f"{where}: {len(row)} cells, but the header has {len(header)} columns")
                keypoints.append(_parse_keypoints(row, columns, where))
                images.append(_parse_image(row[columns["Image"]], where))
                rows.append(r)
        except csv.Error as e:
            raise DataError(f"{path}, line {reader.line_num}: not a readable CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    if not rows:
        raise DataError(f"{path}: no data rows below the header")
    return FaceSet(np.stack(images), np.stack(keypoints), layout,
                   names=np.array([f"{path.name}:row {r}" for r in rows]), source=str(path))


def read_npz(path: str | Path, split: str | None = None, layout: Layout | None = None) -> FaceSet:
    """Our `.npz`; `split` selects the rows whose `split` field equals it (None: every row).

    layout None: the file's layout, from `keypoint_names` (or the point count when it has none)."""
    path = Path(path)
    with _open_npz(path) as npz:
        for required in ("images", "keypoints"):
            if required not in npz.files:
                raise DataError(f"{path}: no '{required}' array (has: {', '.join(npz.files)})")
        fields = {k: _npz_field(npz, k, path) for k in
                  ("images", "keypoints", "split", "person", "names", "keypoint_names", "photo", "framing_target",
                   "keypoints68")
                  if k in npz.files}
    n = len(fields["images"])
    for k in ("split", "person", "names", "photo"):
        if k in fields and fields[k].shape != (n,):
            raise DataError(f"{path}: '{k}' has shape {fields[k].shape}, expected ({n},) like 'images'")
    keep = np.ones(n, dtype=bool)
    source = str(path)
    if split is not None:
        if "split" not in fields:
            raise DataError(f"{path}: split {split!r} asked for, but the file has no 'split' array")
        labels = fields["split"].astype(str)
        keep = labels == split
        if not keep.any():
            have = ", ".join(f"{s} ({c})" for s, c in zip(*np.unique(labels, return_counts=True)))
            raise DataError(f"{path}: no rows with split {split!r} (splits: {have})")
        source = f"{path} [{split}]"
    images = _npz_images(fields["images"], path)
    file_layout, keypoints = _npz_keypoints(fields["keypoints"], fields.get("keypoint_names"), layout, path)
    names = fields.get("names")
    if names is None:
        names = np.array([f"{path.name}:index {i}" for i in range(n)])
    pick = (lambda k: None if fields.get(k) is None else fields[k][keep])
    dense = fields.get("keypoints68")  # faces15.npz: the 68 iBUG points each 15-point crop was made from
    if dense is not None and dense.shape != (n, IBUG68.n_points, 2):
        raise DataError(f"{path}: 'keypoints68' has shape {dense.shape}, expected ({n}, {IBUG68.n_points}, 2)")
    faces = FaceSet(images[keep], keypoints[keep], file_layout, names=names[keep], person=pick("person"),
                    source=source, photo=pick("photo"), framing_target=fields.get("framing_target"),
                    dense_keypoints=pick("keypoints68"), dense_layout=None if dense is None else IBUG68)
    return faces.as_layout(layout)


# ----------------------------------------------------------------------------------------------- writing

def write_csv(path: str | Path, faces: FaceSet) -> None:
    """Kaggle/I2DL CSV: `<name>_x`, `<name>_y` per keypoint in layout order, then `Image`.

    Missing keypoints are empty cells; coordinates are written as the shortest decimal that reads
    back as the same float32, so `read_faces(path)` returns identical arrays.
    """
    from kplab.checkpoint import atomic_write_bytes  # imports torch: only when writing

    pixel_text = np.array([str(v) for v in range(256)], dtype=object)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(faces.layout.csv_columns() + ["Image"])
    for image, points in zip(faces.images, faces.keypoints):
        cells = ["" if np.isnan(v) else str(v) for v in points.reshape(-1)]  # np.float32 str: shortest
        writer.writerow(cells + [" ".join(pixel_text[image.reshape(-1)])])
    atomic_write_bytes(path, text.getvalue().encode())


def write_npz(path: str | Path, faces: FaceSet | Mapping[str, FaceSet]) -> None:
    """Our compressed `.npz` (plain arrays only, readable with allow_pickle=False).

    A mapping {split name: FaceSet} writes all of them with a `split` field; a single FaceSet is
    written without one. `person`/`names` are written when every set has them.
    """
    from kplab.checkpoint import atomic_write_bytes  # imports torch: only when writing

    parts = dict(faces) if isinstance(faces, Mapping) else {None: faces}
    sets = list(parts.values())
    layout = sets[0].layout
    if any(s.layout.names != layout.names for s in sets):
        raise ValueError("write_npz: all face sets must share one layout")
    arrays = {
        "images": np.concatenate([s.images for s in sets]),
        "keypoints": np.concatenate([s.keypoints for s in sets]),
        "keypoint_names": np.array(layout.names),
    }
    if isinstance(faces, Mapping):
        arrays["split"] = np.concatenate([np.full(len(s), str(name)) for name, s in parts.items()])
    for field in ("person", "names", "photo"):
        if all(getattr(s, field) is not None for s in sets):
            arrays[field] = np.concatenate([getattr(s, field) for s in sets]).astype(str)
    if sets[0].framing_target is not None:
        arrays["framing_target"] = sets[0].framing_target
    if all(s.dense_layout is not None and s.dense_layout.names == IBUG68.names for s in sets):
        arrays["keypoints68"] = np.concatenate([s.dense_keypoints for s in sets])  # as faces15.npz carries them
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------------------------- helpers

def _is_packed(path: Path) -> bool:
    return (path / "manifest.json").is_file() or (path / "images.npy").is_file()  # `kplab pack` (packed.py)


def _packed():
    from kplab.faces.training import packed  # here: memory mapping is only needed for packed folders

    return packed


def _is_synthetic(path) -> bool:
    return path is None or str(path) == "synthetic" or str(path).startswith("synthetic:")


def _synthetic_size(path) -> int:
    if path is None or str(path) == "synthetic":
        return SYNTHETIC_TRAIN_SIZE
    text = str(path).split(":", 1)[1]
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"{path!s}: expected 'synthetic:N' with N a positive whole number of faces")
    return int(text)


def _synthetic_split_size(n_train: int, split: str) -> int:
    return n_train if split == "train" else max(1, n_train // 5)


def _synthetic(n_train: int, split: str, seed: int, layout: Layout) -> FaceSet:
    from kplab.faces.training.synthetic import synthetic_faces  # here: synthetic.py imports this module (and cv2)

    # One independent stream per (seed, split): the val faces can never repeat a training face.
    stream = int(np.random.SeedSequence([seed, SYNTHETIC_SPLITS.index(split)]).generate_state(1)[0])
    faces = synthetic_faces(_synthetic_split_size(n_train, split), stream, layout)
    faces.source = f"synthetic faces [{split}, seed {seed}]"
    faces.names = np.array([f"synthetic:{split}:seed {seed}:{i}" for i in range(len(faces))])
    return faces


def _warn_synthetic(path, sizes: dict[str, int], seed: int) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sizes.items())
    why = "no data given" if path is None else f"data {str(path)!r}"
    say(f"WARNING: {why}: using SYNTHETIC cartoon faces ({counts}; seed {seed}), not real photos. "
        f"Pass --data PATH (I2DL folder, Kaggle CSV or .npz) to use real faces.")


def _read_i2dl_split(folder: Path, split: str, layout: Layout | None) -> FaceSet:
    if split not in I2DL_FILES:
        raise DataError(f"{folder}: unknown split {split!r} for an I2DL folder (splits: {', '.join(I2DL_FILES)})")
    path = folder / I2DL_FILES[split]
    if not path.is_file():
        present = ", ".join(p.name for p in sorted(folder.glob("*.csv"))) or "no CSV files"
        raise DataError(f"{folder}: split {split!r} needs {path.name}, which is missing (found: {present})")
    faces = read_csv(path, layout)
    complete = faces.mask.all(axis=1)
    if not complete.all():
        say(f"{path}: dropped {int((~complete).sum())} of {len(faces)} rows with missing keypoints "
            f"(as the I2DL reader does)")
        if not complete.any():
            raise DataError(f"{path}: every row has missing keypoints")
        faces = faces.subset(complete)
    return faces


def _column_indices(path: Path, header: list[str], layout: Layout) -> dict[str, int]:
    wanted = layout.csv_columns() + ["Image"]
    missing = [c for c in wanted if c not in header]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise DataError(f"{path}: header lacks column(s) {shown}")
    repeated = [c for c in wanted if header.count(c) > 1]
    if repeated:
        raise DataError(f"{path}: header repeats column(s) {', '.join(repeated)}")
    return {c: header.index(c) for c in wanted}


def _parse_keypoints(row: list[str], columns: dict[str, int], where: str) -> np.ndarray:
    values = []
    for name, i in columns.items():
        if name == "Image":
            continue
        cell = row[i].strip()
        if not cell:
            values.append(np.nan)
            continue
        try:
            value = float(cell)
        except ValueError:
            raise DataError(f"{where}, column {name}: {cell[:20]!r} is not a number") from None
        if np.isinf(value):
            raise DataError(f"{where}, column {name}: {cell!r} is not a finite coordinate")
        values.append(value)
    return np.array(values, dtype=np.float32).reshape(-1, 2)  # (K, 2)


def _parse_image(cell: str, where: str) -> np.ndarray:
    """9,216 space-separated integers 0..255 -> (96, 96) uint8."""
    try:
        values = np.fromstring(cell, dtype=np.float64, sep=" ")
    except ValueError:  # numpy >= 2.3 refuses text it cannot read to its end
        values = None
    if values is None or values.size != N_PIXELS:
        # Slow path only for broken rows: find the first token that is not a number.
        tokens = cell.split()
        for j, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise DataError(f"{where}, column Image: value {j + 1} ({token[:20]!r}) is not a number") from None
        raise DataError(f"{where}, column Image: {len(tokens)} pixel values, expected {N_PIXELS} "
                        f"({IMAGE_SIZE}x{IMAGE_SIZE})")
    bad = ~((values >= 0) & (values <= 255) & (values == np.round(values)))
    if bad.any():
        j = int(np.argmax(bad))
        raise DataError(f"{where}, column Image: value {j + 1} is {values[j]:g}; pixels must be "
                        f"whole numbers from 0 to 255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _open_npz(path: Path):
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None


def _npz_field(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as e:  # object arrays need pickle, which we never allow
        raise DataError(f"{path}: array '{key}' cannot be read without pickle ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: array '{key}' is damaged ({e})") from None


def _npz_images(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{path}: 'images' has shape {images.shape}, expected (N, {IMAGE_SIZE}, {IMAGE_SIZE})")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind not in "iuf":
        raise DataError(f"{path}: 'images' has dtype {images.dtype}, expected uint8")
    bad = ~((images >= 0) & (images <= 255) & (images == np.round(images)))
    if bad.any():
        i = int(np.argmax(bad.reshape(len(images), -1).any(axis=1)))
        raise DataError(f"{path}: 'images' row {i} (0-based) holds values that are not whole numbers 0..255")
    return images.astype(np.uint8)


def _npz_keypoints(keypoints: np.ndarray, names: np.ndarray | None, layout: Layout | None,
                   path: Path) -> tuple[Layout, np.ndarray]:
    """(the layout the points are read in, keypoints (N, K, 2) float32 in that layout's order).

    With `keypoint_names`, a layout whose names the file has is read directly (in the layout's order);
    otherwise the file's own registered layout is read and converted by the caller."""
    if keypoints.ndim != 3 or keypoints.shape[2] != 2 or keypoints.dtype.kind not in "iuf":
        raise DataError(f"{path}: 'keypoints' has shape {keypoints.shape} and dtype {keypoints.dtype}, "
                        f"expected float (N, K, 2)")
    if names is None:
        try:
            layout = layout or layout_for_count(keypoints.shape[1], str(path))
        except KplabError as e:
            raise DataError(str(e)) from None
        if keypoints.shape[1] != layout.n_points:
            raise DataError(f"{path}: {keypoints.shape[1]} keypoints per face, but layout {layout.name} "
                            f"has {layout.n_points}")
        return layout, keypoints.astype(np.float32)
    names = [str(n) for n in names]
    if len(names) != keypoints.shape[1]:
        raise DataError(f"{path}: 'keypoint_names' has {len(names)} names for {keypoints.shape[1]} keypoints")
    if layout is None or not all(n in names for n in layout.names):
        try:
            own = layout_for_names(names, str(path))
        except KplabError as e:
            if layout is None:
                raise DataError(str(e)) from None
            missing = [n for n in layout.names if n not in names]
            raise DataError(f"{path}: keypoint(s) {', '.join(missing[:6])} of layout {layout.name} are not in "
                            f"the file") from None
        if layout is not None:
            own.converter(layout)  # raises, naming both layouts, when the file's points cannot give layout's
        layout = own
    return layout, keypoints[:, [names.index(n) for n in layout.names]].astype(np.float32)


def _csv_layout(header: list[str]) -> Layout:
    """The registered layout whose columns a CSV header has; Kaggle 15 when none does."""
    for layout in LAYOUTS.values():
        if all(c in header for c in layout.csv_columns()):
            return layout
    return KAGGLE15
