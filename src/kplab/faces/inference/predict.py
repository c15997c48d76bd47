"""Keypoints for the pictures people have: `Predictor` takes photos (paths or arrays), finds and frames
each face (detect.py), runs the model in batches on torch or ONNX Runtime, and returns every face's
box and named keypoints in the original image's pixels.

    >>> p = Predictor("default")                # or a model directory, or an exported .onnx file
    >>> faces = p.predict("photo.jpg")          # or an (H, W[, C]) array, RGB by default
    >>> faces[0]["left_eye_center"]             # (x, y) in photo pixels
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from kplab.errors import CheckpointError, DataError, KplabError
from kplab.faces.inference.detect import HAAR_BOX_POINTS, HaarFaceDetector
from kplab.faces.training.framing import Framing, crop_faces, uncrop_points, whole_image_affine
from kplab.faces.inference.export import OnnxModule
from kplab.faces.training.images import read_image, to_bgr8, to_grey
from kplab.faces.training.layout import IMAGE_SIZE, PIXEL_CENTRE, Layout, get_layout, to_pixels
from kplab.faces.training.model import recorded_tta

# Models shipped inside the package (kplab/models/...), by the names commands accept: model directories,
# and the 68-point model's int8 ONNX file (same accuracy, about 3x faster on one CPU thread).
SHIPPED_MODELS = {"default": "faces-default", "faces-default": "faces-default", "faces68": "faces68",
                  "faces68-int8": "faces68/model-int8.onnx"}
BACKENDS = ("torch", "onnx")
# Photos are read and detected in chunks of at most this many pixels (about 100 MB as BGR), so a
# folder of large photos never sits in memory at once; small crops still fill whole model batches.
MAX_CHUNK_PIXELS = 2 ** 25
# First-pass framings tried per detected face, as (dx, dy, scale) of the box: a 3 x 3 grid of shifts by
# 20 % of the box's width and height. A box that cuts off part of the face leaves some of them well
# placed; their refined fits agree where the others wander (bench/faces_photos.py: on boxes shifted
# by up to 25 % and scaled by +-20 %, the default model's NME_io fell from 16.7 % with one framing
# to 5.7 % with these nine and 3 passes, and on the detector's own boxes from 3.62 % to 3.45 %).
STARTS = tuple((dx, dy, 1.0) for dx in (0.0, -0.2, 0.2) for dy in (0.0, -0.2, 0.2))
# Two refined fits agree when their eyes and mouth lie within this share of the eye distance of each
# other (mean over the points). Quality falls from 1 (all fits agree exactly) to 0 when the median fit
# lies QUALITY_SCALE eye distances from the consensus: on the 40 photos, fits within 7 % NME_io of the
# truth stayed under 0.45 (default) and 0.1 (faces68), fits off by over 10 % nearly all above 0.4 and 0.12.
AGREEMENT = 0.10
QUALITY_SCALE = 0.5
# When few framings of a face agree, each fit is re-framed moved by this share of the crop (four ways)
# and refined RESEED_PASSES times: the fit on the face draws them back (_settled_fits).
RESEED_SHIFT = 0.12
RESEED_PASSES = 2


def shipped_model(model: str | Path) -> str | None:
    """The shipped model's folder name if `model` names one ("default", "faces-default", "faces68")."""
    return SHIPPED_MODELS.get(str(model))


def resolve_model(model: str | Path) -> Path:
    """A model argument -> a path: a shipped model's name, a model directory or an exported .onnx file."""
    name = shipped_model(model)
    if name is not None:
        path = Path(str(resources.files("kplab") / "models" / name))
        if not (path.is_file() or (path / "model.json").is_file()):
            raise CheckpointError(f"the shipped model {model!r} is not installed ({path} is missing); "
                                  "pass a model directory from `kplab train`")
        return path
    path = Path(model)
    if not path.exists():
        shipped = ", ".join(sorted(SHIPPED_MODELS))
        raise CheckpointError(f"{path}: no such model directory or .onnx file (shipped models: {shipped})")
    return path


def report_dir(model: str | Path) -> Path:
    """Where `evaluate` writes without --out: beside a trained model's weights, but for a shipped model
    (inside the installed package) or an .onnx file, a folder `eval-NAME` in the current folder."""
    name = shipped_model(model)
    if name is not None:
        return Path(f"eval-{model}" if name.endswith(".onnx") else f"eval-{name}")  # faces68-int8: its own
    path = Path(model)
    return Path(f"eval-{path.stem}") if path.suffix == ".onnx" else path / "eval"


