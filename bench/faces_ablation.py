"""Ablations of the face recipe on faces15.npz: each change alone from a base preset, then together.

Usage: python bench/faces_ablation.py [--variants a,b,...] [--seeds 0] [--base default] [--threads 0]
       [--out runs/ablation] [--data PATH] [--list]
Each variant is `kplab train --preset BASE --set ...` in a fresh process (wall time includes start-up and
data loading), then `kplab evaluate --json` on val without and with flip TTA (the table's error columns
are without), `kplab bench --json --threads 1` for the ONNX
latency of one face, and the 40 real photos (bench/faces_photos.py's photo_scores: NME_io on the
detector's boxes, and mean / max over 10 perturbed boxes per photo; with flip TTA for a model validated
with it, as `best`'s, since that is how it predicts). Finished runs
(OUT/BASE/VARIANT-sS/metrics.json present) are not trained again, so the table can be built up over
several sittings and re-printed with the same command. With several seeds the table shows mean +- half
the range (the spread a change has to beat). The ONNX latency is measured while whatever else runs on
the machine runs: two trainings beside it moved it by +-30 % between identical networks.
The val split only picks each run's best epoch; it is also what this table reports, so read small
differences against the seed spread.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from faces_photos import photo_scores

REPO = Path(__file__).resolve().parents[1]
KPLAB = [sys.executable, "-m", "kplab"]
PHOTOS = REPO.parent / "shared" / "data" / "faces" / "photos"

# name -> (what it changes, `--set` overrides on top of the base preset)
VARIANTS = {
    "base": ("the base preset as it is", []),
    "dense-aux": ("also predict the 68 iBUG points behind each crop (own 15 heatmaps kept)",
                  ["model.dense_layout=ibug68", "model.dense_mode=aux"]),
    "dense-derive": ("predict the 68 iBUG points, derive the 15 from them",
                     ["model.dense_layout=ibug68", "model.dense_mode=derive"]),
    "stride4": ("24x24 heatmaps (stride 4) instead of 12x12", ["model.heatmap_stride=4"]),
    "epochs70": ("70 epochs instead of 45", ["epochs=70"]),
    "nodrop": ("no Dropout2d before the head (was 0.1): train and val errors are alike, so less regularising",
               ["model.dropout=0.0"]),
    "smooth-l1": ("smooth L1 loss instead of L1", ["loss=smooth_l1"]),
    "wing": ("wing loss (width 4 px, curvature 0.5 px) instead of L1: pulls harder on errors under 4 px",
             ["loss=wing"]),
    "jitter": ("framing jitter: shifts up to 0.2 (was 0.08) of half the image, scale 0.8-1.25 (was 0.9-1.1)",
               ["augment.shift=0.2", "augment.scale=[0.8, 1.25]"]),
    "derive+jitter": ("dense-derive and framing jitter",
                      ["model.dense_layout=ibug68", "model.dense_mode=derive", "augment.shift=0.2",
                       "augment.scale=[0.8, 1.25]"]),
    "derive+epochs70": ("dense-derive and 70 epochs",
                        ["model.dense_layout=ibug68", "model.dense_mode=derive", "epochs=70"]),
    "tight": ("tight framing in training: shifts up to 0.02 (was 0.08) of half the image, scale 0.97-1.03 "
              "(was 0.9-1.1): the crops are framed on their labels, so the framing varies little",
              ["augment.shift=0.02", "augment.scale=[0.97, 1.03]"]),
    "fixed-frame": ("no shift or scale in training (rotation, shear and the rest kept)",
                    ["augment.shift=0.0", "augment.scale=[1.0, 1.0]"]),
    "reframe20": ("fixed framing, but 20 % of samples take wide framing jitter (shift 0.2, scale 0.8-1.25)",
                  ["augment.reframe=0.2", "augment.shift=0.2", "augment.scale=[0.8, 1.25]"]),
    "reframe30": ("fixed framing, but 30 % of samples take wide framing jitter (shift 0.2, scale 0.8-1.25)",
                  ["augment.reframe=0.3", "augment.shift=0.2", "augment.scale=[0.8, 1.25]"]),
    "reframe50": ("fixed framing, but half the samples take wide framing jitter (shift 0.2, scale 0.8-1.25)",
                  ["augment.reframe=0.5", "augment.shift=0.2", "augment.scale=[0.8, 1.25]"]),
    "epochs16": ("16 epochs (for --base fast, which has 12)", ["epochs=16"]),
    "derive+epochs16": ("dense-derive and 16 epochs (for --base fast)",
                        ["model.dense_layout=ibug68", "model.dense_mode=derive", "epochs=16"]),
    "derive+stride4": ("dense-derive and stride 4",
                       ["model.dense_layout=ibug68", "model.dense_mode=derive", "model.heatmap_stride=4"]),
    # for --base best (README "The best preset")
    "previous-best": ("the best preset as it was: 45 epochs, its 15 points alone, validated without flip TTA",
                      ["epochs=45", "val_tta=false", "model.dense_layout=", "model.dense_mode=aux"]),
    "epochs50": ("50 epochs instead of the base's", ["epochs=50"]),
    "epochs50-reframe20": ("50 epochs, and 80 % of the crops' framing kept (reframe 0.2 instead of 0.3)",
                           ["epochs=50", "augment.reframe=0.2"]),
}


def run_variant(name: str, seed: int, base: str, data: str, out: Path, threads: int) -> dict:
    run = out / f"{name}-s{seed}"
    done = run / "metrics.json"
    if not done.is_file():
        t0 = time.perf_counter()
        sets = [*VARIANTS[name][1], f"threads={threads}"]
        subprocess.run([*KPLAB, "train", "--data", data, "--preset", base, "--seed", str(seed), "--out", str(run),
                        "--set", *sets], check=True)
        (run / "wall.json").write_text(json.dumps({"wall_s": time.perf_counter() - t0}))
    row = {"variant": name, "seed": seed, "wall_s": json.loads((run / "wall.json").read_text())["wall_s"]}
    for tta in ("--no-tta", "--tta"):
        evaluated = run / f"eval{tta[1:]}.json"
        if not evaluated.is_file():
            cmd = [*KPLAB, "evaluate", str(run), "--data", data, tta, "--json", "--out", str(run / f"eval{tta[1:]}")]
            evaluated.write_text(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    metrics = json.loads((run / "eval-no-tta.json").read_text())
    row.update(score=metrics["score"], rmse_px=metrics["rmse_px"], nme_io=metrics["nme_io"],
               score_tta=json.loads((run / "eval-tta.json").read_text())["score"])
    speed = run / "bench.json"
    if not speed.is_file():
        cmd = [*KPLAB, "bench", str(run), "--json", "--threads", "1", "--repeats", "300"]
        speed.write_text(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    row["onnx_ms"] = json.loads(speed.read_text())["onnx_ms_b1"]
    photos = run / "photos.json"
    if not photos.is_file():
        photos.write_text(json.dumps(photo_scores(str(run), PHOTOS, threads=threads or None)))
    scores = json.loads(photos.read_text())
    row.update(photos_nme_io=scores["nme_io"], perturbed_mean=scores["perturbed_mean"],
               perturbed_max=scores["perturbed_max"])
    return row


def spread(values: list[float], fmt: str) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return format(mean, fmt)
    return f"{mean:{fmt}} ± {(max(values) - min(values)) / 2:{fmt}}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "faces" / "faces15.npz"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--base", default="default", help="the preset every variant starts from")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: all cores)")
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args()
    if args.list:
        for name, (what, sets) in VARIANTS.items():
            print(f"{name:18s} {what}  [{' '.join(sets) or '-'}]")
        return
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; --list shows them")
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out) / args.base
    rows = {n: [run_variant(n, s, args.base, args.data, out, args.threads) for s in seeds] for n in names}
    print(f"\nbase preset: {args.base}; seeds {args.seeds}; val = faces15 val (752 faces)\n")
    print("| variant | what | val score | with flip TTA | rmse_px | val NME_io % | photos NME_io % "
          "| perturbed mean / max % | wall min | ONNX ms (1 thread, b=1) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, rs in rows.items():
        col = (lambda key, scale=1.0: [r[key] * scale for r in rs])
        print(f"| {n} | {VARIANTS[n][0]} | {spread(col('score'), '.1f')} | {spread(col('score_tta'), '.1f')} | "
              f"{spread(col('rmse_px'), '.3f')} | "
              f"{spread(col('nme_io', 100), '.2f')} | {spread(col('photos_nme_io'), '.2f')} | "
              f"{spread(col('perturbed_mean'), '.2f')} / {spread(col('perturbed_max'), '.1f')} | "
              f"{spread(col('wall_s', 1 / 60), '.1f')} | "
              f"{spread(col('onnx_ms'), '.2f')} |")
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
