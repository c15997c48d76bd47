"""`kplab bench`: the MFLOP count against independent references, and the report's fields."""

import json

import cv2
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kplab.cli import main
from kplab.faces.training.layout import IMAGE_SIZE
from kplab.faces.training.model import load_model
from kplab.faces.inference.predict import resolve_model
from kplab.faces.inference.speed import count_macs

SPEED_FIELDS = ("torch_ms_b1", "torch_fps_b256", "onnx_ms_b1", "onnx_fps_b256")


def test_count_macs_matches_the_formula_for_strided_grouped_and_linear_layers():
    net = nn.Sequential(nn.Conv2d(1, 6, 5, stride=2, padding=2), nn.ReLU(),   # -> (6, 48, 48)
                        nn.Conv2d(6, 6, 3, padding=1, groups=3), nn.Flatten(),  # 2 input channels per group
                        nn.Linear(6 * 48 * 48, 7))
    by_hand = 6 * 48 * 48 * (1 * 5 * 5) + 6 * 48 * 48 * (2 * 3 * 3) + 7 * (6 * 48 * 48)
    assert count_macs(net) == by_hand == 691_200
    assert not any(m._forward_hooks for m in net.modules())  # the counting hooks are gone again


def torch_flops(model) -> int:
    """FLOPs of one face as torch's own counter sees them (2 per multiply-accumulate of conv and matmul)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.eval()(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    return counter.get_total_flops()


def test_shipped_model_mflops_agree_with_torch_flop_counter_and_fit_the_cpu_budget():
    model = load_model(resolve_model("default"))
    assert 2 * count_macs(model) == pytest.approx(torch_flops(model), rel=1e-3)
    # About 100 MFLOPs per face is what lets 2 laptop cores pass 2,000 faces/s in ONNX Runtime (README).
    assert 2 * count_macs(model) / 1e6 < 100
    meta = json.loads((resolve_model("default") / "model.json").read_text())
    assert meta["n_params"] == sum(p.numel() for p in model.parameters()) < 1_000_000  # model.json not stale


def _bench(*args):
    result = CliRunner().invoke(main, ["bench", *map(str, args), "--json", "--repeats", "20"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.output


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter: seconds, not tens
def test_bench_reports_size_compute_and_speed_of_a_model_dir_and_of_its_onnx_file(
        tiny_model_dir, detectable_face, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "face.png"), detectable_face[0])
    (photos / "notes.jpg").write_text("not an image")
    report, output = _bench(tiny_model_dir, "--photos", photos, "--threads", "1", "--exporter", "torchscript")
    model = load_model(tiny_model_dir)
    assert report["params"] == sum(p.numel() for p in model.parameters())
    assert report["mflops"] == pytest.approx(torch_flops(model) / 1e6, rel=1e-3)
    assert all(report[k] > 0 for k in SPEED_FIELDS) and report["threads"] == 1
    # Throughput at batch 256 cannot be below one face per batch-1 latency by orders of magnitude.
    assert report["onnx_fps_b256"] > 0.1 * 1000 / report["onnx_ms_b1"]
    assert report["n_photos"] == 1 and report["photos_per_s"] > 0 and "notes.jpg" in output

    onnx_file = tmp_path / "tiny.onnx"
    assert CliRunner().invoke(main, ["export", str(tiny_model_dir), "--out", str(onnx_file),
                                     "--exporter", "torchscript"]).exit_code == 0
    report, _ = _bench(onnx_file)
    assert report["params"] is None and report["torch_ms_b1"] is None  # no torch model in a .onnx file
    assert report["onnx_ms_b1"] > 0 and report["onnx_fps_b256"] > 0
