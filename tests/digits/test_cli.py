"""`kplab digits` end to end on a tiny synthetic idx folder (real files, real training, tiny sizes)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from kplab.cli import main
from kplab.digits.data import write_idx

TINY = ["--set", "model.encoder_dims=[48, 16]", "--set", "model.head_dims=[16]",
        "--set", "split.unlabeled_val=100", "--set", "split.labeled_val=50", "--set", "split.labeled_test=50",
        "--set", "pretrain.epochs=2", "--set", "pretrain.batch_size=128",
        "--set", "transfer.epochs=6", "--set", "supervised.samples_per_epoch=128", "--set", "supervised.augment=false",
        "--set", "transfer.head_lr=5e-3", "--set", "transfer.encoder_lr=5e-3",
        "--set", "teach.epochs=1", "--set", "teach.unlabeled_batch=128", "--labels", "30", "--seed", "1"]


def synthetic_digits(n_per_class, rng):
    """Class c = a bright bar at rows 2c+4..2c+5 plus noise: learnable, but only from labels."""
    y = np.repeat(np.arange(10), n_per_class)
    x = rng.integers(0, 60, (len(y), 28, 28))
    for c in range(10):
        x[y == c, 2 * c + 4: 2 * c + 6, 4:24] = 230
    order = rng.permutation(len(y))
    return x[order].astype(np.uint8), y[order].astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    x, y = synthetic_digits(60, rng)
    xt, yt = synthetic_digits(20, rng)
    for name, a in (("train-images-idx3-ubyte.gz", x), ("train-labels-idx1-ubyte.gz", y),
                    ("t10k-images-idx3-ubyte", xt), ("t10k-labels-idx1-ubyte", yt)):
        write_idx(folder / name, a)
    return str(folder)


def invoke(*args):
    result = CliRunner().invoke(main, ["digits", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_run_then_stage_commands_reproduce_it(data_dir, tmp_path):
    out = tmp_path / "run"
    printed = invoke("run", "--data", data_dir, "--out", str(out), "--compare-scratch", *TINY)
    assert "3 Mean Teacher teacher" in printed and "2 transfer (scratch)" in printed
    results = json.loads((out / "results.json").read_text())
    teacher_row = next(r for r in results["rows"] if r["stage"] == "3 Mean Teacher teacher")
    assert teacher_row["acc_test_full"] >= 90.0  # the bars are easy once labels are used
    for picture in ("reconstructions.png", "curves.png"):
        assert (out / picture).stat().st_size > 10_000

    scored = json.loads(invoke("evaluate", str(out / "teacher"), "--data", data_dir, "--json"))
    assert {k: scored[k] for k in ("acc_val", "acc_test100", "acc_test_full")} == \
        {k: teacher_row[k] for k in ("acc_val", "acc_test100", "acc_test_full")}
    assert scored["params"] == teacher_row["params"] < 5_000_000

    # The same three stages one command at a time give bit-identical weights (each stage reseeds).
    stages = tmp_path / "stages"
    invoke("pretrain", "--data", data_dir, "--out", str(stages / "dae"), *TINY)
    config = tmp_path / "c.toml"
    config.write_text("seed = 3\n")
    both = CliRunner().invoke(main, ["digits", "transfer", "--data", data_dir, "--pretrained", str(stages / "dae"),
                                     "--out", str(tmp_path / "x"), "--preset", "beyond", "--config", str(config)])
    assert both.exit_code == 2 and "either a preset or a config file" in both.output  # not one silently ignored
    invoke("transfer", "--data", data_dir, "--pretrained", str(stages / "dae"), "--out", str(stages / "clf"), *TINY)
    invoke("teach", "--data", data_dir, "--model", str(stages / "clf"), "--out", str(stages), *TINY)
    a = load_file(out / "teacher" / "model.safetensors")
    b = load_file(stages / "teacher" / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_inputs_are_one_clear_line(data_dir, tmp_path):
    runner = CliRunner()
    cases = [
        (["run", "--data", str(tmp_path / "none.npz")], "none.npz: file not found"),
        (["run", "--data", data_dir, "--set", "teach.nonsense=1"], "unknown key 'nonsense'"),
        (["run", "--data", data_dir, "--set", "pretrain.epochs=two"], "pretrain.epochs: expected an integer"),
        (["run", "--data", data_dir, "--preset", "nope"], "unknown preset 'digits-nope'"),
        (["run", "--data", data_dir, "--set", "device=banana"], "device='banana' is not a torch device"),
        (["evaluate", str(tmp_path), "--data", data_dir], "model.safetensors: not found"),
        (["transfer", "--data", data_dir, "--out", str(tmp_path / "x")], "exactly one of --pretrained DIR or --scratch"),
    ]
    for args, message in cases:
        result = runner.invoke(main, ["digits", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)

