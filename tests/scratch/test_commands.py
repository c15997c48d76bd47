"""`kplab fundamentals ...` through the real CLI: each test re-derives the printed numbers independently
(OpenCV, PyTorch modules, PyTorch norms) and checks the written figure / table."""

import csv
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from kplab.cli import main
from kplab.scratch.filters import GRADIENT_MAGNITUDE, filter_bank


def run(*args):
    result = CliRunner().invoke(main, ["fundamentals", *map(str, args)])
    return result


def table_rows(stdout: str) -> list[list[str]]:
    """The rows of the first aligned table in stdout (columns are separated by 2+ spaces)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"[- ]+", line))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith(("figure:", "table:")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def number(text: str) -> float:
    return float(text.replace(",", ""))


def assert_png(path, min_side=300):
    image = cv2.imread(str(path))
    assert image is not None and min(image.shape[:2]) >= min_side, path


def check_filter_table(stdout: str, image: np.ndarray) -> None:
    ref = {name: cv2.filter2D(image, cv2.CV_64F, k, borderType=cv2.BORDER_CONSTANT)
           for name, k in filter_bank().items()}
    ref[GRADIENT_MAGNITUDE] = np.hypot(ref["Sobel x"], ref["Sobel y"])
    rows = {r[0]: r for r in table_rows(stdout)}
    assert set(rows) == set(ref)
    for name, out in ref.items():
        _, size, kernel_sum, lo, hi, mean = rows[name]
        if name != GRADIENT_MAGNITUDE:
            k = filter_bank()[name]
            assert size == f"{k.shape[0]}x{k.shape[1]}" and number(kernel_sum) == pytest.approx(k.sum(), abs=1e-6)
        for printed, value in ((lo, out.min()), (hi, out.max()), (mean, out.mean())):
            assert number(printed) == pytest.approx(value, abs=1.5e-6), name


def test_filters_on_the_default_test_pattern(tmp_path):
    from kplab.scratch.demos import test_pattern

    result = run("filters", "--seed", 3, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "test pattern (seed 3), 96x96" in result.stdout
    check_filter_table(result.stdout, test_pattern(3))
    assert not np.array_equal(test_pattern(3), test_pattern(4))
    assert_png(tmp_path / "filters.png")


def test_filters_on_an_image_file(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, size=(40, 57), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    result = run("filters", tmp_path / "photo.png", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "40x57 grey" in result.stdout
    check_filter_table(result.stdout, image.astype(np.float64) / 255)
    assert_png(tmp_path / "out" / "filters.png")


def test_filters_shrinks_large_photos(tmp_path):
    cv2.imwrite(str(tmp_path / "big.jpg"), np.full((600, 1200, 3), 128, np.uint8))
    result = run("filters", tmp_path / "big.jpg", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "256x512 grey" in result.stdout


@pytest.mark.parametrize("content", [None, b"this is not an image"])
def test_filters_refuses_unreadable_files(tmp_path, content):
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    result = run("filters", path, "--out", tmp_path)
    assert result.exit_code == 2
    assert "error:" in result.output and str(path) in result.output


def _meta_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_params_tutorial_counts_are_exact(tmp_path):
    result = run("params", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    # Independent reference: PyTorch layers of those sizes, on the meta device (no memory for 9e12 weights).
    expected = [
        ("32x32x3", "28x28x1", 75, torch.nn.Conv2d(3, 1, 5, device="meta")),
        ("32x32x3", "28x28x1", 3072 * 784, torch.nn.Linear(32 * 32 * 3, 28 * 28, device="meta")),
        ("1000x1000x3", "996x996x1", 75, torch.nn.Conv2d(3, 1, 5, device="meta")),
        ("1000x1000x3", "1000 units", 3 * 10**9, torch.nn.Linear(3 * 10**6, 1000, device="meta")),
        ("1000x1000x3", "1000x1000x3 (same size)", 9 * 10**12, torch.nn.Linear(3 * 10**6, 3 * 10**6, device="meta")),
    ]
    assert len(rows) == len(expected)
    for row, (inp, out, weights, module) in zip(rows, expected):
        assert row[1:3] == [inp, out]
        assert number(row[3]) == weights == module.weight.numel()
        assert number(row[5]) == _meta_count(module)
    assert rows[0][3] == "75" and rows[1][3] == "2,408,448" and rows[4][3] == "9,000,000,000,000"
    with open(tmp_path / "params.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [int(r["parameters"]) for r in written] == [int(number(r[5])) for r in rows]


def test_params_custom_sizes(tmp_path):
    result = run("params", "--input", "20x24x3", "--kernel", 3, "--filters", 4, "--stride", 2, "--padding", 1,
                 "--hidden", 50, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    conv_row, fc_row, hidden_row = table_rows(result.stdout)[-3:]
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
    out_shape = conv(torch.zeros(1, 3, 20, 24)).shape  # (1, 4, 10, 12)
    assert conv_row[2] == f"{out_shape[2]}x{out_shape[3]}x{out_shape[1]}"
    assert number(conv_row[5]) == _meta_count(conv)
    assert number(fc_row[5]) == _meta_count(torch.nn.Linear(20 * 24 * 3, out_shape.numel(), device="meta"))
    assert number(hidden_row[5]) == _meta_count(torch.nn.Linear(20 * 24 * 3, 50, device="meta"))


@pytest.mark.parametrize("args", [["--input", "32x32"], ["--input", "4x4x3", "--kernel", 7]])
def test_params_refuses_bad_sizes(tmp_path, args):
    result = run("params", *args, "--out", tmp_path)
    assert result.exit_code == 2 and "error:" in result.output


def test_dropout_demo_numbers(tmp_path):
    samples = 4000
    result = run("dropout", "--samples", samples, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    blocks = re.findall(r"^(kplab|torch) (Dropout2?d?)\(p=0\.5\) on ones\(([^)]*)\):\n((?:  .*\n)+)", out, re.M)
    assert [(b[0], b[1]) for b in blocks] == [("kplab", "Dropout"), ("torch", "Dropout"),
                                             ("kplab", "Dropout2d"), ("torch", "Dropout2d")]
    for source, layer, shape, body in blocks:
        values = np.array([[float(v) for v in line.split()] for line in body.splitlines()])
        assert values.size == 75 and set(np.unique(values)) <= {0.0, 2.0}  # dropped, or kept x 1/(1-p)
        if layer == "Dropout2d":
            assert shape == "1, 3, 25" and np.all(values.min(axis=1) == values.max(axis=1))
    rows = table_rows(out)
    assert len(rows) == 4
    for layer, source, n, fraction, whole in rows:
        elements = samples * 75 if layer == "Dropout" else samples * 3  # independent draws
        assert int(n) == samples
        assert abs(float(fraction) - 0.5) < 4 * np.sqrt(0.25 / elements), (layer, source)
        assert whole == ("-" if layer == "Dropout" else "1.0000")
    assert_png(tmp_path / "dropout.png", min_side=200)


def test_norms_demo_numbers_match_torch(tmp_path):
    result = run("norms", "--shape", "5x6x3x4", "--groups", 2, "--seed", 7, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    x = torch.from_numpy(np.load(tmp_path / "norms_batch.npy"))
    assert tuple(x.shape) == (5, 6, 3, 4)
    n, c = 5, 6
    reference = {  # torch's output, reshaped so each row is one normalised set
        "BatchNorm2d": F.batch_norm(x, None, None, training=True).transpose(0, 1).reshape(c, -1),
        "LayerNorm": F.layer_norm(x, (6, 3, 4)).reshape(n, -1),
        "InstanceNorm2d": F.instance_norm(x).reshape(n * c, -1),
        "GroupNorm(2)": F.group_norm(x, 2).reshape(n * 2, -1),
    }
    rows = {r[0]: r for r in table_rows(result.stdout)}
    assert set(rows) == set(reference)
    for name, y in reference.items():
        _, axes, groups, size, max_mean, min_var, max_var = rows[name]
        var = y.var(dim=1, unbiased=False)
        assert (int(groups), int(size)) == tuple(y.shape)
        assert float(max_mean) < 1e-12 and y.mean(dim=1).abs().max() < 1e-12
        assert float(min_var) == pytest.approx(var.min().item(), abs=1e-6)
        assert float(max_var) == pytest.approx(var.max().item(), abs=1e-6)
        assert 0.99 < float(min_var) <= float(max_var) < 1.0  # var / (var + eps), just under 1
    assert rows["BatchNorm2d"][1] == "(N, H, W) per channel" and rows["LayerNorm"][1] == "(C, H, W) per sample"
    assert_png(tmp_path / "norms.png")


@pytest.mark.parametrize("args", [["--shape", "4x6x4"], ["--groups", 4], ["--shape", "1x6x1x1"]])
def test_norms_refuses_bad_options(tmp_path, args):
    result = run("norms", *args, "--out", tmp_path)
    assert result.exit_code == 2 and "error:" in result.output
