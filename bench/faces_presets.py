"""Train the fast, default and best presets on faces15.npz and print one table (the README's).

Usage: python bench/faces_presets.py [--data PATH] [--presets fast,default,best] [--out runs/bench]
Each preset runs as a fresh `kplab train` process (wall time includes start-up and data loading),
then `kplab evaluate --json` scores the saved best model on val, without and with flip TTA (`best` is
validated with it, so its checkpoint is the epoch that scored best with it).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KPLAB = [sys.executable, "-m", "kplab"]


def run_preset(preset: str, data: str, out: Path) -> dict:
    t0 = time.perf_counter()
    subprocess.run([*KPLAB, "train", "--data", data, "--preset", preset, "--out", str(out), "--seed", "0"],
                   check=True)
    wall = time.perf_counter() - t0
    row = {"preset": preset, "wall_s": wall}
    for tta in (False, True):
        cmd = [*KPLAB, "evaluate", str(out), "--data", data, "--json", "--out", str(out / f"eval{'-tta' * tta}")]
        metrics = json.loads(subprocess.run(cmd + ["--tta" if tta else "--no-tta"], check=True,
                                            capture_output=True, text=True).stdout)
        suffix = "_tta" if tta else ""
        row.update({f"score{suffix}": metrics["score"], f"rmse_px{suffix}": metrics["rmse_px"],
                    f"nme_io{suffix}": metrics["nme_io"], f"fr10{suffix}": metrics["fr10"]})
    meta = json.loads((out / "model.json").read_text())
    row["params"] = meta["n_params"]
    row["file_mb"] = (out / "model.safetensors").stat().st_size / 1e6
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "faces" / "faces15.npz"))
    parser.add_argument("--presets", default="fast,default,best")
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args()
    rows = [run_preset(p, args.data, Path(args.out) / p) for p in args.presets.split(",")]
    print("\n| preset | val score | with flip TTA | rmse_px | nme_io | fr10 | params | file | wall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['score']:.0f} | {r['score_tta']:.0f} | {r['rmse_px']:.2f} | "
              f"{100 * r['nme_io']:.2f} % | {100 * r['fr10']:.1f} % | {r['params'] / 1e6:.2f} M | "
              f"{r['file_mb']:.1f} MB | {r['wall_s'] / 60:.1f} min |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "presets.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
