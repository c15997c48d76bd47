"""Video in and out with OpenCV, frame-by-frame prediction, and per-face smoothing across frames."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from kplab.errors import DataError, KplabError
from kplab.faces.inference.predict import MAX_CHUNK_PIXELS, Face, Predictor, Result
from kplab.faces.inference.smoothing import OneEuroFilter

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
FALLBACK_FPS = 30.0  # for files whose header gives no frame rate
# Codecs OpenCV's bundled FFmpeg writes without extra libraries, by output extension.
WRITE_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int  # as the header says (may be approximate for some containers)
    width: int
    height: int


def _open(path: str | Path):
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a video")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: not a video OpenCV can open")
    return capture


def video_info(path: str | Path) -> VideoInfo:
    import cv2

    capture = _open(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        return VideoInfo(fps if fps and np.isfinite(fps) and fps > 0 else FALLBACK_FPS,
                         int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
                         int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded frames, uint8 BGR (H, W, 3), in order. A file with no decodable frame raises DataError."""
    capture = _open(path)
    try:
        n = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            n += 1
            yield frame
        if n == 0:
            raise DataError(f"{path}: no frame could be decoded")
    finally:
        capture.release()


class VideoWriter:
    """Writes uint8 BGR frames of one size to a video file (codec chosen by extension)."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int):
        import cv2

        self.path = Path(path)
        codec = WRITE_CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise KplabError(f"{self.path}: cannot write this video type; use one of {sorted(WRITE_CODECS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (width, height)
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), fps, self.size)
        if not self.writer.isOpened():
            raise KplabError(f"{self.path}: OpenCV could not open a {codec} video writer")

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the video's "
                             f"{self.size[0]}x{self.size[1]}")
        self.writer.write(np.ascontiguousarray(frame))

    def close(self) -> None:
        self.writer.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (A, 4) and b (B, 4), [x0, y0, x1, y1] -> (A, B)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)  # (A, B)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


class FaceTracks:
    """Links each frame's faces to the previous frame's (greedy, by box overlap) and smooths every
    linked face's keypoints with its own One-Euro filter. A face with no partner starts a new track."""

    def __init__(self, make_filter: Callable[[], OneEuroFilter], min_iou: float = 0.3):
        self.make_filter, self.min_iou = make_filter, min_iou
        self.boxes = np.zeros((0, 4))
        self.filters: list[OneEuroFilter] = []

    def update(self, faces: list[Face], t: float) -> list[Face]:
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        partner = [-1] * len(faces)
        if len(faces) and len(self.filters):
            iou = _iou(boxes, self.boxes)  # (faces, tracks)
            for flat in np.argsort(-iou, axis=None):
                i, j = np.unravel_index(flat, iou.shape)
                if iou[i, j] < self.min_iou:
                    break
                if partner[i] < 0 and j not in partner:
                    partner[i] = int(j)
        filters = [self.filters[j] if j >= 0 else self.make_filter() for j in partner]
        self.boxes, self.filters = boxes, filters
        return [replace(f, keypoints=filt(f.keypoints, t)) for f, filt in zip(faces, filters)]


def predict_video(predictor: Predictor, path: str | Path,
                  make_filter: Callable[[], OneEuroFilter] | None = None) -> Iterator[Result]:
    """One Result per frame (frame index set, image = the frame), frames batched through the model.

    make_filter: when given, each tracked face's keypoints are smoothed over time (t = index / fps).
    """
    fps = video_info(path).fps
    tracks = FaceTracks(make_filter) if make_filter else None
    chunk: list[Result] = []

    def finish():
        for result, faces in zip(chunk, predictor.predict_images([r.image for r in chunk])):
            result.faces = tracks.update(faces, result.frame / fps) if tracks else faces
        return chunk

    for index, frame in enumerate(read_frames(path)):
        if index == 0:
            predictor.check_size(frame, str(path))
        chunk.append(Result(str(path), frame=index, image=frame))
        if len(chunk) >= predictor.batch_size or len(chunk) * frame.shape[0] * frame.shape[1] >= MAX_CHUNK_PIXELS:
            yield from finish()
            chunk = []
    if chunk:
        yield from finish()
