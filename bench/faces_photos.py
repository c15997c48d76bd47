"""Accuracy on the 40 real photos (../shared/data/faces/photos): faces found and NME_io, per setting,
for the detector's boxes as they come and for boxes moved and scaled the way detectors err.

Runs the real pipeline (Haar detection, framing, crop, model, back to photo pixels). Settings: framing
passes, flip TTA, and how many first-pass framings (`starts`) each face gets. Perturbed rows take each
photo's matched detector box and draw `--draws` boxes from it (fixed seed): shifted by up to 25 % of the
box width in x and y, and scaled by 0.8-1.2 about its centre; every drawn box is framed and scored.
Each row prints found faces, NME_io mean / median / max, FR@10 % and the mean quality of the faces.
Usage: python bench/faces_photos.py [MODEL] [--photos DIR] [--draws N]   (MODEL: a model directory,
`default` or `faces68`; the truth is photos/keypoints.csv for a 15-point model, keypoints68.csv for a
68-point one)
"""

import argparse
import time
from pathlib import Path

import numpy as np

from kplab.faces.training.annotations import read_photo_csv
from kplab.faces.training.images import read_image
from kplab.faces.training.layout import Layout
from kplab.faces.training.metrics import per_image_nme
from kplab.faces.inference.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
TRUTH_FILES = {"kaggle15": "keypoints.csv", "ibug68": "keypoints68.csv"}  # the photos' annotations per layout
MAX_SHIFT, MAX_SCALE = 0.25, 0.20  # perturbation ranges, in box widths and relative size


def truth_table(folder: Path, layout: Layout) -> dict[str, np.ndarray]:
    """{photo file name: true points (K, 2)} in `layout`, from the folder's annotation CSV."""
    annotations, _ = read_photo_csv(folder / TRUTH_FILES[layout.name], layout)
    return {a.photo.name: a.points for a in annotations}


def matched_index(boxes, truth: np.ndarray) -> int | None:
    """Index of the box [x0, y0, x1, y1] that holds the centre of the true points (largest if several)."""
    centre = np.nanmean(truth, 0)
    inside = [i for i, b in enumerate(boxes) if b[0] <= centre[0] <= b[2] and b[1] <= centre[1] <= b[3]]
    return max(inside, key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]), default=None)


def matched(faces, truth: np.ndarray):
    """The face whose box holds the centre of the true points (largest if several), or None."""
    i = matched_index([f.box for f in faces], truth)
    return None if i is None else faces[i]


