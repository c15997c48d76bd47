"""Keypoint layouts (names, left/right flip pairs, regions, NME references, drawings, derived layouts) and
the I2DL coordinate normalisation.

Layouts are data: kplab/layouts/NAME.json, one file each (`kaggle15`, `ibug68`). Every other module asks a
`Layout` how many points there are and which are which; nothing else hard-codes 15, 30 or 68.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kplab.errors import KplabError

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
class Contour:
    """A line drawn through points (layout indices) in order; `closed` joins the last to the first."""
    points: tuple[int, ...]
    closed: bool = False


@dataclass(frozen=True)
class Layout:
    """A keypoint markup: point names in order, left/right flip pairs, and what users measure and draw.

    regions: name -> indices, for per-region errors (jaw, brows, nose, eyes, mouth).
    contours: lines through the points for pictures (eye outlines, lips, jaw).
    references: NME normalisers, "io" (outer eye corners) and "ip" (pupils or eye centres), each a
      (subject-left, subject-right) pair of index groups whose means are the two reference points.
    derive: other layout name -> one index group per point of that layout: its point is the group's mean
      (68 -> 15: a Kaggle eye centre is the mean of the six iBUG points of that eye).
    template: typical positions (K, 2) in a 96 x 96 crop, used to frame faces cut from photos.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]  # (subject-left index, subject-right index)
    regions: dict = field(default_factory=dict, compare=False, hash=False)
    contours: tuple[Contour, ...] = ()
    references: dict = field(default_factory=dict, compare=False, hash=False)
    derive: dict = field(default_factory=dict, compare=False, hash=False)
    template: tuple[tuple[float, float], ...] | None = None
    description: str = ""

    def __post_init__(self):
        k = len(self.names)
        if len(set(self.names)) != k:
            raise ValueError(f"layout {self.name}: keypoint names repeat")
        seen = [i for pair in self.flip_pairs for i in pair]
        if len(set(seen)) != len(seen) or any(not 0 <= i < k for i in seen):
            raise ValueError(f"layout {self.name}: flip pairs must be distinct, in-range indices")
        groups = [*self.regions.values(), *(c.points for c in self.contours),
                  *(g for pair in self.references.values() for g in pair),
                  *(g for rows in self.derive.values() for g in rows)]
        if any(not g or any(not 0 <= i < k for i in g) for g in groups):
            raise ValueError(f"layout {self.name}: a region, contour, reference or derivation names an "
                             f"index outside 0..{k - 1}, or is empty")
        if any(len(pair) != 2 for pair in self.references.values()):
            raise ValueError(f"layout {self.name}: each reference is a (left, right) pair of index groups")
        if self.template is not None and (len(self.template) != k or any(len(p) != 2 for p in self.template)):
            raise ValueError(f"layout {self.name}: template must hold {k} (x, y) points")

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
        """Column names in layout order: name_x, name_y for each point."""
        return [f"{n}_{axis}" for n in self.names for axis in ("x", "y")]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def reference_points(self, points, kind: str):
        """The two NME reference points (..., 2, 2) [left, right] of points (..., K, 2), or None when this
        layout has no `kind` reference. Works on NumPy arrays."""
        if kind not in self.references:
            return None
        return np.stack([np.asarray(points)[..., list(g), :].mean(-2) for g in self.references[kind]], -2)

    def converter(self, target: "Layout") -> np.ndarray:
        """(K_target, K_self) weights W with target_points = W @ points, for a layout this one derives.

        Raises KplabError when this layout cannot answer in `target`'s points."""
        if target.names == self.names:
            return np.eye(self.n_points)
        rows = self.derive.get(target.name)
        if rows is None or len(rows) != target.n_points:
            can = ", ".join([self.name, *self.derive]) or "none"
            raise KplabError(f"layout {self.name} cannot give {target.name} points (it gives: {can})")
        weights = np.zeros((target.n_points, self.n_points))
        for row, group in zip(weights, rows):
            row[list(group)] = 1.0 / len(group)
        return weights

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "names": list(self.names),
                               "flip_pairs": [list(p) for p in self.flip_pairs]}
        if self.description:
            out["description"] = self.description
        if self.regions:
            out["regions"] = {k: list(v) for k, v in self.regions.items()}
        if self.contours:
            out["contours"] = [{"points": list(c.points), **({"closed": True} if c.closed else {})}
                               for c in self.contours]
        if self.references:
            out["references"] = {k: [list(g) for g in pair] for k, pair in self.references.items()}
        if self.derive:
            out["derive"] = {k: [list(g) for g in rows] for k, rows in self.derive.items()}
        if self.template is not None:
            out["template"] = [list(p) for p in self.template]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layout":
        """A layout from its dict; a bare {name, names, flip_pairs} of a registered layout (as older model
        files hold) gets the registered layout's regions, references and drawings."""
        try:
            names, pairs = tuple(str(n) for n in d["names"]), tuple(tuple(int(i) for i in p) for p in d["flip_pairs"])
            name = str(d["name"])
        except (KeyError, TypeError, ValueError) as e:
            raise KplabError(f"a layout needs name, names and flip_pairs ({e})") from None
        known = LAYOUTS.get(name)
        if known is not None and known.names == names and {frozenset(p) for p in known.flip_pairs} == {
                frozenset(p) for p in pairs}:
            return known
        return cls(
            name, names, pairs,
            regions={str(k): tuple(v) for k, v in d.get("regions", {}).items()},
            contours=tuple(Contour(tuple(c["points"]), bool(c.get("closed", False))) for c in d.get("contours", [])),
            references={str(k): tuple(tuple(g) for g in pair) for k, pair in d.get("references", {}).items()},
            derive={str(k): tuple(tuple(g) for g in rows) for k, rows in d.get("derive", {}).items()},
            template=None if d.get("template") is None else tuple(tuple(float(c) for c in p) for p in d["template"]),
            description=str(d.get("description", "")),
        )


