"""Ablations of the semi-supervised digits recipe: many full pipelines in parallel, one table.

    python bench/digits_ablate.py --data ../shared/data/mnist/mnist.npz --out runs/ablate --jobs 4
    python bench/digits_ablate.py --data ../shared/data/mnist/mnist.npz --out runs/ablate-best --plan best

Each task is a whole `run_pipeline` (stages 1-3, optionally the from-scratch comparison) with some
`--set` overrides and a seed; tasks run in separate processes (one torch thread each) and the table
and `ablate.json` are rewritten as each one finishes, so a run cut short still reports what it did.
Stage-3 variants redo stages 1-2 with the same seed, so they all start from the same stage-2 model
(bit-identical on CPU; on a GPU up to kernel nondeterminism).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

BEYOND = ["teach.consistency=100", "teach.pseudo_weight=1.0", "teach.epochs=60"]
# `--preset best` taken apart: each change of presets/digits-best.toml over `beyond`, alone and together.
LONG = ["teach.epochs=60", "teach.lr=2e-4", "teach.schedule=cosine"]
ELASTIC = ["augment.elastic_alpha=34"]
PSEUDO = ["teach.pseudo_weight=1.0"]
PLANS = {
    # name -> list of (variant, seed, overrides, compare_scratch)
    "recipe": [("recipe", s, [], True) for s in (0, 1, 2)],
    "gpu": (
        [("recipe", s, [], True) for s in (0, 1, 2)]
        + [(name, 0, sets, False) for name, sets in (
            ("w=30", ["teach.consistency=30"]),
            ("w=100", ["teach.consistency=100"]),
            ("w=100, no mixup in stage 3", ["teach.consistency=100", "teach.mixup=false"]),
            ("w=100, pseudo-labels", ["teach.consistency=100", "teach.pseudo_weight=1.0"]),
            ("w=100, 60 epochs", ["teach.consistency=100", "teach.epochs=60"]),
            ("w=100, lr 2e-4 cosine", ["teach.consistency=100", "teach.lr=2e-4", "teach.schedule=cosine"]),
            ("w=100, EMA 0.999", ["teach.consistency=100", "teach.ema_decay=0.999"]),
        )]
        + [("beyond: w=100, pseudo-labels, 60 epochs", s, BEYOND, False) for s in (0, 1, 2)]
        + [("w=100", s, ["teach.consistency=100"], False) for s in (1, 2)]
    ),
    # stage 2+3 from scratch only ("scratch" tasks skip stage 1), and the longer schedules
    "gpu2": (
        [("scratch", s, [], False) for s in (0, 1, 2)]
        + [("w=100, 60 epochs", 0, ["teach.consistency=100", "teach.epochs=60"], False),
           ("beyond: w=100, pseudo-labels, 60 epochs", 0, BEYOND, False)]
    ),
    # CPU plan for `--preset best` (seed 0 unless noted; every task is a whole pipeline from the `beyond` preset)
    "best": (
        [(name, 0, ["preset=beyond", *sets], False) for name, sets in (
            ("beyond (w=100, 30 epochs)", []),
            ("+ elastic", ELASTIC),
            ("+ 60 epochs, lr 2e-4 cosine", LONG),
            ("+ 60 epochs cosine + elastic", LONG + ELASTIC),
            ("+ 60 epochs cosine + pseudo-labels", LONG + PSEUDO),
        )]
        + [("best", s, ["preset=best"], False) for s in (0, 1, 2)]
    ),
}


def one_task(args: tuple) -> dict:
    variant, seed, sets, scratch, data, out, device, common = args
    import torch

    from kplab.config import load_config
    from kplab.digits.recipe import DigitsConfig
    from kplab.digits.run import classifier_from, load_parts, run_pipeline, stage_teach, stage_transfer

    torch.set_num_threads(1)
    presets = [x.removeprefix("preset=") for x in sets if x.startswith("preset=")]
    sets = [x for x in sets if not x.startswith("preset=")]
    cfg = load_config(DigitsConfig, preset=f"digits-{presets[0]}" if presets else None,
                      overrides=[*common, *sets, f"seed={seed}", f"device={device}",
                                 f"compare_scratch={str(scratch).lower()}"])
    folder = Path(out) / f"{variant.replace(' ', '_').replace(',', '').replace('=', '')}-seed{seed}"
    start = time.perf_counter()
    if variant == "scratch":  # the same classifier through stages 2 and 3 without pretraining
        parts = load_parts(data, cfg)
        model = classifier_from(None, cfg, "transfer")
        _, row = stage_transfer(model, parts, cfg, folder / "transfer", "2 transfer (scratch)")
        _, hist, rows = stage_teach(model, parts, cfg, folder, "3 Mean Teacher (scratch)")
        results = {"rows": [row, *rows], "pipeline_wall_s": time.perf_counter() - start,
                   "scratch_wall_s": None, "histories": {"teach": hist}}
    else:
        results = run_pipeline(load_parts(data, cfg), cfg, folder)
    return {"variant": variant, "seed": seed, "overrides": sets, "wall_s": time.perf_counter() - start,
            "pipeline_wall_s": results["pipeline_wall_s"], "scratch_wall_s": results["scratch_wall_s"],
            "rows": results["rows"], "teacher_val_curve": results["histories"]["teach"]["teacher_val_acc"]}


def table(done: list[dict]) -> str:
    lines = ["| variant | seed | stage | val % | I2DL test % | full test % | pipeline wall s |", "|---|---|---|---|---|---|---|"]
    for r in sorted(done, key=lambda r: (r["variant"], r["seed"])):
        for row in r["rows"]:
            if "teacher" in row["stage"] or "transfer" in row["stage"]:
                lines.append(f"| {r['variant']} | {r['seed']} | {row['stage']} | {row['acc_val']:.1f} | "
                             f"{row['acc_test100']:.1f} | {row['acc_test_full']:.2f} | {r['pipeline_wall_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--plan", choices=sorted(PLANS), default="recipe")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", dest="common", action="append", default=[], help="key=value for every task")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [(*t, args.data, str(out), args.device, args.common) for t in PLANS[args.plan]]
    done: list[dict] = []
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for result in pool.imap_unordered(one_task, tasks):
            done.append(result)
            (out / "ablate.json").write_text(json.dumps(done, indent=1))
            (out / "ablate.md").write_text(table(done) + "\n")
            print(f"done {result['variant']} seed {result['seed']} in {result['wall_s']:.0f} s", flush=True)
    print(table(done))


if __name__ == "__main__":
    main()
