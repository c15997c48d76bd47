"""The keypoint network against a forward pass written out with torch.nn.functional, its regression head,
the checkpoint format and the I2DL limits (synthetic weights and images, no data).

The reference below is the architecture as the module docstrings describe it: a 3x3 conv (no bias) +
BatchNorm (+ ReLU) unit; a stride-2 stem; per stage a downsampling unit and residual blocks
relu(x + unit(relu-unit(x))); a top-down path that bilinearly upsamples (half-pixel centres) and adds a
1x1 lateral of each stage from the heatmap stride down; a smoothing unit, 1x1 heatmaps, and a
soft-argmax at the heatmap cells' centres.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from kplab import __version__
from kplab.errors import CheckpointError
from kplab.faces.training import model as model_module
from kplab.faces.training.layout import HALF, IBUG68, IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE
from kplab.faces.training.model import (MAX_FILE_MB, MAX_PARAMS, ModelConfig, build_model, check_i2dl_limits,
                                        load_model, save_model)
from kplab.config import to_dict

SMALL = dict(widths=(4, 6, 8, 10), blocks=(1, 1, 1, 1), head_width=5, dropout=0.0)


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every BatchNorm gets random affine and running statistics, so no unit is an identity in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g) * 0.3
            m.running_mean = torch.randn(c, generator=g) * 0.2
            m.running_var = torch.rand(c, generator=g) + 0.5
    return model.eval()


def unit(sd: dict, prefix: str, x: torch.Tensor, stride: int = 1, act: bool = True) -> torch.Tensor:
    """conv3x3 (no bias) -> BatchNorm (eval) -> optional ReLU, reading weights `prefix.0.*`, `prefix.1.*`."""
    y = F.conv2d(x, sd[f"{prefix}.0.weight"], None, stride, 1)
    y = F.batch_norm(y, sd[f"{prefix}.1.running_mean"], sd[f"{prefix}.1.running_var"], sd[f"{prefix}.1.weight"],
                     sd[f"{prefix}.1.bias"], False, 0.0, 1e-5)
    return F.relu(y) if act else y


def reference_features(sd: dict, cfg: ModelConfig, x: torch.Tensor) -> list[torch.Tensor]:
    x = unit(sd, "backbone.stem", x, stride=2)
    feats = []
    for s, b in enumerate(cfg.blocks):
        x = unit(sd, f"backbone.stages.{s}.0", x, stride=2 if s > 0 else 1)
        for j in range(1, b + 1):
            body = unit(sd, f"backbone.stages.{s}.{j}.body.0", x)
            x = F.relu(x + unit(sd, f"backbone.stages.{s}.{j}.body.1", body, act=False))
        feats.append(x)
    return feats


def reference_points(sd: dict, cfg: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) I2DL-normalised points of a heatmap model, from its state dict alone."""
    first = [2 ** (i + 1) for i in range(len(cfg.widths))].index(cfg.heatmap_stride)
    feats = reference_features(sd, cfg, x)[first:]
    n_lat = len(feats)
    y = F.conv2d(feats[-1], sd[f"laterals.{n_lat - 1}.weight"], sd[f"laterals.{n_lat - 1}.bias"])
    for i in range(n_lat - 2, -1, -1):
        f = feats[i]
        y = F.interpolate(y, size=tuple(f.shape[-2:]), mode="bilinear", align_corners=False)
        y = y + F.conv2d(f, sd[f"laterals.{i}.weight"], sd[f"laterals.{i}.bias"])
    maps = F.conv2d(unit(sd, "smooth", y), sd["to_heatmaps.weight"], sd["to_heatmaps.bias"])
    maps = maps * sd["log_beta"].exp()
    n, k, s, _ = maps.shape
    prob = maps.reshape(n, k, s * s).softmax(-1).reshape(n, k, s, s)
    stride = IMAGE_SIZE // s
    centres_px = torch.arange(s) * stride + (stride - 1) / 2 + PIXEL_CENTRE  # keypoint pixels of cell centres
    grid = (centres_px - HALF) / HALF
    xs = (prob.sum(2) * grid).sum(-1)
    ys = (prob.sum(3) * grid).sum(-1)
    return torch.stack((xs, ys), -1)