def perturbed_boxes(box: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, 4) boxes: `box` shifted by up to MAX_SHIFT of its width per axis and scaled by 1 +- MAX_SCALE."""
    size = box[2:] - box[:2]
    centre = (box[:2] + box[2:]) / 2 + rng.uniform(-MAX_SHIFT, MAX_SHIFT, (draws, 2)) * size[0]
    half = size / 2 * rng.uniform(1 - MAX_SCALE, 1 + MAX_SCALE, (draws, 1))
    return np.concatenate([centre - half, centre + half], 1)


def drawn_boxes(detected: dict, draws: int) -> dict[str, np.ndarray]:
    """`draws` perturbed boxes around each found face's detector box, from one generator seeded 0,
    photo by photo in order (the same boxes for every framing and every caller)."""
    rng = np.random.default_rng(0)
    return {name: perturbed_boxes(face.box, draws, rng) for name, face in detected.items() if face is not None}


def predict_drawn(predictor: Predictor, photos: dict, boxes: dict, truth: dict) -> tuple[list, list]:
    """The predictor's face for every drawn box, beside the photo's true points."""
    faces, truths = [], []
    for name, drawn in boxes.items():
        faces += predictor.predict_boxes(photos[name], drawn, order="bgr")
        truths += [truth[name]] * len(drawn)
    return faces, truths


def row(label: str, faces: list, truths: list, layout: Layout, seconds: float, total: int) -> dict:
    found = [(f, t) for f, t in zip(faces, truths) if f is not None]
    nme = 100 * per_image_nme(np.array([f.keypoints for f, _ in found]), np.array([t for _, t in found]),
                              layout, "io")
    quality = [f.quality for f, _ in found if f.quality is not None]
    print(f"{label:<44} {len(found):>4}/{total:<4} {nme.mean():>6.2f} {np.median(nme):>6.2f} {nme.max():>6.2f} "
          f"{100 * np.mean(nme > 10):>6.1f} {np.mean(quality) if quality else float('nan'):>7.3f} {seconds:>6.1f}")
    return {"nme": nme, "faces": found}


def photo_scores(model: str, folder: Path, draws: int = 10, threads: int | None = None) -> dict:
    """NME_io (%) with the default framing on the detector's boxes (mean) and on `draws` perturbed boxes
    per photo (mean, max, FR@10), as the tables of `main` print them; for bench/faces_ablation.py."""
    predictor = Predictor(model, threads=threads)
    layout = predictor.layout
    truth = truth_table(folder, layout)
    photos = {name: read_image(folder / name) for name in truth}
    faces = {n: matched(r, truth[n]) for n, r in zip(photos, predictor.predict_images(list(photos.values())))}
    found = [(f, truth[n]) for n, f in faces.items() if f is not None]
    detected = 100 * per_image_nme(np.array([f.keypoints for f, _ in found]), np.array([t for _, t in found]),
                                   layout, "io")
    moved, truths = predict_drawn(predictor, photos, drawn_boxes(faces, draws), truth)
    errors = 100 * per_image_nme(np.array([f.keypoints for f in moved]), np.array(truths), layout, "io")
    return {"found": len(found), "photos": len(truth), "nme_io": float(detected.mean()),
            "perturbed_mean": float(errors.mean()), "perturbed_max": float(errors.max()),
            "perturbed_fr10": float(100 * np.mean(errors > 10))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "faces" / "photos"))
    ap.add_argument("--draws", type=int, default=10, help="perturbed boxes per photo")
    args = ap.parse_args()
    folder = Path(args.photos)
    layout = Predictor(args.model, detect=False).layout
    truth = truth_table(folder, layout)
    photos = {name: read_image(folder / name) for name in truth}
    print(f"{'setting':<44} {'found':>9} {'mean':>6} {'median':>6} {'max':>6} {'FR10 %':>6} {'quality':>7} "
          f"{'s':>6}   (NME_io %)")
    detected = {}
    for passes, tta, starts in ((1, False, 1), (2, False, 1), (3, False, 1), (3, False, 9), (3, True, 9)):
        predictor = Predictor(args.model, passes=passes, tta=tta, starts=starts)
        start = time.perf_counter()
        results = predictor.predict_images(list(photos.values()))
        faces = [matched(r, truth[n]) for n, r in zip(photos, results)]
        out = row(f"detector boxes, {passes} passes, {starts} starts{', flip TTA' if tta else ''}", faces,
                  list(truth.values()), layout, time.perf_counter() - start, len(truth))
        if (passes, tta, starts) == (3, False, 9):  # the default
            detected = dict(zip(photos, faces))
            bias = np.mean([f.keypoints - t for f, t in out["faces"]], axis=(0, 1))
            worst = sorted(zip(out["nme"], [n for n, f in detected.items() if f is not None]), reverse=True)[:5]
    print("worst photos (3 passes, 9 starts): " + ", ".join(f"{n} {v:.1f}%" for v, n in worst))
    print(f"mean signed error (x, y) over all points: ({bias[0]:+.2f}, {bias[1]:+.2f}) px\n")

    boxes = drawn_boxes(detected, args.draws)
    for passes, starts in ((2, 1), (3, 1), (3, 9)):
        predictor = Predictor(args.model, passes=passes, starts=starts)
        start = time.perf_counter()
        faces, truths = predict_drawn(predictor, photos, boxes, truth)
        label = f"perturbed boxes, {passes} passes, {starts} starts{', flip TTA' if predictor.tta else ''}"
        row(label, faces, truths, layout, time.perf_counter() - start, len(truths))


if __name__ == "__main__":
    main()
