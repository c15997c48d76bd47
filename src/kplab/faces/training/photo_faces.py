"""Annotated photos -> training crops, framed by the same rule that `predict` re-frames detected faces with.

Each face is cut from its photo with the 2x3 affine `Framing.from_points(true points)` onto the
layout's template (detect.py), so a model trained on these crops sees faces placed exactly as
`predict` will place them once it knows where the eyes and mouth are. The crops carry
`framing_target` (the template), which training records in model.json for `predict` to frame with.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from kplab.errors import DataError, KplabError
from kplab.faces.training.annotations import Annotation, read_annotations
from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.framing import Framing, apply_affine, crop_faces
from kplab.faces.training.images import read_image, to_grey
from kplab.faces.training.layout import Layout
from kplab.progress import bar

# A point more than this share of the photo's longer side outside the photo is a typing error, not a
# face cut off by the frame (jaw points of a face at the border do fall a little outside).
MAX_OUTSIDE = 0.5


def read_photo_faces(path: str | Path, layout: Layout | None = None) -> FaceSet:
    """Training crops (96 x 96 grey) and their keypoints from a folder of photos with .pts files, an imglab
    .xml or a photo .csv. Faces of one photo share its name in `photo`, so hold-outs keep them together.
    `layout`: read the files in it, or derive it from the files' own (15 Kaggle points from 68)."""
    try:
        annotations, own = read_annotations(path, layout)
    except DataError:
        if layout is None:
            raise
        annotations, own = read_annotations(path)  # the file's own layout, derived into `layout` below
    return crop_annotations(annotations, own, source=str(path)).as_layout(layout)


def crop_annotations(annotations: list[Annotation], layout: Layout, source: str = "photos") -> FaceSet:
    if layout.template is None:
        raise KplabError(f"layout {layout.name} has no template (typical crop positions), which cutting "
                         "faces from photos needs")
    framing = Framing.for_layout(layout, layout.template)
    by_photo: dict[Path, list[Annotation]] = defaultdict(list)
    for a in annotations:
        by_photo[a.photo].append(a)
    images, keypoints, names, photos = [], [], [], []
    for photo, faces in bar(by_photo.items(), desc="cropping photos", total=len(by_photo)):
        if not photo.is_file():
            raise DataError(f"{faces[0].where}: its image {photo} does not exist")
        grey = to_grey(read_image(photo))
        points = np.stack([_checked_points(a, framing, grey.shape) for a in faces])  # (F, K, 2)
        affines = framing.from_points(points)  # (F, 2, 3)
        images.append(crop_faces(grey, affines))
        keypoints.append(apply_affine(points, affines))
        names += [f"{photo.name}#{i + 1}" if len(faces) > 1 else photo.name for i in range(len(faces))]
        photos += [str(photo)] * len(faces)
    return FaceSet(np.concatenate(images), np.concatenate(keypoints).astype(np.float32), layout,
                   names=np.array(names), photo=np.array(photos), source=source,
                   framing_target=np.asarray(layout.template, np.float32))


def _checked_points(a: Annotation, framing: Framing, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    margin = MAX_OUTSIDE * max(h, w)
    outside = ~np.isnan(a.points).any(-1) & (
        (a.points[:, 0] < -margin) | (a.points[:, 0] > w + margin) |
        (a.points[:, 1] < -margin) | (a.points[:, 1] > h + margin))
    if outside.any():
        k = int(np.argmax(outside))
        x, y = a.points[k]
        raise DataError(f"{a.point_where[k]}: point {k + 1} ({x:g}, {y:g}) lies far outside its {w}x{h} "
                        f"photo {a.photo.name}")
    needed = (framing.weights > 0).any(0)  # (K,) points the framing is made from
    if np.isnan(a.points[needed]).any():
        raise DataError(f"{a.where}: the eye and mouth points that frame a face must all be present")
    return a.points