def _load_registered(name: str) -> Layout:
    text = (resources.files("kplab") / "layouts" / f"{name}.json").read_text()
    return Layout.from_dict(json.loads(text))


# The registry: every layout kplab knows by name; each is a JSON file in kplab/layouts.
LAYOUTS: dict[str, Layout] = {}
for _name in ("kaggle15", "ibug68"):
    LAYOUTS[_name] = _load_registered(_name)
KAGGLE15 = LAYOUTS["kaggle15"]
IBUG68 = LAYOUTS["ibug68"]


def get_layout(name: str | Path) -> Layout:
    """A registered layout by name, or one read from a layout JSON file (same fields as kplab/layouts)."""
    if str(name) in LAYOUTS:
        return LAYOUTS[str(name)]
    path = Path(name)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            return Layout.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValueError) as e:
            raise KplabError(f"{path}: not a layout file ({e})") from None
    raise KplabError(f"unknown layout {str(name)!r}: use one of {', '.join(LAYOUTS)} or a layout .json file")


def layout_for_names(names, where: str = "data") -> Layout:
    """The registered layout whose point names these are (any order); KplabError when none matches."""
    names = [str(n) for n in names]
    for layout in LAYOUTS.values():
        if sorted(layout.names) == sorted(names):
            return layout
    raise KplabError(f"{where}: its {len(names)} keypoint names match no known layout "
                     f"({', '.join(LAYOUTS)}); pass --layout")


def layout_for_count(n_points: int, where: str = "data") -> Layout:
    """The registered layout with this many points (files that carry no names, like iBUG .pts)."""
    for layout in LAYOUTS.values():
        if layout.n_points == n_points:
            return layout
    raise KplabError(f"{where}: {n_points} points per face match no known layout "
                     f"({', '.join(f'{l.name}: {l.n_points}' for l in LAYOUTS.values())}); pass --layout")


def stacked(first: Layout, second: Layout, prefix: str = "dense:") -> Layout:
    """One layout of `first`'s points followed by `second`'s (names prefixed, flip pairs shifted), so a
    second set of points (dense supervision) is augmented and mirrored with the first."""
    k = first.n_points
    return Layout(f"{first.name}+{second.name}", first.names + tuple(prefix + n for n in second.names),
                  first.flip_pairs + tuple((a + k, b + k) for a, b in second.flip_pairs))


def convert_points(points: np.ndarray, source: Layout, target: Layout) -> np.ndarray:
    """Points (..., K_source, 2) as `target`'s points (..., K_target, 2); a derived point is NaN when any
    point it is made from is missing."""
    weights = source.converter(target)  # (Kt, Ks)
    points = np.asarray(points, np.float64)
    out = np.einsum("ts,...sc->...tc", weights, np.nan_to_num(points))
    missing = np.isnan(points).any(-1).astype(np.float64) @ (weights > 0).T.astype(np.float64) > 0  # (..., Kt)
    out[missing] = np.nan
    return out


def normalise(points_px):
    """Pixel coordinates -> I2DL normalised coordinates (works on NumPy arrays and tensors)."""
    return (points_px - CENTER) / HALF


def to_pixels(points_norm):
    """I2DL normalised coordinates -> pixel coordinates."""
    return points_norm * HALF + CENTER
