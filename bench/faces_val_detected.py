"""The val faces through the photo path, framed without their labels: how a model does when nothing but
the detector and its own predictions place the face.

faces15.npz's crops are framed on their own labels (eye midpoint at y = 37.5, eye-mouth distance about
40 px), so the val score also rewards knowing that rule. Here the same 752 val frames come from
faces68.npz, cropped to the whole face: each is padded by PAD px (edge pixels repeated) and upscaled UP
times, then the real pipeline runs (Haar detection, the first-pass framings, refinement passes, fit test;
the face nearest the picture's centre is scored). The truth is the frame's 68 annotated points, mapped to
the model's layout (the rule faces15's 15 points were made with) and into the picture.
Prints, per model: faces found, NME_io mean / median / max and FR@10 (%), and the seconds it took.
Usage: python bench/faces_val_detected.py MODEL [MODEL ...] [--data PATH] [--threads N]  (MODEL: a run directory,
`default` or `faces68`)
"""

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from kplab.faces.inference.predict import Predictor
from kplab.faces.training.layout import PIXEL_CENTRE, get_layout
from kplab.faces.training.metrics import per_image_nme

REPO = Path(__file__).resolve().parents[1]
PAD, UP = 32, 2  # room around the whole-face crop for the detector, and the upscaling it needs
CHUNK = 64  # pictures per pipeline call


def val_pictures(data: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The val frames as padded, upscaled BGR pictures, and their 68 annotated points in those pictures."""
    d = np.load(data)
    val = d["split"] == "val"
    pictures = [cv2.cvtColor(cv2.resize(cv2.copyMakeBorder(im, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE), None,
                                         fx=UP, fy=UP, interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
                for im in d["images"][val]]
    # Pixel centres: crop x = j + PIXEL_CENTRE; padding adds PAD to j, resizing maps j to UP (j + 1/2) - 1/2.
    points = UP * (d["keypoints"][val].astype(np.float64) - PIXEL_CENTRE + PAD + 0.5) - 0.5 + PIXEL_CENTRE
    return pictures, points


def central_face(faces, size: tuple[int, int]):
    """The found face whose box centre lies nearest the picture's centre, or None."""
    centre = np.array(size[::-1], np.float64) / 2
    return min(faces, key=lambda f: np.abs((f.box[:2] + f.box[2:]) / 2 - centre).sum(), default=None)


def score_model(model: str, pictures: list[np.ndarray], truth68: np.ndarray, threads: int | None) -> dict:
    predictor = Predictor(model, threads=threads)
    layout = predictor.output_layout
    truth = np.einsum("jk,nkc->njc", get_layout("ibug68").converter(layout), truth68)  # (N, K, 2)
    start = time.perf_counter()
    found, predicted = [], []
    for s in range(0, len(pictures), CHUNK):
        for i, faces in enumerate(predictor.predict_images(pictures[s:s + CHUNK])):
            face = central_face(faces, pictures[s + i].shape[:2])
            if face is not None:
                found.append(s + i)
                predicted.append(face.keypoints)
    nme = 100 * per_image_nme(np.array(predicted), truth[found], layout)
    return {"model": model, "found": len(found), "n": len(pictures), "mean": float(nme.mean()),
            "median": float(np.median(nme)), "max": float(nme.max()), "fr10": float((nme > 10).mean() * 100),
            "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "faces" / "faces68.npz"))
    ap.add_argument("--threads", type=int, default=None, help="torch / ONNX Runtime threads (default: all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # the torch backend's threads are a process setting
    pictures, truth = val_pictures(Path(args.data))
    print("| model | found | NME_io mean % | median % | max % | FR@10 % | seconds |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        r = score_model(model, pictures, truth, args.threads)
        print(f"| {r['model']} | {r['found']}/{r['n']} | {r['mean']:.2f} | {r['median']:.2f} | {r['max']:.1f} | "
              f"{r['fr10']:.1f} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
