"""The model behind the service: one `Predictor`, the options a request may set, and what
GET /v1/model says about the model.

Requests carry `Options` (the `kplab predict` flags tta, min_score, min_quality, detect, starts and passes;
starts/passes left unset take the server's defaults, `kplab serve --starts/--passes`). A batch holds jobs with
equal options only (they are the batcher's key) and runs on a shallow copy of the one predictor with
those options set: the copy shares the loaded model, the face detector and the framing, so options
cost nothing to switch and nothing is loaded twice.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kplab.faces.training.layout import IMAGE_SIZE, PIXEL_CENTRE
from kplab.faces.inference.predict import STARTS, Face, Predictor, resolve_model


@dataclass(frozen=True)
class Options:
    """Per-request options, named and meaning exactly as `kplab predict`'s flags."""

    tta: bool | None = None  # None: as the model records (see Predictor)
    detect: bool = True
    min_score: float = 0.0
    min_quality: float = 0.0
    starts: int | None = None  # first-pass framings per face (1..len(STARTS)); None: the server's default
    passes: int | None = None  # framing passes (1..MAX_PASSES); None: the server's default

    def __post_init__(self):
        if not (math.isfinite(self.min_score) and math.isfinite(self.min_quality)):
            raise ValueError("min_score and min_quality must be finite numbers")
        if self.starts is not None and not 1 <= self.starts <= len(STARTS):
            raise ValueError(f"starts must be from 1 to {len(STARTS)}")
        if self.passes is not None and not 1 <= self.passes <= MAX_PASSES:
            raise ValueError(f"passes must be from 1 to {MAX_PASSES}")


MAX_PASSES = 5  # a request cannot ask for unbounded work


class KeypointService:
    """model: "default", a model directory or an exported .onnx file; backend "onnx" or "torch"."""

    def __init__(self, model: str | Path = "default", backend: str = "onnx", threads: int | None = None,
                 starts: int = len(STARTS), passes: int = 3, detect_step: float = 1.1):
        self.path = resolve_model(model)
        self.name = self.path.stem if self.path.is_file() else self.path.name  # "default" -> faces-default
        Options(starts=starts, passes=passes)  # the same bounds as a request's
        self.predictor = Predictor(self.path, backend=backend, detect=True, threads=threads, starts=starts,
                                   passes=passes, detect_step=detect_step)
        self.backend = backend
        # The points the answers name (a predictor may answer in a layout derived from its model's).
        self.layout = getattr(self.predictor, "output_layout", self.predictor.layout)

    def warm_up(self) -> None:
        """One detection and one model call on a blank picture, so the first request does not pay
        for ONNX Runtime's and OpenCV's lazy set-up (hundreds of ms here)."""
        blank = np.full((self.predictor.min_side * 2, self.predictor.min_side * 2, 3), 128, np.uint8)
        self.predictor.predict_images([blank])
        self.predictor.predict_crops(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), np.uint8))
        self.predictor.forward_calls = 0

    def for_options(self, options: Options) -> Predictor:
        """The predictor with these options; shares the model, detector and framing."""
        variant = copy.copy(self.predictor)
        variant.tta = self.predictor.tta if options.tta is None else options.tta
        variant.detect = options.detect
        variant.min_score, variant.min_quality = options.min_score, options.min_quality
        variant.starts = self.predictor.starts if options.starts is None else options.starts
        variant.passes = self.predictor.passes if options.passes is None else options.passes
        # Predictor's own rule: the detector's minimum with detection, a quarter crop without.
        variant.min_side = self.predictor.min_side if options.detect else IMAGE_SIZE // 4
        return variant

    def check_size(self, image: np.ndarray, options: Options) -> None:
        """DataError if the picture is too small for a face (as `kplab predict` skips it)."""
        self.for_options(options).check_size(image, "upload")

    def predict_batch(self, items: Sequence[tuple[np.ndarray, Options]]) -> list[list[Face]]:
        """Faces for several BGR images that share one Options; all crops go through shared model calls."""
        options = items[0][1]
        if any(o != options for _, o in items):
            raise ValueError("one batch must share its options")
        return self.for_options(options).predict_images([image for image, _ in items])

    def describe(self) -> dict:
        """What GET /v1/model answers: layout, point names, contour lines, parameters, recorded val
        metrics and the weights' hash."""
        meta = self._meta()
        return {
            "model": self.name,
            "backend": self.backend,
            "layout": self.layout.name,
            "names": list(self.layout.names),
            "n_points": self.layout.n_points,
            "contours": contour_chains(self.layout),
            "flip_pairs": [list(p) for p in self.layout.flip_pairs],
            "pixel_centre": PIXEL_CENTRE,
            "flip_tta": self.predictor.tta,  # what a request without `tta` gets
            "n_params": meta.get("n_params"),
            "architecture": meta.get("model"),
            "metrics": meta.get("metrics"),
            "weights_sha256": meta.get("weights_sha256"),
            "kplab_version": meta.get("kplab_version"),
        }

    def _meta(self) -> dict:
        """model.json for a model directory; the metadata_props (and a parameter count) of an .onnx file."""
        from kplab.checkpoint import read_meta

        if self.path.is_dir():
            return read_meta(self.path)
        import onnx

        proto = onnx.load(str(self.path))
        props = {p.key: p.value for p in proto.metadata_props}
        return {"n_params": int(sum(np.prod(t.dims, dtype=np.int64) for t in proto.graph.initializer)),
                "model": None, "metrics": None, "weights_sha256": props.get("weights_sha256") or None,
                "kplab_version": props.get("kplab_version") or None}


def contour_chains(layout) -> list[list[int]]:
    """The layout's contour lines (eyes, brows, nose, lips, jaw) as index chains to draw through in
    order; a closed contour repeats its first index at the end. Layouts list them as `Contour(points,
    closed)` objects (or plain index tuples); a layout without contours gives []."""
    chains = []
    for contour in getattr(layout, "contours", ()):
        points = [int(i) for i in getattr(contour, "points", contour)]
        if getattr(contour, "closed", False) and len(points) > 2:
            points.append(points[0])
        chains.append(points)
    return chains