def load_any_model(model: str | Path, backend: str | None = None, threads: int | None = None
                   ) -> tuple[torch.nn.Module, Layout, dict]:
    """(module (N, 1, 96, 96) -> (N, 2K), layout, metadata as model.json holds it) for a shipped name, a
    model directory or a .onnx file; backend None picks onnx for a .onnx file, torch otherwise."""
    path = resolve_model(model)
    if backend is None:
        backend = "onnx" if path.suffix == ".onnx" and path.is_file() else "torch"
    if backend not in BACKENDS:
        raise KplabError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return _load_backend(path, backend, threads)


@dataclass
class Face:
    """One face: detector box [x0, y0, x1, y1] and keypoints (K, 2), both in the photo's pixels (the
    centre of pixel column j is x = j + PIXEL_CENTRE), the photo -> crop affine that framed it, and
    the detector's score (None for ready crops, which skip detection)."""

    box: np.ndarray        # (4,)
    keypoints: np.ndarray  # (K, 2)
    names: tuple[str, ...]
    affine: np.ndarray = field(repr=False)  # (2, 3)
    score: float | None = None
    quality: float | None = None  # 1: every framing of the face agreed; 0: the median one lies half an eye distance off

    def __getitem__(self, name: str) -> tuple[float, float]:
        x, y = self.keypoints[self.names.index(name)]
        return float(x), float(y)

    def to_dict(self, decimals: int = 2) -> dict:
        return {"box": [round(float(v), decimals) for v in self.box],
                "score": None if self.score is None else round(float(self.score), decimals),
                "quality": None if self.quality is None else round(float(self.quality), decimals),
                "keypoints": {n: [round(float(x), decimals), round(float(y), decimals)]
                              for n, (x, y) in zip(self.names, self.keypoints)}}


@dataclass
class Result:
    """What one picture (a file, or a video frame) gave: its faces, or the reason it gave none."""

    source: str
    frame: int | None = None
    faces: list[Face] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)  # uint8 BGR, kept for annotation
    error: str | None = None


