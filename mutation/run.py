"""`make mutate`: mutation testing of the core modules with mutmut, using the fast unit tests only.

Each module gets its own mutmut workspace, mutants/NAME/ (a copy of src/, tests/ and pyproject.toml
whose [tool.mutmut] names that module and the unit tests that exercise it), so mutmut traces and runs
only those tests. Then it prints per module the share of mutants the tests kill, lists the survivors,
and exits 1 when a module is below the target. Mutants listed in mutation/equivalent.txt
(`name: one-line reason`) change no behaviour and are left out of the share. A timeout (the mutant
made a test hang past mutmut's CPU limit) counts as killed and is shown in its own column; a mutant
that no test reaches counts as surviving.

    python mutation/run.py                       # every core module
    python mutation/run.py metrics layout        # just these
    python mutation/run.py --report              # only read the results of earlier runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "mutants"
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
TARGET = 0.90
# Short name -> (source file, its fast unit tests); small core modules first.
MODULES = {
    "layout": ("src/kplab/faces/training/layout.py", ["tests/faces/test_layout.py", "tests/faces/test_augment.py",
                                              "tests/faces/test_metrics.py"]),
    "checkpoint": ("src/kplab/checkpoint.py", ["tests/test_checkpoint.py", "tests/faces/test_train.py"]),
    "metrics": ("src/kplab/faces/training/metrics.py", ["tests/faces/test_metrics.py", "tests/faces/test_layout.py"]),
    "geometry": ("src/kplab/geometry.py", ["tests/test_geometry.py", "tests/faces/test_augment.py"]),
    "evaluate": ("src/kplab/faces/training/evaluate.py", ["tests/faces/test_evaluate.py"]),
    "mean_teacher": ("src/kplab/digits/mean_teacher.py", ["tests/digits/test_mean_teacher.py",
                                                          "tests/digits/test_recipe.py"]),
    # recipe.py is dataclass defaults only (no functions for mutmut to mutate; tests/digits/test_recipe.py pins
    # every number); the recipe's computations (balanced sampler, mixup, smoothed CE) live in supervised.py.
    "recipe": ("src/kplab/digits/supervised.py", ["tests/digits/test_recipe.py", "tests/digits/test_mean_teacher.py"]),
    "model": ("src/kplab/faces/training/model.py", ["tests/faces/test_model.py", "tests/faces/test_model_head.py",
                                                    "tests/faces/test_train.py",
                                                    "tests/faces/test_dense_supervision.py"]),
    "train": ("src/kplab/faces/training/train.py", ["tests/faces/test_train.py", "tests/faces/test_resume.py",
                                                    "tests/faces/test_dense_supervision.py"]),
    "augment": ("src/kplab/faces/training/augment.py", ["tests/faces/test_augment.py"]),
    "scratch.linear": ("src/kplab/scratch/linear.py", ["tests/scratch/test_module.py"]),
    "scratch.dropout": ("src/kplab/scratch/dropout.py", ["tests/scratch/test_dropout.py"]),
    "scratch.conv": ("src/kplab/scratch/conv.py", ["tests/scratch/test_conv.py"]),
    "scratch.pool": ("src/kplab/scratch/pool.py", ["tests/scratch/test_pool.py"]),
    "scratch.norm": ("src/kplab/scratch/norm.py", ["tests/scratch/test_norm.py"]),
}
# Real-data tests and those that start `python -m kplab` in a subprocess (which would not see the mutant).
# no:unraisableexception: that plugin's gc.collect() at the end of every session took 1.2 of the 1.4 s a
# one-test mutant run cost in a fork of the warm process (it touches every object of the torch heap).
PYTEST_ARGS = ["-m", "not real", "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-x", "-q",
               "--hypothesis-profile=mutation",
               "--deselect", "tests/faces/test_train.py::test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run",
               "--deselect", "tests/faces/test_train.py::test_cli_reports_bad_override_without_traceback"]
KILLED = {"killed", "timeout", "segfault"}


def dotted(path: str) -> str:
    return path.removeprefix("src/").removesuffix(".py").replace("/", ".")


def toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(name: str) -> Path:
    """A fresh workspace mutants/NAME with the code, the tests and a [tool.mutmut] for this module."""
    source, tests = MODULES[name]
    ws = WORK / name
    if ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True)
    shutil.copytree(REPO / "src", ws / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tests", ws / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (ws / "pyproject.toml").write_text(
        (REPO / "pyproject.toml").read_text()
        + f'\n[tool.mutmut]\nsource_paths = ["src/kplab"]\nonly_mutate = {toml_list([source])}\n'
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n"
        'process_isolation = "forkserver"\n'
        # mutmut's default CPU limit, 30 x (clean run + 1 s), fired (SIGXCPU) on mutants that fail at once
        # when run by hand, on a loaded machine; 4 x (clean run + 30 s) still stops a real hang.
        "timeout_constant = 30.0\ntimeout_multiplier = 2.0\n")
    return ws


def run_module(name: str) -> float:
    ws = prepare(name)
    start = time.perf_counter()
    # One torch/OpenMP thread per test process: mutmut runs one worker per core, and two threads each
    # on a shared 2-core machine spin-wait for each other (README "Mutation testing" has the measurement).
    # KPLAB_MUTATION: tests/conftest.py preloads what the tests import lazily, once for all forks.
    env = {**os.environ, "KPLAB_TEST_THREADS": "1", "OMP_NUM_THREADS": "1", "KPLAB_MUTATION": "1"}
    subprocess.run(["nice", "-n", "19", sys.executable, "-m", "mutmut", "run"], cwd=ws, check=False, env=env)
    return time.perf_counter() - start


def read_equivalent() -> dict[str, str]:
    """mutant name -> reason, from lines `name: reason` (# comments and blank lines ignored)."""
    out = {}
    for line in EQUIVALENT.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, reason = line.partition(":")
            if not reason.strip():
                sys.exit(f"{EQUIVALENT}: {name.strip()} needs a one-line reason after ':'")
            out[name.strip()] = reason.strip()
    return out


def results(name: str) -> dict[str, str] | None:
    """mutant name -> mutmut status for one module, or None when it was never run."""
    from mutmut.stats import status_by_exit_code

    meta = WORK / name / "mutants" / (MODULES[name][0] + ".meta")
    if not meta.is_file():
        return None
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return {mutant: status_by_exit_code[code] for mutant, code in codes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"short names (default: all): {', '.join(MODULES)}")
    parser.add_argument("--report", action="store_true", help="do not run, only report earlier results")
    parser.add_argument("--target", type=float, default=TARGET)
    args = parser.parse_args()
    chosen = args.modules or list(MODULES)
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    equivalent = read_equivalent()
    seconds = {name: None if args.report else run_module(name) for name in chosen}

    print(f"\n{'module':<16}{'mutants':>8}{'killed':>8}{'timeout':>8}{'equiv':>7}{'survived':>9}{'no test':>8}"
          f"{'killed %':>10}{'run s':>8}")
    below, survivors = [], {}
    for name in chosen:
        status = results(name)
        if not status:
            print(f"{name:<16}{'not run':>8}")
            below.append(name)
            continue
        counted = {m: s for m, s in status.items() if m not in equivalent}
        killed = sum(s in KILLED for s in counted.values())
        no_test = sum(s == "no tests" for s in counted.values())
        not_checked = sum(s == "not checked" for s in counted.values())
        survivors[name] = sorted(m for m, s in counted.items() if s not in KILLED)
        share = killed / len(counted) if counted else 1.0
        spent = f"{seconds[name]:.0f}" if seconds.get(name) is not None else "-"
        timeouts = sum(s == "timeout" for s in counted.values())
        print(f"{name:<16}{len(status):>8}{killed - timeouts:>8}{timeouts:>8}{len(status) - len(counted):>7}"
              f"{len(counted) - killed - no_test:>9}{no_test:>8}{100 * share:>9.1f}%{spent:>8}"
              + (f"  ({not_checked} not checked)" if not_checked else ""))
        if share < args.target:
            below.append(name)
    for name, mutants in survivors.items():
        if mutants:
            print(f"\nsurvivors in {name} (`cd mutants/{name} && mutmut show NAME` prints the change):")
            for m in mutants:
                print(f"  {m}")
    if below:
        print(f"\nbelow the {100 * args.target:.0f} % target: {', '.join(below)}")
        return 1
    print(f"\nevery module at or above {100 * args.target:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
