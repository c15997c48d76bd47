"""Every command that takes a model takes a directory, a shipped name or an .onnx file; a 68-point model
answers in the 15 Kaggle points on request; nothing writes into the installed package."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kplab.cli import main
from kplab.faces.training.layout import IBUG68, KAGGLE15, convert_points
from kplab.faces.inference.predict import Predictor, report_dir, resolve_model


@pytest.fixture(scope="module")
def tiny68_dir(tmp_path_factory):
    """A small seeded 68-point model whose framing shape is the iBUG template."""
    from kplab.faces.training.model import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(4, 8, 16, 32), blocks=(0, 0, 0, 0), head_width=4), IBUG68)
    out = tmp_path_factory.mktemp("tiny68")
    save_model(out, model.eval(), {"mean_shape": [list(p) for p in IBUG68.template]})
    return out


def _npz68(path, n=12):
    """n synthetic crops with 68 plausible points (the template, jittered): evaluation input."""
    from kplab.faces.training.data import write_npz
    from kplab.faces.training.faceset import FaceSet

    rng = np.random.default_rng(0)
    points = np.asarray(IBUG68.template)[None] + rng.normal(0, 1.5, (n, 68, 2))
    images = rng.integers(0, 256, (n, 96, 96), dtype=np.uint8)
    write_npz(path, {"val": FaceSet(images, points, IBUG68)})
    return path


def test_a_68_point_model_answers_in_15_points(tiny68_dir, detectable_face):
    grey, _ = detectable_face
    both = Predictor(tiny68_dir).predict(grey)
    fifteen = Predictor(tiny68_dir, layout="kaggle15").predict(grey)
    assert len(both) == len(fifteen) == 1 and both[0].names == IBUG68.names
    assert fifteen[0].names == KAGGLE15.names
    np.testing.assert_allclose(fifteen[0].keypoints, convert_points(both[0].keypoints, IBUG68, KAGGLE15), atol=1e-9)
    # One framing: a face's points are the model's prediction on the crop its affine cuts, mapped back
    from kplab.faces.training.framing import crop_faces, uncrop_points

    one = Predictor(tiny68_dir, starts=1)
    face = one.predict(grey)[0]
    direct = uncrop_points(one.predict_crops(crop_faces(grey, face.affine[None])), face.affine[None])[0]
    np.testing.assert_allclose(face.keypoints, direct, atol=1e-6)
    np.testing.assert_allclose(Predictor(tiny68_dir, starts=1, layout="kaggle15").predict(grey)[0].keypoints,
                               convert_points(direct, IBUG68, KAGGLE15), atol=1e-6)
    with pytest.raises(Exception, match="cannot give ibug68"):
        Predictor("default", layout="ibug68")


def test_evaluate_takes_an_onnx_file_and_scores_it_like_the_weights(tiny68_dir, tmp_path):
    data = _npz68(tmp_path / "val68.npz")
    runner = CliRunner()
    onnx_file = tmp_path / "tiny68.onnx"
    result = runner.invoke(main, ["export", str(tiny68_dir), "--out", str(onnx_file), "--exporter", "torchscript"])
    assert result.exit_code == 0, result.output
    scores = {}
    for model in (str(tiny68_dir), str(onnx_file)):
        result = runner.invoke(main, ["evaluate", model, "--data", str(data), "--json", "--out", str(tmp_path / "r")])
        assert result.exit_code == 0, result.output
        scores[model] = json.loads(result.stdout.strip().splitlines()[-1])
    torch_metrics, onnx_metrics = scores.values()
    assert onnx_metrics["layout"] == "ibug68" and set(onnx_metrics["regions"]) == {
        "jaw", "brows", "nose", "eyes", "mouth", "all"}
    np.testing.assert_allclose(onnx_metrics["score"], torch_metrics["score"], rtol=1e-4)
    np.testing.assert_allclose(onnx_metrics["regions"]["all"]["nme_io"], torch_metrics["nme_io"], rtol=1e-4)
    # the same model scored in derived 15 points
    result = runner.invoke(main, ["evaluate", str(onnx_file), "--data", str(data), "--layout", "kaggle15",
                                  "--json", "--out", str(tmp_path / "r15")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["layout"] == "kaggle15"


def test_evaluating_a_shipped_model_writes_its_report_where_the_user_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    package = resolve_model("default")
    before = sorted(p.name for p in package.iterdir())
    result = CliRunner().invoke(main, ["evaluate", "default", "--data", "synthetic:60", "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "eval-faces-default" / "metrics.json").is_file()
    assert "report written to eval-faces-default" in result.stderr
    assert sorted(p.name for p in package.iterdir()) == before
    assert str(report_dir("faces68")) == "eval-faces68" and str(report_dir("a/x.onnx")) == "eval-x"
    assert str(report_dir("faces68-int8")) == "eval-faces68-int8"
