"""Stage-3 ablations of the digits recipe from one shared stage-2 model: test and dev curves, one table.

    python bench/digits_stage3.py --data ../shared/data/mnist/mnist.npz --out runs/stage3 --seed 0 \
        [--variants NAME ...] [--every 5]

Stages 1-2 run once per seed with the `beyond` preset (cached in OUT/stage2-sS), so every variant starts
from the same classifier and differs only in stage 3; `bench/digits_ablate.py --plan best` runs whole
pipelines instead. Each variant is `beyond` plus its overrides and runs with one torch thread; variants
finished earlier (OUT/NAME-sS.json) are read back, not rerun. Every `--every` epochs the teacher is scored
on the full 10,000-image test set and on "dev", the 1,000 unlabeled-val images with the labels MNIST has
for them: a tuning set for this bench only (the recipe never sees those labels).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from kplab.config import load_config
from kplab.digits.data import read_mnist
from kplab.digits.dataset import build_parts
from kplab.digits.evaluate import accuracy
from kplab.digits.mean_teacher import teach
from kplab.digits.recipe import DigitsConfig
from kplab.digits.run import classifier_from, seeded, stage_pretrain, stage_transfer
from kplab.digits.split import i2dl_split
from kplab.digits.store import load_model

LONG = ["teach.epochs=60", "teach.lr=2e-4", "teach.schedule=cosine"]
VARIANTS = {
    "beyond-60": ["teach.epochs=60"],
    "elastic-60": ["augment.elastic_alpha=34", "teach.epochs=60"],
    "elastic-pseudo-60": ["augment.elastic_alpha=34", "teach.epochs=60", "teach.pseudo_weight=1.0"],
    "cosine-60": LONG,
    "elastic-cosine-60": ["augment.elastic_alpha=34", *LONG],
    "elastic-cosine-pseudo-60": ["augment.elastic_alpha=34", *LONG, "teach.pseudo_weight=1.0"],
    "elastic-cosine-ict-60": ["augment.elastic_alpha=34", *LONG, "teach.interpolation_weight=1.0"],
}


def stage2(parts, cfg: DigitsConfig, out: Path):
    """The seed's stage-2 classifier under `beyond`, trained once and cached."""
    cache = out / f"stage2-s{cfg.seed}"
    if not (cache / "model.safetensors").is_file():
        autoencoder, _, _ = stage_pretrain(parts, cfg, out / f"stage1-s{cfg.seed}")
        stage_transfer(classifier_from(autoencoder, cfg, "transfer"), parts, cfg, cache, "2 transfer")
    return load_model(cache, "digits-classifier")[0]


def run_variant(name: str, data, seed: int, out: Path, every: int) -> dict:
    path = out / f"{name}-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    cfg = load_config(DigitsConfig, preset="digits-beyond", overrides=[*VARIANTS[name], f"seed={seed}", "threads=1"])
    split = i2dl_split(data.y_train, cfg.split)
    parts = build_parts(data, split)
    y_dev = torch.from_numpy(data.y_train[split.unlabeled_val])
    student = stage2(parts, cfg, out)
    curve: list[dict] = []
    start = time.perf_counter()

    def score(epoch: float, teacher, _student) -> None:
        if round(epoch) % every == 0 or epoch >= cfg.teach.epochs:
            curve.append({"epoch": round(epoch, 2), "test": accuracy(teacher, parts.x_test, parts.y_test),
                          "dev": accuracy(teacher, parts.x_unlabeled_val, y_dev),
                          "wall_s": round(time.perf_counter() - start)})
            print(name, json.dumps(curve[-1]), flush=True)

    teach(student, parts, cfg, seeded(cfg, "teach"), on_epoch=score)  # seeded as `kplab digits teach` is
    result = {"variant": name, "seed": seed, "overrides": VARIANTS[name], "curve": curve}
    path.write_text(json.dumps(result, indent=1))
    return result


def table(results: list[dict]) -> str:
    epochs = sorted({p["epoch"] for r in results for p in r["curve"]})
    lines = ["| variant | seed | " + " | ".join(f"ep {e:g}" for e in epochs) + " | final dev |",
             "|---|---|" + "---|" * (len(epochs) + 1)]
    for r in results:
        at = {p["epoch"]: p["test"] for p in r["curve"]}
        cells = " | ".join(f"{at[e]:.2f}" if e in at else "" for e in epochs)
        lines.append(f"| {r['variant']} | {r['seed']} | {cells} | {r['curve'][-1]['dev']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--every", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = read_mnist(args.data)
    results = [run_variant(name, data, args.seed, out, args.every) for name in args.variants]
    print("\nteacher accuracy on the full test set (%), by stage-3 epoch\n" + table(results))


if __name__ == "__main__":
    main()
