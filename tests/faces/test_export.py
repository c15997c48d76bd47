"""`kplab export` and the ONNX Runtime backend: one self-contained file that agrees with torch."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from kplab.cli import main
from kplab.errors import CheckpointError
from kplab.faces.inference.export import OnnxModule, weights_sha256
from kplab.faces.training.layout import normalise
from kplab.faces.training.model import load_model
from kplab.faces.inference.predict import Predictor, resolve_model


@pytest.fixture(scope="module")
def exported(tiny_model_dir):
    """`kplab export MODEL` with the default exporter, written beside the weights as model.onnx."""
    before = set(p.name for p in tiny_model_dir.iterdir())
    result = CliRunner().invoke(main, ["export", str(tiny_model_dir), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    path = tiny_model_dir / "model.onnx"
    assert result.stdout.strip() == str(path)
    assert set(p.name for p in tiny_model_dir.iterdir()) - before == {"model.onnx"}  # no external data file
    return path


def test_exported_file_is_valid_and_carries_opset_layout_and_normalisation(exported, tiny_model_dir):
    proto = onnx.load(str(exported), load_external_data=False)
    onnx.checker.check_model(proto)
    assert all(not t.external_data for t in proto.graph.initializer)  # weights stored inside
    meta = {p.key: p.value for p in proto.metadata_props}
    model_json = json.loads((tiny_model_dir / "model.json").read_text())
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert meta["opset"] == str(opset) == "18"
    assert json.loads(meta["layout"]) == model_json["layout"]
    assert json.loads(meta["normalisation"]) == model_json["normalisation"]
    assert json.loads(meta["mean_shape"]) == model_json["mean_shape"]
    assert meta["weights_sha256"] == weights_sha256(tiny_model_dir)


def test_onnx_runtime_takes_any_batch_size_and_agrees_with_torch(exported, tiny_model_dir):
    session = OnnxModule(exported, threads=1)
    model = load_model(tiny_model_dir)
    gen = torch.Generator().manual_seed(0)
    for n in (1, 3, 17):
        images = torch.rand(n, 1, 96, 96, generator=gen)
        with torch.no_grad():
            expected = model(images).numpy()
        got = session.run(images.numpy())
        assert got.shape == (n, 30)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_onnx_backend_uses_the_exported_file_and_matches_torch_with_tta(exported, tiny_model_dir, detectable_face):
    grey, _ = detectable_face
    results = {}
    for backend, model in (("torch", tiny_model_dir), ("onnx", tiny_model_dir), ("onnx-file", exported)):
        predictor = Predictor(model, backend=backend.split("-")[0], tta=True)
        results[backend] = predictor.predict(grey)[0].keypoints
        # three framing passes and the two passes of the fit test (this barely trained model's framings never
    # agree), two forwards each (flip TTA)
    assert predictor.forward_calls == (3 + 2) * 2
    np.testing.assert_allclose(results["onnx"], results["torch"], atol=1e-3)
    np.testing.assert_allclose(results["onnx-file"], results["onnx"], atol=0)


def test_a_broken_onnx_file_is_named_in_the_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="broken.onnx"):
        Predictor(bad, backend="onnx")
    with pytest.raises(CheckpointError, match="backend='onnx'"):
        Predictor(bad, backend="torch")


def test_the_shipped_default_model_carries_its_up_to_date_onnx_file():
    model_dir = resolve_model("default")
    assert OnnxModule(model_dir / "model.onnx").metadata["weights_sha256"] == weights_sha256(model_dir)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter: seconds, not tens
def test_export_without_out_keeps_int8_apart_and_never_writes_into_the_shipped_model(
        tiny_model_dir, tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir, ignore=shutil.ignore_patterns("*.onnx"))
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(model_dir), "--quantize", "int8", "--calibrate", "synthetic",
                                  "--exporter", "torchscript"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(model_dir / "model-int8.onnx")
    assert not (model_dir / "model.onnx").exists()  # so `--backend onnx` keeps using float weights

    shipped = resolve_model("default") / "model.onnx"
    before = shipped.read_bytes()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", "default", "--exporter", "torchscript"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "faces-default.onnx" and (tmp_path / "faces-default.onnx").is_file()
    assert shipped.read_bytes() == before


@pytest.mark.real
def test_default_model_onnx_and_torch_agree_on_real_faces(shared_data, capsys):
    data = np.load(shared_data / "faces" / "faces15.npz")
    crops = data["images"][data["split"] == "val"][:128]  # real faces, framed as in training
    torch_points = Predictor("default", backend="torch", detect=False).predict_crops(crops)
    onnx_points = Predictor("default", backend="onnx", detect=False).predict_crops(crops)
    diff = np.abs(normalise(onnx_points) - normalise(torch_points)).max()  # I2DL-normalised units
    print(f"\nmax |ONNX - torch| on 128 real faces: {diff:.2e} (normalised), {48 * diff:.2e} px")
    assert diff <= 1e-4
    assert "exporting" not in capsys.readouterr().err  # the shipped model.onnx ran, no export in memory


def test_int8_export_quantises_the_backbone_keeps_the_head_float_and_stays_close(exported):
    from kplab.faces.inference.export import quantize_int8
    from kplab.faces.training.synthetic import synthetic_faces

    faces = synthetic_faces(48, seed=1)
    calibration = faces.images[:32, None].astype(np.float32) / 255  # (32, 1, 96, 96)
    int8 = quantize_int8(exported.read_bytes(), calibration)
    proto = onnx.load_from_string(int8)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 0
    # The last convolution (heatmap logits) keeps float weights; earlier ones read dequantised int8.
    produced_by = {out: n.op_type for n in proto.graph.node for out in n.output}
    float_weights = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs[-1].input[1] in float_weights
    assert produced_by.get(convs[0].input[1]) == "DequantizeLinear"
    meta = {p.key: p.value for p in proto.metadata_props}
    assert "int8" in meta["quantization"] and "layout" in meta
    # On held-out faces the int8 model stays near the float one.
    held_out = faces.images[32:, None].astype(np.float32) / 255
    float_out = OnnxModule(exported).run(held_out)
    int8_out = OnnxModule(int8).run(held_out)
    assert np.abs(int8_out - float_out).max() < 0.05  # normalised units (2.4 px)
