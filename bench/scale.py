"""Training on a packed set bigger than it is sensible to hold: resident memory and faces/s, 1 and 2 processes.

Usage: python bench/scale.py [--faces 200000] [--pool 2000] [--steps 100] [--dir TMP]

1. Packs a synthetic set of --faces training faces (+ 256 val) into a temporary folder with the writer
   `kplab pack` uses (packed.PackWriter), chunk by chunk. The faces are --pool generated synthetic faces
   repeated in turn (200,000 distinct ones would take about 16 min at the 4.8 ms a face measured);
   every row is still its own 9,216 bytes on disk, and neither memory nor speed depends on what the
   pixels show.
2. Trains the shipped network (default preset's model and batch 32) for --steps steps, one epoch, as
   `kplab train --data PACK`: one process with 1 thread, one with 2 threads, and
   `torchrun --nproc-per-node 2` with 1 thread per rank (gloo).
3. Samples every process's resident memory (VmRSS, and its anonymous / file-backed parts) every 50 ms
   and prints the peak per training process (the whole `kplab train` run, figures included) beside a
   quarter of the pack's size, and faces/s (steps x batch over the epoch's elapsed time, which includes
   one pass over the 256 val faces). The same commands on a pack of just the pool give the baseline:
   what a process takes with (almost) no data, so the difference is what the big set costs.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kplab.faces.training.packed import PackWriter
from kplab.faces.training.synthetic import synthetic_faces

KPLAB = [sys.executable, "-m", "kplab"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
BATCH = 32
VAL = 256
BASELINE_STEPS = 20  # enough to reach the training footprint (memory, not speed, is read from it)


def pack_synthetic(out: Path, n: int, pool: int) -> int:
    """Write n training faces cycling through `pool` generated ones, plus VAL val faces; returns bytes."""
    faces = synthetic_faces(pool, seed=0)
    val = synthetic_faces(VAL, seed=1)
    writer = PackWriter(out, {"train": n, "val": VAL}, source=f"synthetic pool of {pool}, cycled")
    for start in range(0, n, pool):
        writer.write("train", faces.subset(np.arange(min(pool, n - start))))
    writer.write("val", val)
    writer.close()
    return sum(f.stat().st_size for f in out.iterdir())


def memory(pid: int) -> dict[str, int] | None:
    """VmRSS, RssAnon, RssFile of a process in bytes (None once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "RssAnon", "RssFile") if k in fields}


def descendants(root: int) -> dict[int, str]:
    """{pid: label} for `root` and every process below it; label = 'rank R' for torchrun workers."""
    parent, env = {}, {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                env[int(proc.name)] = (proc / "environ").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {root}, [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier and p not in found]
        found.update(kids)
        frontier = kids
    labels = {}
    for pid in found:
        rank = next((v[5:].decode() for v in env.get(pid, []) if v.startswith(b"RANK=")), None)
        labels[pid] = f"rank {rank}" if rank is not None else ("process" if pid == root else "helper")
    return labels


def run(label: str, cmd: list[str], out: Path, steps: int) -> dict:
    """Run a training command, sampling memory; returns peaks per training process and faces/s."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, dict] = {}
    labels: dict[int, str] = {}
    while proc.poll() is None:
        for pid, who in descendants(proc.pid).items():  # an exiting worker's environ reads empty
            if who != "helper" or pid not in labels:
                labels[pid] = who
        for pid in labels:
            now = memory(pid)
            if now and now["VmRSS"] > peaks.get(pid, {}).get("VmRSS", 0):
                peaks[pid] = now
        time.sleep(0.05)
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"{label}: training failed\n{err[-3000:]}")
    history = json.loads((out / "metrics.json").read_text())["history"]
    workers = {labels[p]: m for p, m in peaks.items() if labels[p] != "helper"}
    if "rank 0" in workers:  # under torchrun the root is the launcher, not a trainer
        workers.pop("process", None)
    return {"label": label, "faces_per_s": steps * BATCH / history[-1]["elapsed_s"], "peaks": workers}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=200_000)
    parser.add_argument("--pool", type=int, default=2_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dir", default=None, help="where the temporary packs go (default: the system's temp dir)")
    args = parser.parse_args()
    configs = [
        ("1 process, 1 thread", [*KPLAB], ["threads=1"]),
        ("1 process, 2 threads", [*KPLAB], ["threads=2"]),
        ("2 processes (torchrun, gloo), 1 thread each", [*TORCHRUN, "--nproc-per-node", "2", "-m", "kplab"],
         ["threads=1"]),
    ]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="kplab-scale-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        size = pack_synthetic(tmp / "big", args.faces, args.pool)
        pack_synthetic(tmp / "small", args.pool, args.pool)
        print(f"packed {args.faces:,} + {VAL} faces: {size / 2**30:.2f} GiB, and the {args.pool:,}-face pool "
              f"alone for the baseline, in {time.perf_counter() - t0:.0f} s (as float tensors in memory the "
              f"{args.faces:,} training images alone would take {args.faces * 96 * 96 * 4 / 2**30:.1f} GiB)",
              flush=True)
        limit = size / 4
        rows = []
        for label, launcher, extra in configs:
            row = {}
            for pack, steps in (("big", args.steps), ("small", BASELINE_STEPS)):
                out = tmp / f"run{len(rows)}-{pack}"
                cmd = [*launcher, "train", "--data", str(tmp / pack), "--out", str(out), "--preset", "default",
                       "--seed", "0", "--set", "epochs=1", f"epoch_steps={steps}", f"batch_size={BATCH}", *extra]
                row[pack] = run(label, cmd, out, steps)
            rows.append(row)
            print(f"  {label}: {row['big']['faces_per_s']:.0f} faces/s", flush=True)
    print(f"\n{args.steps} steps of {BATCH} faces on the {args.faces:,}-face pack ({size / 2**20:,.0f} MiB; a quarter "
          f"is {limit / 2**20:.0f} MiB), default network. Peak resident memory per training process, MiB "
          f"(anonymous + file-backed); baseline: the same command on the {args.pool:,}-face pack "
          f"({BASELINE_STEPS} steps)\n")
    print("| setting | faces/s | peak RSS, 200k pack | peak RSS, baseline | added by the big pack | under a quarter |")
    print("|---|---|---|---|---|---|")

    def mib(m):
        return f"{m['VmRSS'] / 2**20:.0f} ({m.get('RssAnon', 0) / 2**20:.0f} + {m.get('RssFile', 0) / 2**20:.0f})"

    for row in rows:
        big, base = row["big"]["peaks"], row["small"]["peaks"]
        for who in sorted(big):
            added = big[who]["VmRSS"] - base[who]["VmRSS"]
            total_ok = big[who]["VmRSS"] < limit
            print(f"| {row['big']['label']}{'' if who == 'process' else f' ({who})'} | "
                  f"{row['big']['faces_per_s']:.0f} | {mib(big[who])} | {mib(base[who])} | {added / 2**20:+.0f} | "
                  f"total: {'yes' if total_ok else 'no'}; added: {'yes' if added < limit else 'no'} |")


if __name__ == "__main__":
    main()