class Predictor:
    """Photos in, faces with named keypoints out; batched, on torch or ONNX Runtime.

    model: a shipped model ("default", "faces68"), a model directory, or an exported .onnx file.
    backend: "torch" or "onnx" (ONNX Runtime); None picks onnx for a .onnx file, torch otherwise.
    tta: average each prediction with the mirrored crop's (two forwards per batch); None: as the model
      records (models trained with `val_tta`, as the `best` preset's are, were validated that way).
    detect: find faces with the Haar detector and frame them; False treats each image as a ready crop.
    passes: framing passes per face; pass 2 and later re-frame on the previous pass's eyes and mouth.
    min_score: drop detections whose detector score is below this (0 keeps all; see
      HaarFaceDetector.detect_with_scores for what scores real faces get).
    starts: first-pass framings per detected face (STARTS); their refined fits that agree are averaged,
      and their disagreement gives each face a `quality` from 0 (a failed fit) to 1.
    min_quality: drop faces whose quality is below this (0 keeps all).
    detect_step: the detector's size step between searched face sizes (OpenCV's scaleFactor); 1.2
      halves detection time (on the 40 shared photos: 40/40 found, NME_io 3.63 % vs 3.62 %) and finds
      faces between the steps less surely.
    threads: ONNX Runtime intra-op threads (torch uses torch.set_num_threads, a process setting).
    layout: answer in this layout's points instead of the model's, where the model's layout derives
      it (a 68-point model answers in the 15 Kaggle points with layout="kaggle15").
    `forward_calls` counts the model's forward calls (batches), on either backend.
    """

    def __init__(self, model: str | Path = "default", backend: str | None = None, tta: bool | None = None,
                 detect: bool = True, passes: int = 3, batch_size: int = 256, threads: int | None = None,
                 min_score: float = 0.0, layout: str | Layout | None = None, starts: int = len(STARTS),
                 min_quality: float = 0.0, detect_step: float = 1.1):
        if passes < 1 or batch_size < 1 or not 1 <= starts <= len(STARTS):
            raise KplabError(f"passes and batch_size must be at least 1, starts from 1 to {len(STARTS)}")
        self.module, self.layout, self.metadata = load_any_model(model, backend, threads)
        self.backend = "onnx" if isinstance(self.module, OnnxModule) else "torch"
        self.output_layout = self.layout if layout is None else (
            layout if isinstance(layout, Layout) else get_layout(layout))
        self.to_output = self.layout.converter(self.output_layout)  # (K_out, K): raises if not derivable
        self.tta = recorded_tta(self.metadata) if tta is None else tta
        self.detect, self.passes, self.batch_size = detect, passes, batch_size
        self.min_score, self.starts, self.min_quality = min_score, starts, min_quality
        self.detector = HaarFaceDetector(scale_factor=detect_step) if detect else None
        self.framing = None
        if detect:
            shape = framing_shape(self.metadata)
            if shape is None:
                raise CheckpointError(f"{model}: the model records no mean_shape, which framing photos "
                                      "needs; retrain it, or use --no-detect with ready 96x96 crops")
            self.framing = Framing.for_layout(self.layout, shape, HAAR_BOX_POINTS)
        self.min_side = self.detector.min_side if detect else IMAGE_SIZE // 4
        self.forward_calls = 0
        self.module.register_forward_hook(self._count_forward)

    def _count_forward(self, module, inputs, output) -> None:
        self.forward_calls += 1

    # -- the model on crops -------------------------------------------------------------------
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Keypoints (N, K, 2) in crop pixels for grey crops (N, 96, 96) uint8, in batches."""
        from kplab.faces.training.evaluate import predict

        crops = np.asarray(crops)
        if crops.ndim != 3 or crops.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"crops must be (N, {IMAGE_SIZE}, {IMAGE_SIZE}), got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, self.layout.n_points, 2))
        # (N, 1, 96, 96) in [0, 1]; in NumPy: torch's ops on a few small crops cost ms in thread wake-ups
        images = torch.from_numpy(crops[:, None].astype(np.float32) / np.float32(255))
        norm = predict(self.module, images, self.layout, tta=self.tta, batch_size=self.batch_size)
        return to_pixels(norm.double().numpy())  # (N, K, 2)

    # -- photos -------------------------------------------------------------------------------
    def predict(self, image, order: str = "rgb") -> list[Face]:
        """Faces in one picture: a file path, or an array (H, W[, C]) (uint8, uint16 or float in
        [0, 1]; `order` "rgb" or "bgr" for colour arrays). Largest face first."""
        name = str(image) if isinstance(image, (str, Path)) else "image array"
        if isinstance(image, (str, Path)):
            bgr = read_image(image)
        else:
            try:
                bgr = to_bgr8(np.asarray(image), order=order)
            except ValueError as e:
                raise DataError(f"image array: {e}") from None
        self.check_size(bgr, name)
        return self.predict_images([bgr])[0]

    def check_size(self, bgr: np.ndarray, name: str) -> None:
        h, w = bgr.shape[:2]
        if min(h, w) < self.min_side:
            raise DataError(f"{name}: too small ({w}x{h} px); a face needs at least "
                            f"{self.min_side}x{self.min_side} px")

    def predict_images(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces for each of several uint8 BGR images, all crops of all images batched together."""
        greys = [to_grey(im) for im in images]
        if not self.detect:
            boxes = [np.array([[0, 0, g.shape[1], g.shape[0]]], np.float64) + (PIXEL_CENTRE - 0.5) for g in greys]
            affines = [whole_image_affine(*g.shape)[None] for g in greys]
            points = self._passes(greys, affines, passes=1)[0]
            return [[Face(b[0], self.to_output @ p[0], self.output_layout.names, a[0])]
                    for b, p, a in zip(boxes, points, affines)]
        found = [self.detector.detect_with_scores(g) for g in greys]
        boxes = [b[s >= self.min_score] for b, s in found]  # each (F_i, 4)
        scores = [s[s >= self.min_score] for _, s in found]
        return self._fit(greys, boxes, scores)

    def predict_boxes(self, image, boxes, order: str = "rgb") -> list[Face]:
        """Faces for face boxes (F, 4) [x0, y0, x1, y1] found by a detector of your own, in one picture (a
        path or an array, as `predict` takes); the boxes are framed like the Haar detector's."""
        bgr = read_image(image) if isinstance(image, (str, Path)) else to_bgr8(np.asarray(image), order=order)
        if self.framing is None:
            raise KplabError("predict_boxes needs a Predictor with detect=True (it frames faces from boxes)")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        return self._fit([to_grey(bgr)], [boxes], [np.full(len(boxes), np.nan)])[0]

    def _fit(self, greys: list[np.ndarray], boxes: list[np.ndarray], scores: list[np.ndarray]) -> list[list[Face]]:
        """Frame every box from several first-pass framings (STARTS), refine each by re-framing on its own
        predicted eyes and mouth, and keep the framings that agree: their mean is the face's keypoints,
        their disagreement its quality."""
        starts = np.asarray(STARTS[:self.starts])  # (S, 3)
        affines = [self.framing.from_boxes(_start_boxes(b, starts)) for b in boxes]  # each (F_i * S, 2, 3)
        points, affines, previous = self._passes(greys, affines, self.passes)
        w = self.framing.weights
        fits = [p.reshape(len(b), len(starts), *p.shape[1:]) for b, p in zip(boxes, points)]  # each (F, S, K, 2)
        agreed = [agreeing_fits(np.einsum("mk,fskc->fsmc", w, p), np.einsum("mk,fskc->fsmc", w, q.reshape(p.shape)))
                  for p, q in zip(fits, previous)]  # each (kept (F, S), disagreement (F,))
        # Faces whose largest group of agreeing framings is under a third of them (a lone fit, or two that
        # wandered off together): test which fit is a face.
        lone = [kept.sum(1) < max(2, len(starts) / 3) if len(starts) > 1 else np.zeros(len(kept), bool)
                for kept, _ in agreed]
        if any(l.any() for l in lone):
            # The quality stays the framings' disagreement: a face whose framings scattered is flagged
            # even when the settled fit is right (off the face, fits settle too, only less closely).
            settled = self._settled_fits(greys, [p[l] for p, l in zip(fits, lone)])
            for (kept, _), l, one in zip(agreed, lone, settled):
                kept[l] = one
        faces = []
        for b, sc, p, a, (kept, disagreement) in zip(boxes, scores, fits, affines, agreed):
            a = a.reshape(len(b), len(starts), 2, 3)
            mean = (p * kept[..., None, None]).sum(1) / kept.sum(1)[:, None, None]  # (F, K, 2)
            best = np.argmax(kept, axis=1)  # a kept framing, for the record
            quality = fit_quality(disagreement)  # (F,)
            faces.append([Face(box, self.to_output @ pts, self.output_layout.names, a[f, best[f]],
                               None if np.isnan(score) else float(score), float(q))
                          for f, (box, pts, score, q) in enumerate(zip(b, mean, sc, quality))
                          if q >= self.min_quality])
        return faces

    def _settled_fits(self, greys: list[np.ndarray], fits: list[np.ndarray]) -> list[np.ndarray]:
        """Per image, kept (L, S) bool (one fit per face) for its L faces whose S fits (L, S, K, 2) mostly disagree.

        A fit on a face is an attractor: framings moved off it by RESEED_SHIFT of the crop come back to it
        within a pass or two. A fit on hair, neck or background is not: the framings moved off it go
        elsewhere. Each fit gets the median distance its moved framings end from it (eye distances), and
        the fit they return to best is kept. One batch of model calls serves every image."""
        shift = RESEED_SHIFT * IMAGE_SIZE * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float64)  # (R, 2)
        moved = []
        for f in fits:
            framed = np.repeat(self.framing.from_points(f.reshape(-1, *f.shape[2:])), len(shift), axis=0)
            framed[:, :, 2] += np.tile(shift, (len(framed) // len(shift), 1))  # the face sits shifted in the crop
            moved.append(framed)  # (L*S*R, 2, 3)
        back = self._passes(greys, moved, RESEED_PASSES)[0]
        w, out = self.framing.weights, []
        for f, b in zip(fits, back):
            n_faces, n_fits = f.shape[:2]
            home = np.einsum("mk,fskc->fsmc", w, f)  # (L, S, M, 2)
            ends = np.einsum("mk,fkc->fmc", w, b).reshape(n_faces, n_fits, len(shift), *home.shape[2:])
            eyes = np.maximum(np.linalg.norm(home[..., 0, :] - home[..., 1, :], axis=-1), 1e-9)  # (L, S)
            distance = np.median(np.linalg.norm(ends - home[:, :, None], axis=-1).mean(-1), axis=2) / eyes
            best = distance.argmin(1) if n_faces else np.zeros(0, int)
            kept = np.zeros((n_faces, n_fits), bool)
            kept[np.arange(n_faces), best] = True
            out.append(kept)
        return out

    def _passes(self, greys, affines, passes: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Run `passes` framing passes; returns per image the photo points (F_i, K, 2) of the last pass,
        the affines that framed it, and the points of the pass before (the last's own with one pass).
        Pass 2 and later re-frame each face on its previous prediction."""
        counts = [len(a) for a in affines]
        if sum(counts) == 0:
            empty = [np.zeros((0, self.layout.n_points, 2)) for _ in greys]
            return empty, affines, empty
        per_image = None
        for i in range(passes):
            before = per_image
            crops = np.concatenate([crop_faces(g, a) for g, a in zip(greys, affines) if len(a)])
            points = uncrop_points(self.predict_crops(crops), np.concatenate(affines))  # (F, K, 2) photo px
            per_image = np.split(points, np.cumsum(counts)[:-1])
            if i < passes - 1:
                affines = [_reframe(self.framing, p, a) for p, a in zip(per_image, affines)]
        return per_image, affines, per_image if before is None else before

    def predict_files(self, paths: Iterable[str | Path]) -> Iterator[Result]:
        """One Result per file, in order; unreadable files give a Result with `error` set. Files are
        read in chunks (at most batch_size images or MAX_CHUNK_PIXELS pixels) whose faces share batches."""
        chunk: list[Result] = []
        pixels = 0
        for path in paths:
            result = Result(str(path))
            try:
                result.image = read_image(path)
                self.check_size(result.image, str(path))
            except DataError as e:
                result.image, result.error = None, str(e)
            chunk.append(result)
            if result.image is not None:
                pixels += result.image.shape[0] * result.image.shape[1]
            if sum(r.image is not None for r in chunk) >= self.batch_size or pixels >= MAX_CHUNK_PIXELS:
                yield from self._finish(chunk)
                chunk, pixels = [], 0
        yield from self._finish(chunk)

    def _finish(self, chunk: list[Result]) -> list[Result]:
        readable = [r for r in chunk if r.image is not None]
        for r, faces in zip(readable, self.predict_images([r.image for r in readable]) if readable else []):
            r.faces = faces
        return chunk


def _start_boxes(boxes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Boxes (F, 4) -> the start boxes (F * S, 4): each box moved and scaled about its centre per start."""
    size = boxes[:, 2:] - boxes[:, :2]  # (F, 2)
    centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2 + starts[None, :, :2] * size[:, None]  # (F, S, 2)
    half = size[:, None] * starts[None, :, 2:] / 2  # (F, S, 2)
    return np.concatenate([centre - half, centre + half], -1).reshape(-1, 4)


def agreeing_fits(framing_points: np.ndarray, previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept (F, S) bool, disagreement (F,)) for the refined eyes and mouth (F, S, M, 2) of S framings per face.

    Two fits agree when their points lie within AGREEMENT of each other, in units of the face's eye
    distance (median over fits; the first two framing points are the eye centres). The fit that the most
    others agree with (the first such) is the centre; the kept fits are those that agree with it, and
    the disagreement is the median distance of all fits from it: small when most framings found the
    same face, large when they scattered (a box off the face, or no face at all)."""
    median = np.median(framing_points, axis=1)  # (F, M, 2)
    eyes = np.maximum(np.linalg.norm(median[:, 0] - median[:, 1], axis=-1), 1e-9)  # (F,)
    apart = np.linalg.norm(framing_points[:, :, None] - framing_points[:, None], axis=-1).mean(-1)  # (F, S, S)
    apart /= eyes[:, None, None]
    close = apart <= AGREEMENT
    support = close.sum(-1).astype(np.float64)  # (F, S) how many fits each agrees with (itself included)
    if previous is not None:  # equal support: the fit that moved least in its last pass (it has settled)
        drift = np.linalg.norm(framing_points - previous, axis=-1).mean(-1) / eyes[:, None]  # (F, S)
        support += 1 / (1 + drift)
    centre = support.argmax(1)  # (F,)
    rows = np.arange(len(centre))
    return close[rows, centre], np.median(apart[rows, centre], axis=1)


def fit_quality(disagreement: np.ndarray) -> np.ndarray:
    """Quality from the fits' disagreement (in eye distances): 1 at 0, falling to 0 at QUALITY_SCALE."""
    return np.clip(1.0 - np.asarray(disagreement) / QUALITY_SCALE, 0.0, 1.0)


# A re-framing that changes a face's scale by more than this factor means the previous pass's
# prediction was not a face shape (e.g. a false detection); such a face keeps its framing.
MAX_REFRAME_SCALE_CHANGE = 2.0


def _reframe(framing: Framing, points: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """Next-pass affines (F, 2, 3) from predicted photo points (F, K, 2), keeping the old ones where
    the new framing's scale differs implausibly."""
    if len(points) == 0:
        return affines
    new = framing.from_points(points)
    ratio = np.sqrt(np.abs(np.linalg.det(new[:, :, :2]) / np.linalg.det(affines[:, :, :2])))  # (F,)
    ok = (ratio < MAX_REFRAME_SCALE_CHANGE) & (ratio > 1 / MAX_REFRAME_SCALE_CHANGE)
    return np.where(ok[:, None, None], new, affines)


def _load_backend(path: Path, backend: str, threads: int | None
                  ) -> tuple[torch.nn.Module, Layout, dict]:
    """(module, layout, metadata) for a resolved model path (see load_any_model)."""
    from kplab.checkpoint import read_meta
    from kplab.faces.inference.export import export_onnx, weights_sha256
    from kplab.faces.training.model import load_model

    if path.is_file():
        if backend != "onnx" or path.suffix != ".onnx":
            raise CheckpointError(f"{path}: a model file must be an exported .onnx used with backend='onnx'; "
                                  "otherwise pass a model directory")
        module = OnnxModule(path, threads)
        return module, module.layout, module.meta
    meta = read_meta(path)
    layout = Layout.from_dict(meta["layout"])
    if backend == "torch":
        return load_model(path), layout, meta
    # An up-to-date model.onnx beside the weights (from `kplab export`) saves the export time.
    beside = path / "model.onnx"
    if beside.is_file():
        module = OnnxModule(beside, threads)
        if module.metadata.get("weights_sha256") == weights_sha256(path):
            return module, layout, meta
    from kplab.progress import say

    say(f"exporting {path} to ONNX in memory (run `kplab export {path}` once to skip this)")
    return OnnxModule(export_onnx(load_model(path), meta), threads), layout, meta


def framing_shape(meta: dict) -> np.ndarray | None:
    """Where a model's training crops put the face (K, 2): `framing_target` for models trained on faces cut
    from photos, else the training crops' mean keypoints `mean_shape`; None for a model with neither."""
    shape = meta.get("framing_target", meta.get("mean_shape"))
    return None if shape is None else np.asarray(shape, np.float64)


def draw_faces(image_bgr: np.ndarray, faces: list[Face], layout: Layout | None = None) -> np.ndarray:
    """A copy of the picture with each face's box (green), the layout's contour lines (yellow: jaw, brows,
    nose, eyes, lips) and keypoints (red) drawn on it."""
    import cv2

    out = image_bgr.copy()
    sub = 16  # OpenCV draws at 1/16 px precision with shift=4
    for face in faces:
        x0, y0, x1, y1 = (np.asarray(face.box) - PIXEL_CENTRE)
        size = max(x1 - x0, y1 - y0)
        thick = max(1, int(round(size / 150)))
        cv2.rectangle(out, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), (0, 200, 0), thick)
        points = face.keypoints - PIXEL_CENTRE  # (K, 2) array-index frame
        fixed = np.round(np.nan_to_num(points) * sub).astype(np.int32)
        if layout is not None and layout.names == face.names:
            for contour in layout.contours:
                index = list(contour.points)
                if np.isfinite(points[index]).all():
                    cv2.polylines(out, [fixed[index]], contour.closed, (0, 220, 255), thick, cv2.LINE_AA, shift=4)
        radius = max(1.0, size / (80 if len(face.names) <= 20 else 120))
        for (x, y), (fx, fy) in zip(points, fixed):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (int(fx), int(fy)), int(round(radius * sub)), (0, 0, 255), -1, cv2.LINE_AA, shift=4)
    return out
