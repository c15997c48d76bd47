"""Annotation files for full-size photos: iBUG `.pts` beside the images, dlib's imglab XML, a photo CSV.

Each reader returns `Annotation`s: which photo, the face's points (K, 2) in that photo's pixels (as
written: kplab counts pixel centres from 1, like the iBUG files, see layout.PIXEL_CENTRE), and where
each point was written, so that a bad point found later (far outside its photo) is reported by file
and line. Nothing here decodes an image; `photo_faces.py` turns annotations into training crops.

- A folder: every image has one `.pts` file per face, `NAME.pts` or `NAME_1.pts`, `NAME_2.pts`, ...
  (the 300-W naming). An image without annotation, or an annotation without its image, is an error.
- An imglab `.xml` (dlib's training files): `<image file=...><box ...><part name='00' x= y=/>...`;
  part names are point indices. Entity declarations are refused (defusedxml), so a hostile file
  cannot expand itself.
- A photo `.csv`: `file, <name>_x, <name>_y, ...` in photo pixels, one row per face; the names say
  the layout, as in `photos/keypoints68.csv`.
Image paths in XML and CSV files are relative to the file's folder.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kplab.errors import DataError, KplabError
from kplab.faces.training.images import IMAGE_EXTENSIONS
from kplab.faces.training.layout import Layout, layout_for_count, layout_for_names


@dataclass
class Annotation:
    photo: Path
    points: np.ndarray          # (K, 2) float64 photo pixels; NaN where a point is missing
    where: str                  # the face's file (and line or row), for messages
    point_where: tuple[str, ...]  # (K,) where each point was written, for messages


def read_annotations(path: str | Path, layout: Layout | None = None) -> tuple[list[Annotation], Layout]:
    """Annotations of a photo folder, imglab .xml or photo .csv, and their layout (from the file's
    point names or count unless `layout` is given)."""
    path = Path(path)
    if path.is_dir():
        return _read_pts_folder(path, layout)
    if path.suffix.lower() == ".xml":
        return read_imglab_xml(path, layout)
    if path.suffix.lower() == ".csv":
        return read_photo_csv(path, layout)
    raise DataError(f"{path}: not a folder of photos with .pts files, an imglab .xml or a photo .csv")


# --------------------------------------------------------------------------------------------- .pts

def read_pts(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """One iBUG `.pts` file -> (points (n, 2), where each point was written)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None
    header: dict[str, str] = {}
    number = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text == "{":
            break
        if not text:
            continue
        key, sep, value = text.partition(":")
        if not sep:
            raise DataError(f"{path}, line {number}: expected 'version: 1', 'n_points: N' or '{{', got {text[:30]!r}")
        header[key.strip()] = value.strip()
    else:
        raise DataError(f"{path}: no opening '{{' before the points")
    if "n_points" not in header:
        raise DataError(f"{path}: no 'n_points:' line before '{{'")
    if not header["n_points"].isdigit() or int(header["n_points"]) < 1:
        raise DataError(f"{path}: n_points {header['n_points']!r} is not a positive whole number")
    n_points = int(header["n_points"])
    points, where = [], []
    for number, line in enumerate(lines[number:], number + 1):
        text = line.strip()
        if text == "}":
            break
        if not text:
            continue
        cells = text.split()
        if len(cells) != 2:
            raise DataError(f"{path}, line {number}: expected 'x y', got {text[:40]!r}")
        try:
            x, y = float(cells[0]), float(cells[1])
        except ValueError:
            bad = next(c for c in cells if not _is_number(c))
            raise DataError(f"{path}, line {number}: {bad[:20]!r} is not a number") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise DataError(f"{path}, line {number}: {text!r} is not a finite point")
        points.append((x, y))
        where.append(f"{path}, line {number}")
    else:
        raise DataError(f"{path}: no closing '}}' after the points")
    if len(points) != n_points:
        raise DataError(f"{path}: n_points says {n_points}, but {len(points)} points stand between the braces")
    return np.array(points, np.float64), tuple(where)


