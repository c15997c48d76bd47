"""A model trained with `val_tta` (the best preset's) was validated and picked with flip TTA, so every path
that runs it predicts that way unless told not to: Predictor, `kplab evaluate`, its ONNX file, the server."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from kplab.checkpoint import read_meta
from kplab.cli import main
from kplab.faces.inference.export import OnnxModule, export_onnx
from kplab.faces.inference.predict import Predictor, resolve_model
from kplab.faces.training.data import write_npz
from kplab.faces.training.evaluate import evaluate, to_tensors
from kplab.faces.training.model import load_model, save_model
from kplab.faces.training.synthetic import synthetic_faces
from kplab.serve.service import KeypointService, Options


@pytest.fixture(scope="module")
def shipped():
    return resolve_model("default")  # records no flip TTA


@pytest.fixture(scope="module")
def tta_dir(shipped, tmp_path_factory):
    """The shipped weights recorded as validated with flip TTA, as training with val_tta records them
    (tests/faces/test_train.py checks that it does)."""
    out = tmp_path_factory.mktemp("flip_tta_model")
    save_model(out, load_model(shipped), {"mean_shape": read_meta(shipped)["mean_shape"], "flip_tta": True})
    return out


def test_the_predictor_mirrors_for_a_model_that_records_it_unless_told_not_to(tta_dir, shipped):
    crops = synthetic_faces(6, seed=3).images
    recorded = Predictor(tta_dir, detect=False)
    assert recorded.tta and not Predictor(shipped, detect=False).tta
    with_tta = recorded.predict_crops(crops)
    np.testing.assert_allclose(with_tta, Predictor(shipped, detect=False, tta=True).predict_crops(crops), atol=1e-6)
    plain = Predictor(tta_dir, detect=False, tta=False).predict_crops(crops)
    np.testing.assert_allclose(plain, Predictor(shipped, detect=False).predict_crops(crops), atol=1e-6)
    assert np.abs(with_tta - plain).max() > 1e-2


def test_kplab_evaluate_scores_as_the_model_records_and_the_flags_override_it(tta_dir, shipped, tmp_path):
    faces = synthetic_faces(12, seed=5)
    data = tmp_path / "faces.npz"
    write_npz(data, {"train": faces, "val": faces})

    def score(model, *flags):
        result = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(data), "--json",
                                           "--out", str(tmp_path / "eval"), *flags])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])["score"]

    model = load_model(shipped)
    expected = {tta: evaluate(model, *to_tensors(faces), faces.layout, tta=tta)[1]["score"] for tta in (True, False)}
    assert expected[True] != pytest.approx(expected[False], rel=1e-3)
    assert score(tta_dir) == pytest.approx(expected[True], rel=1e-6)
    assert score(tta_dir, "--no-tta") == pytest.approx(expected[False], rel=1e-6)
    assert score(shipped) == pytest.approx(expected[False], rel=1e-6)
    assert score(shipped, "--tta") == pytest.approx(expected[True], rel=1e-6)


def test_the_onnx_file_carries_the_record(tta_dir, shipped, tmp_path):
    for model, recorded in ((tta_dir, True), (shipped, False)):
        path = tmp_path / f"{model.name}.onnx"
        path.write_bytes(export_onnx(load_model(model), read_meta(model), exporter="torchscript"))
        assert OnnxModule(path).meta["flip_tta"] is recorded
        assert Predictor(path, detect=False).tta is recorded


def test_a_request_without_tta_gets_the_models_own_and_one_with_it_gets_what_it_asks(tta_dir, shipped):
    for model, recorded in ((tta_dir, True), (shipped, False)):
        service = KeypointService(model, backend="torch")
        assert service.describe()["flip_tta"] is recorded
        assert service.for_options(Options()).tta is recorded
        assert service.for_options(Options(tta=not recorded)).tta is (not recorded)
