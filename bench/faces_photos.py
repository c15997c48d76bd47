"""Accuracy on the 40 real photos (../shared/data/faces/photos): faces found and NME_io, per framing.

Runs the real pipeline (Haar detection, framing, crop, model, back to photo pixels) with 1 and 2
framing passes, with and without flip TTA, and prints one row per setting plus the worst photos.
Usage: python bench/faces_photos.py [MODEL] [--photos DIR]   (MODEL: a model directory, `default` or
`faces68`; the truth is photos/keypoints.csv for a 15-point model, keypoints68.csv for a 68-point one)
"""

import argparse
import time
from pathlib import Path

import numpy as np

from kplab.faces.annotations import read_photo_csv
from kplab.faces.layout import Layout
from kplab.faces.metrics import per_image_nme
from kplab.faces.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
TRUTH_FILES = {"kaggle15": "keypoints.csv", "ibug68": "keypoints68.csv"}  # the photos' annotations per layout


def truth_table(folder: Path, layout: Layout) -> dict[str, np.ndarray]:
    """{photo file name: true points (K, 2)} in `layout`, from the folder's annotation CSV."""
    annotations, _ = read_photo_csv(folder / TRUTH_FILES[layout.name], layout)
    return {a.photo.name: a.points for a in annotations}


def matched_points(faces, truth: np.ndarray):
    """Keypoints of the face whose box holds the centre of the true points (largest if several)."""
    centre = np.nanmean(truth, 0)
    inside = [f for f in faces if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]
    best = max(inside, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), default=None)
    return None if best is None else best.keypoints


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "faces" / "photos"))
    args = ap.parse_args()
    folder = Path(args.photos)
    layout = Predictor(args.model, detect=False).layout
    truth = truth_table(folder, layout)
    print(f"{'passes':>6} {'tta':>5} {'found':>7} {'NME_io %':>9} {'median %':>9} {'max %':>7} {'s':>6}")
    worst = None
    for passes, tta in ((1, False), (2, False), (2, True), (3, False)):
        predictor = Predictor(args.model, passes=passes, tta=tta)
        start = time.perf_counter()
        results = {Path(r.source).name: r for r in predictor.predict_files([folder / n for n in truth])}
        seconds = time.perf_counter() - start
        names, pred, target = [], [], []
        for name, points in truth.items():
            found = matched_points(results[name].faces, points)
            if found is not None:
                names.append(name), pred.append(found), target.append(points)
        nme = 100 * per_image_nme(np.array(pred), np.array(target), layout, "io")
        print(f"{passes:>6} {str(tta):>5} {len(pred):>4}/{len(truth):<2} {nme.mean():>9.2f} {np.median(nme):>9.2f} "
              f"{nme.max():>7.2f} {seconds:>6.2f}")
        if passes == 2 and not tta:
            worst = sorted(zip(nme, names), reverse=True)[:5]
            bias = (np.array(pred) - np.array(target)).reshape(-1, 2).mean(0)
    print("worst photos (2 passes): " + ", ".join(f"{n} {v:.1f}%" for v, n in worst))
    print(f"mean signed error (x, y) over all points, 2 passes: ({bias[0]:+.2f}, {bias[1]:+.2f}) px")


if __name__ == "__main__":
    main()