@pytest.mark.parametrize("stride", [4, 8])
def test_the_heatmap_network_matches_a_forward_pass_written_out(stride):
    cfg = ModelConfig(**SMALL, heatmap_stride=stride)
    torch.manual_seed(1)
    model = randomise(build_model(cfg))
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        out = model(x).view(2, 15, 2)
        expected = reference_points(model.state_dict() | {"log_beta": model.log_beta}, cfg, x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert model.heatmaps(x).shape == (2, 15, 96 // stride, 96 // stride)


def test_the_state_dict_holds_learned_weights_and_batchnorm_statistics_only():
    cfg = ModelConfig(**SMALL)
    model = build_model(cfg)
    keys = set(model.state_dict())
    # No conv bias before a BatchNorm; the coordinate grid is derived, not saved.
    assert "backbone.stem.0.bias" not in keys and "smooth.0.bias" not in keys
    assert "grid" not in keys and "derive" not in keys
    # One residual block per stage here, each two conv+BN units.
    assert {"backbone.stages.1.1.body.0.0.weight", "backbone.stages.1.1.body.1.1.running_var"} <= keys
    assert "backbone.stages.1.2.body.0.0.weight" not in keys
    assert model.hparams == {"model": to_dict(cfg), "layout": KAGGLE15.to_dict()}
    derive = build_model(ModelConfig(**SMALL, dense_layout="ibug68", dense_mode="derive"))
    assert "derive" not in derive.state_dict() and "grid" not in derive.state_dict()


def test_derive_mode_predicts_heatmaps_for_the_dense_points_only():
    model = build_model(ModelConfig(**SMALL, dense_layout="ibug68", dense_mode="derive")).eval()
    assert model.to_heatmaps.out_channels == IBUG68.n_points
    assert model.heatmaps(torch.rand(1, 1, 96, 96)).shape[1] == IBUG68.n_points


def test_the_regression_head_reads_the_pooled_deepest_features():
    cfg = ModelConfig(**SMALL, head="regression")
    torch.manual_seed(2)
    model = randomise(build_model(cfg))
    assert (model.fc.in_features, model.fc.out_features) == (10, 30)
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        pooled = reference_features(model.state_dict(), cfg, x)[-1].mean((2, 3))  # (3, 10)
        expected = pooled @ model.fc.weight.T + model.fc.bias
        out = model(x)
        points = model.predicted_points(x)
    assert out.shape == (3, 30) and points.shape == (3, 15, 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(points, expected.view(3, 15, 2), atol=1e-5, rtol=1e-4)
    # with dense supervision (aux) it regresses the output points then the dense ones
    dense = build_model(ModelConfig(**SMALL, head="regression", dense_layout="ibug68")).eval()
    assert dense.fc.out_features == 2 * (15 + 68)
    assert dense(x, dense=True).shape == (3, 83, 2)


@pytest.mark.parametrize("field, value, words", [
    ("head", "mlp", "unknown head 'mlp'"),
    ("heatmap_stride", 6, "heatmap_stride must be one of"),
    ("dense_mode", "average", "unknown dense_mode 'average'"),
])
def test_a_bad_model_field_is_refused_by_name(field, value, words):
    extra = {"dense_layout": "ibug68"} if field == "dense_mode" else {}
    with pytest.raises(ValueError, match=words):
        build_model(ModelConfig(**SMALL, **extra, **{field: value}))


def test_the_i2dl_limits_are_strict_upper_bounds():
    check_i2dl_limits(MAX_PARAMS - 1, MAX_FILE_MB - 0.01)
    with pytest.raises(ValueError, match="5,000,000 parameters: the I2DL limit is fewer than 5,000,000"):
        check_i2dl_limits(MAX_PARAMS, 1.0)
    with pytest.raises(ValueError, match="saved model is 20.0 MB: the I2DL limit is under 20 MB"):
        check_i2dl_limits(1, MAX_FILE_MB)


def test_save_model_refuses_a_file_exactly_at_the_size_limit(tmp_path, monkeypatch):
    model = build_model(ModelConfig(**SMALL))
    size = save_model(tmp_path / "a", model).stat().st_size
    monkeypatch.setattr(model_module, "MAX_FILE_MB", size / 1e6)  # the limit in 10^6-byte megabytes
    with pytest.raises(ValueError, match="saved model is"):
        save_model(tmp_path / "b", model)


def test_model_json_records_version_normalisation_and_extras_that_load_model_restores(tmp_path):
    model = build_model(ModelConfig(**SMALL))
    save_model(tmp_path, model, {"config": {"epochs": 3}, "metrics": {"nme": 0.05}, "other": 1})
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["kplab_version"] == __version__ and meta["task"] == "faces"
    assert meta["normalisation"] == {"image": "pixel/255", "keypoints": f"(kp - {HALF}) / {HALF}",
                                     "image_size": 96, "pixel_centre": PIXEL_CENTRE}
    loaded = load_model(tmp_path)
    assert loaded.hparams["config"] == {"epochs": 3} and loaded.hparams["metrics"] == {"nme": 0.05}
    assert "other" not in loaded.hparams


def test_load_model_refuses_another_task_naming_it(tmp_path):
    save_model(tmp_path, build_model(ModelConfig(**SMALL)))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["task"] = "digits"
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"not a face keypoint model \(task='digits'\)") as err:
        load_model(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("change", ["drop", "add"])
def test_load_model_refuses_missing_or_extra_tensors_naming_the_problem(tmp_path, change):
    from kplab import checkpoint

    save_model(tmp_path, build_model(ModelConfig(**SMALL)))
    tensors, meta = checkpoint.load(tmp_path)
    if change == "drop":
        del tensors["smooth.0.weight"]
    else:
        tensors["extra.weight"] = torch.zeros(2)
    checkpoint.save(tmp_path, tensors, meta)  # a consistent pair whose tensors do not fit the architecture
    with pytest.raises(CheckpointError, match="weights do not fit the architecture in model.json") as err:
        load_model(tmp_path)
    message = str(err.value)
    # the first problem line of torch's report, not its "Error(s) in loading state_dict" header
    assert ("Missing key(s)" in message and "smooth.0.weight" in message) if change == "drop" else \
        ("Unexpected key(s)" in message and "extra.weight" in message)
    assert "Error(s) in loading" not in message