def write_pts(path: str | Path, points: np.ndarray) -> None:
    """An iBUG `.pts` file for points (n, 2) (atomic)."""
    from kplab.checkpoint import atomic_write_bytes

    rows = "".join(f"{x:.3f} {y:.3f}\n" for x, y in np.asarray(points, np.float64))
    atomic_write_bytes(path, f"version: 1\nn_points: {len(points)}\n{{\n{rows}}}\n".encode())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_pts_folder(folder: Path, layout: Layout | None) -> tuple[list[Annotation], Layout]:
    visible = [p for p in sorted(folder.rglob("*"))
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    images = {p.with_suffix(""): p for p in visible if p.suffix.lower() in IMAGE_EXTENSIONS}
    pts_files = [p for p in visible if p.suffix.lower() == ".pts"]
    if not pts_files:
        raise DataError(f"{folder}: no .pts annotation files (and no training.csv of an I2DL folder)")
    annotations, annotated = [], set()
    for pts in pts_files:
        stem = pts.with_suffix("")
        photo = images.get(stem)
        numbered = re.fullmatch(r"(.*)_(\d+)", stem.name)
        if photo is None and numbered:
            photo = images.get(stem.with_name(numbered.group(1)))
        if photo is None:
            raise DataError(f"{pts}: annotation without an image (looked for {stem.name}.* "
                            + (f"and {numbered.group(1)}.* " if numbered else "") + "beside it)")
        points, where = read_pts(pts)
        annotations.append(Annotation(photo, points, str(pts), where))
        annotated.add(photo)
    missing = [p for p in images.values() if p not in annotated]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: image without annotation (no {missing[0].stem}.pts or "
                        f"{missing[0].stem}_1.pts beside it){more}")
    return annotations, _check_count(annotations, layout)


def _check_count(annotations: list[Annotation], layout: Layout | None) -> Layout:
    """All faces must have the layout's number of points (the layout is chosen by count if not given)."""
    layout = layout or _layout_by_count(annotations[0])
    for a in annotations:
        if len(a.points) != layout.n_points:
            raise DataError(f"{a.where}: {len(a.points)} points, but layout {layout.name} has {layout.n_points}"
                            f" (n_points must be {layout.n_points})")
    return layout


def _layout_by_count(first: Annotation) -> Layout:
    try:
        return layout_for_count(len(first.points), first.where)
    except KplabError as e:
        raise DataError(str(e)) from None


# ------------------------------------------------------------------------------------------ imglab XML

def read_imglab_xml(path: str | Path, layout: Layout | None = None) -> tuple[list[Annotation], Layout]:
    """dlib's imglab XML: one Annotation per <box> that has <part>s (boxes without parts are skipped)."""
    import defusedxml.ElementTree as SafeET
    from defusedxml import DefusedXmlException
    from xml.etree.ElementTree import ParseError

    path = Path(path)
    try:
        root = SafeET.parse(str(path)).getroot()
    except DefusedXmlException as e:
        raise DataError(f"{path}: refused: the file declares entities or a DTD ({type(e).__name__}), "
                        "which annotation files never need") from None
    except ParseError as e:
        raise DataError(f"{path}: not well-formed XML ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    faces: list[tuple[Path, dict[int, tuple[float, float]], str]] = []
    for i, image in enumerate(root.iter("image"), 1):
        file = image.get("file")
        if not file:
            raise DataError(f"{path}: <image> number {i} has no file attribute")
        photo = (path.parent / file)
        for j, box in enumerate(image.iter("box"), 1):
            where = f"{path}, image {file!r}, box {j}"
            parts: dict[int, tuple[float, float]] = {}
            for part in box.iter("part"):
                name, x, y = part.get("name"), part.get("x"), part.get("y")
                if name is None or not name.strip().isdigit():
                    raise DataError(f"{where}: part name {name!r} is not a point index like '00'")
                for label, value in (("x", x), ("y", y)):
                    if value is None or not _is_number(value) or not np.isfinite(float(value)):
                        raise DataError(f"{where}, part {name}: {label}={value!r} is not a number")
                parts[int(name)] = (float(x), float(y))
            if parts:
                faces.append((photo, parts, where))
    if not faces:
        raise DataError(f"{path}: no <box> with <part> points")
    n_points = layout.n_points if layout else max(max(p) for _, p, _ in faces) + 1
    annotations = []
    for photo, parts, where in faces:
        if max(parts) >= n_points:
            raise DataError(f"{where}: part {max(parts)} is beyond the {n_points} points of the layout")
        points = np.full((n_points, 2), np.nan)
        for k, xy in parts.items():
            points[k] = xy
        annotations.append(Annotation(photo, points, where, tuple(f"{where}, part {k:02d}" for k in range(n_points))))
    return annotations, _check_count(annotations, layout)


def write_imglab_xml(path: str | Path, faces: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """imglab XML for faces [(file, box [left, top, width, height], points (K, 2))] (atomic)."""
    from xml.sax.saxutils import quoteattr

    from kplab.checkpoint import atomic_write_bytes

    by_file: dict[str, list] = defaultdict(list)
    for file, box, points in faces:
        by_file[file].append((box, points))
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<dataset>", "<images>"]
    for file, boxes in by_file.items():
        lines.append(f"  <image file={quoteattr(file)}>")
        for (left, top, width, height), points in boxes:
            lines.append(f"    <box top='{top:.0f}' left='{left:.0f}' width='{width:.0f}' height='{height:.0f}'>")
            lines += [f"      <part name='{k:02d}' x='{x:.3f}' y='{y:.3f}'/>" for k, (x, y) in enumerate(points)
                      if np.isfinite(x) and np.isfinite(y)]
            lines.append("    </box>")
        lines.append("  </image>")
    lines += ["</images>", "</dataset>", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


# ------------------------------------------------------------------------------------------ photo CSV

def read_photo_csv(path: str | Path, layout: Layout | None = None) -> tuple[list[Annotation], Layout]:
    """`file, <name>_x, <name>_y, ...` rows in photo pixels; empty cells are missing points."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or "file" not in [h.strip() for h in rows[0]]:
        raise DataError(f"{path}: a photo CSV needs a header with a 'file' column and <name>_x, <name>_y columns")
    header = [h.strip() for h in rows[0]]
    names = [h[:-2] for h in header if h.endswith("_x") and f"{h[:-2]}_y" in header]
    if layout is None:
        try:
            layout = layout_for_names(names, str(path))
        except KplabError as e:
            raise DataError(str(e)) from None
    missing = [c for c in layout.csv_columns() if c not in header]
    if missing:
        raise DataError(f"{path}: header lacks column(s) {', '.join(missing[:6])}"
                        + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    file_col = header.index("file")
    columns = [header.index(c) for c in layout.csv_columns()]
    annotations = []
    for r, row in enumerate(rows[1:], 1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, row {r}"
        if len(row) < len(header):
            raise DataError(f"{where}: {len(row)} cells, but the header has {len(header)} columns")
        values = []
        for c in columns:
            cell = row[c].strip()
            if cell and not (_is_number(cell) and np.isfinite(float(cell))):
                raise DataError(f"{where}, column {header[c]}: {cell[:20]!r} is not a number")
            values.append(float(cell) if cell else np.nan)
        points = np.array(values, np.float64).reshape(-1, 2)
        points[np.isnan(points).any(-1)] = np.nan
        annotations.append(Annotation(path.parent / row[file_col].strip(), points, where,
                                      tuple(f"{where}, column {n}_x" for n in layout.names)))
    if not annotations:
        raise DataError(f"{path}: no data rows below the header")
    return annotations, layout
