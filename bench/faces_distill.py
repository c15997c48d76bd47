"""Distillation from a seed ensemble: train the default network on an ensemble's predictions instead of the labels.

Usage: python bench/faces_distill.py TEACHER_RUN [TEACHER_RUN ...] [--mix 1.0] [--seed 0] [--threads 0]
       [--data ../shared/data/faces/faces15.npz] [--out runs/distill]

1. Each teacher (a `kplab train` output folder, e.g. the default preset's seeds 0-2) predicts every face of
   the set, mirrored as well (flip TTA), its output points and its dense 68; the predictions are averaged.
2. OUT/teacher-labels.npz is the set with the *train* split's labels replaced by `mix` x ensemble +
   (1 - mix) x label (a missing 15-point label takes the ensemble's; a dense point outside the crop, which
   a heatmap head cannot place, keeps its label). Val keeps its true labels: the score is still against them.
3. `kplab train --preset default` on it (OUT/student-sS), and a table: each teacher's and the ensemble's
   val score beside the student's.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from kplab.faces.training.evaluate import image_tensor, predict
from kplab.faces.training.layout import CENTER, HALF, get_layout, normalise, stacked
from kplab.faces.training.metrics import keypoint_metrics
from kplab.faces.training.model import load_model

REPO = Path(__file__).resolve().parents[1]
KPLAB = [sys.executable, "-m", "kplab"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+")
    parser.add_argument("--mix", type=float, default=1.0, help="weight of the ensemble in the new train labels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "faces" / "faces15.npz"))
    parser.add_argument("--out", default="runs/distill")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = dict(np.load(args.data, allow_pickle=False))
    images = image_tensor(arrays["images"])
    layout = get_layout("kaggle15")
    train, val = arrays["split"] == "train", arrays["split"] == "val"
    truth = torch.from_numpy(np.nan_to_num(normalise(arrays["keypoints"]))).float()
    present = torch.from_numpy(~np.isnan(arrays["keypoints"]).any(-1))

    def score(points, rows):
        return keypoint_metrics(points[rows, :layout.n_points], truth[rows], layout, present[rows])["score"]

    predictions = []
    for run in args.teachers:
        model = load_model(run)
        if model.dense_layout is None or model.layout.name != layout.name:
            sys.exit(f"{run}: a teacher must predict kaggle15 with ibug68 dense points (the default preset)")
        both = stacked(model.layout, model.dense_layout)  # output points, then the dense ones
        predictions.append(predict(model, images, both, tta=True, dense=True))
        print(f"teacher {run}: val {score(predictions[-1], val):.1f} (flip TTA)", flush=True)
    ensemble = torch.stack(predictions).mean(0)
    print(f"ensemble of {len(predictions)}: val {score(ensemble, val):.1f}", flush=True)

    pixels = ensemble.numpy() * HALF + CENTER
    points, dense = arrays["keypoints"].copy(), arrays["keypoints68"].copy()
    taught = np.where(np.isnan(points), pixels[:, :layout.n_points],
                      args.mix * pixels[:, :layout.n_points] + (1 - args.mix) * points)
    placeable = (np.abs(normalise(dense)) <= 1).all(-1, keepdims=True)
    taught_dense = np.where(placeable, args.mix * pixels[:, layout.n_points:] + (1 - args.mix) * dense, dense)
    points[train], dense[train] = taught[train], taught_dense[train]
    moved = np.sqrt(np.nanmean((points[train] - arrays["keypoints"][train]) ** 2))
    print(f"train labels moved by {moved:.2f} px RMS per coordinate", flush=True)
    labels = out / "teacher-labels.npz"
    np.savez(labels, **{**arrays, "keypoints": points.astype(np.float32), "keypoints68": dense.astype(np.float32)})

    student = out / f"student-s{args.seed}"
    if not (student / "metrics.json").is_file():
        subprocess.run([*KPLAB, "train", "--data", str(labels), "--preset", "default", "--seed", str(args.seed),
                        "--out", str(student), "--set", f"threads={args.threads}"], check=True)
    best = json.loads((student / "metrics.json").read_text())["best_val_score"]
    print("\n| model | val score |\n|---|---|")
    for run, p in zip(args.teachers, predictions):
        print(f"| teacher {run}, flip TTA | {score(p, val):.1f} |")
    print(f"| ensemble, flip TTA | {score(ensemble, val):.1f} |")
    print(f"| student (default preset on the ensemble's train labels, mix {args.mix}), seed {args.seed} | {best:.1f} |")


if __name__ == "__main__":
    main()
