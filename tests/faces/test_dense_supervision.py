"""Dense supervision: the 68 points behind 15-point crops ride through data, augmentation, model and loss."""

import math

import numpy as np
import pytest
import torch

from kplab.errors import DataError
from kplab.faces.training.data import read_npz, write_npz
from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.layout import IBUG68, KAGGLE15, convert_points, stacked
from kplab.faces.training.model import ModelConfig, build_model
from kplab.faces.training.train import TrainConfig, supervised_loss, train

RNG = np.random.default_rng(0)


def faces68(n: int = 4) -> FaceSet:
    points = np.asarray(IBUG68.template, np.float32)[None] + RNG.normal(0, 1, (n, 68, 2)).astype(np.float32)
    return FaceSet(RNG.integers(0, 256, (n, 96, 96), dtype=np.uint8), points, IBUG68,
                   person=np.array([f"p{i}" for i in range(n)]))


def test_stacked_layout_appends_names_and_shifts_flip_pairs():
    both = stacked(KAGGLE15, IBUG68)
    assert both.n_points == 83
    assert both.names[15] == "dense:" + IBUG68.names[0]
    # The outer eye corners of the 68 (36, 45) are a flip pair; stacked they sit 15 further on.
    assert (36 + 15, 45 + 15) in both.flip_pairs or (45 + 15, 36 + 15) in both.flip_pairs
    perm = both.flip_permutation
    assert list(perm[:15]) == list(KAGGLE15.flip_permutation)
    assert list(perm[15:] - 15) == list(IBUG68.flip_permutation)


def test_deriving_a_layout_keeps_the_source_points_as_dense_and_subsets_follow():
    faces = faces68(4)
    derived = faces.as_layout(KAGGLE15)
    assert derived.dense_layout is IBUG68
    np.testing.assert_array_equal(derived.dense_keypoints, faces.keypoints)
    picked = derived.subset([2, 0])
    np.testing.assert_array_equal(picked.dense_keypoints, faces.keypoints[[2, 0]])
    both = picked.with_dense_stacked()
    assert both.keypoints.shape == (2, 83, 2)
    np.testing.assert_array_equal(both.keypoints[:, 15:], faces.keypoints[[2, 0]])
    np.testing.assert_array_equal(both.keypoints[:, :15], derived.keypoints[[2, 0]])


def test_dense_points_of_the_wrong_shape_are_refused():
    faces = faces68(3)
    with pytest.raises(DataError, match="dense keypoints must have shape"):
        FaceSet(faces.images, faces.keypoints[:, :15], KAGGLE15, dense_keypoints=faces.keypoints[:, :60],
                dense_layout=IBUG68)


def test_npz_round_trip_carries_keypoints68(tmp_path):
    derived = faces68(5).as_layout(KAGGLE15)
    write_npz(tmp_path / "f.npz", derived)
    with np.load(tmp_path / "f.npz") as z:
        assert z["keypoints68"].shape == (5, 68, 2)
    back = read_npz(tmp_path / "f.npz")
    assert back.layout is KAGGLE15 and back.dense_layout is IBUG68
    np.testing.assert_allclose(back.dense_keypoints, derived.dense_keypoints)


def test_derive_mode_outputs_the_mean_of_the_dense_points_each_kaggle_point_is_made_of():
    torch.manual_seed(0)
    model = build_model(ModelConfig(dense_layout="ibug68", dense_mode="derive"), KAGGLE15).eval()
    x = torch.rand(2, 1, 96, 96)
    out, dense = model.forward_dense(x)
    assert out.shape == (2, 15, 2) and dense.shape == (2, 68, 2)
    # left_eye_center is the mean of the six iBUG points of the subject's left eye (42..47).
    np.testing.assert_allclose(out[:, KAGGLE15.index("left_eye_center")].detach().numpy(),
                               dense[:, 42:48].mean(1).detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(out.detach().numpy(), convert_points(dense.detach().numpy(), IBUG68, KAGGLE15),
                               atol=1e-6)
    assert torch.equal(model(x), out.flatten(1))  # the I2DL contract: (N, 30)
    assert model(x, dense=True).shape == (2, 83, 2)


def test_aux_mode_keeps_own_output_heatmaps():
    model = build_model(ModelConfig(dense_layout="ibug68", dense_mode="aux"), KAGGLE15).eval()
    assert model.to_heatmaps.out_channels == 15 + 68
    x = torch.rand(2, 1, 96, 96)
    out, dense = model.eval().forward_dense(x)
    assert out.shape == (2, 15, 2) and dense.shape == (2, 68, 2)
    every = model.predicted_points(x)  # heatmaps in order: the 15 output points, then the 68
    assert torch.equal(out, every[:, :15]) and torch.equal(dense, every[:, 15:])
    # the output points are their own heatmaps' answers, not the dense layout's derivation
    assert not torch.allclose(out, torch.as_tensor(convert_points(dense.detach().numpy(), IBUG68, KAGGLE15),
                                                   dtype=out.dtype), atol=1e-3)


def test_supervised_loss_weighs_dense_points_and_leaves_out_those_outside_the_image():
    cfg = TrainConfig(model=ModelConfig(dense_layout="ibug68"), loss="l1", dense_weight=0.5)
    y = torch.zeros(1, 83, 2)
    pred = torch.zeros(1, 83, 2)
    pred[0, :15] = 0.1  # every output coordinate off by 0.1 -> output loss 0.1
    pred[0, 15:] = 0.2  # every dense coordinate off by 0.2 ...
    y[0, 15, 0] = 1.5  # ... except one dense target outside the image, which must not count
    pred[0, 15] = torch.tensor([9.0, 9.0])
    m = torch.ones(1, 83, dtype=torch.bool)
    assert supervised_loss(pred, y, m, cfg).item() == pytest.approx(0.1 + 0.5 * 0.2, abs=1e-6)
    regression = TrainConfig(model=ModelConfig(head="regression", dense_layout="ibug68"), dense_weight=0.5)
    # A regression head can reach the point outside: it counts there.
    expected_dense = (0.2 * 134 + abs(9.0 - 1.5) + 9.0) / 136
    assert supervised_loss(pred, y, m, regression).item() == pytest.approx(0.1 + 0.5 * expected_dense, abs=1e-5)


def test_supervised_loss_gives_both_point_sets_the_configured_wing_shape():
    # errors of 1 px on the output points, 3 px on the dense ones; wing of width 2 px, curvature 1 px
    cfg = TrainConfig(model=ModelConfig(dense_layout="ibug68"), loss="wing", wing_px=(2.0, 1.0), dense_weight=0.5)
    y = torch.full((1, 83, 2), 0.25)
    pred = y.clone()
    pred[0, :15] += 1 / 48
    pred[0, 15:] -= 3 / 48
    w, c = 2 / 48, 1 / 48
    below = w * math.log(1 + (1 / 48) / c)            # 1 px < width: the logarithmic piece
    beyond = 3 / 48 - (w - w * math.log(1 + w / c))   # 3 px > width: the linear piece
    m = torch.ones(1, 83, dtype=torch.bool)
    assert supervised_loss(pred, y, m, cfg).item() == pytest.approx(below + 0.5 * beyond, rel=1e-5)


def test_without_dense_points_only_the_output_points_are_supervised(tmp_path, capsys):
    faces = faces68(64).as_layout(KAGGLE15)
    bare = FaceSet(faces.images, faces.keypoints, KAGGLE15, source="my.npz")
    cfg = TrainConfig(model=ModelConfig(dense_layout="ibug68", dense_mode="derive"), epochs=1, batch_size=16,
                      threads=1)
    summary = train(cfg, bare, bare, tmp_path)
    assert "my.npz carries no ibug68 points, so only its 15 points are supervised" in capsys.readouterr().err
    assert np.isfinite(summary["history"][0]["train_loss"])
    # the loss of a batch without dense columns is the output points' loss alone
    pred, y = torch.zeros(2, 83, 2), torch.full((2, 15, 2), 0.25)
    assert supervised_loss(pred, y, torch.ones(2, 15, dtype=torch.bool), cfg).item() == pytest.approx(0.25)


def test_a_pack_carries_the_dense_points_per_split(tmp_path):
    from kplab.faces.training.packed import read_packed, write_packed

    derived = faces68(6).as_layout(KAGGLE15)
    write_packed(tmp_path / "pack", {"train": derived.subset([0, 1, 2, 3]), "val": derived.subset([4, 5])})
    val = read_packed(tmp_path / "pack", "val")
    assert val.dense_layout is IBUG68
    np.testing.assert_array_equal(val.dense_keypoints, derived.dense_keypoints[4:])
    bare = FaceSet(derived.images, derived.keypoints, KAGGLE15)
    write_packed(tmp_path / "bare", bare)
    assert read_packed(tmp_path / "bare").dense_keypoints is None


def test_a_dense_recipe_on_the_dense_layout_itself_trains_one_set_of_points(tmp_path, capsys):
    faces = faces68(32)
    cfg = TrainConfig(model=ModelConfig(dense_layout="ibug68", dense_mode="derive"), epochs=1, batch_size=16,
                      threads=1)
    train(cfg, faces, faces, tmp_path)
    assert "the data's own layout is ibug68, the dense layout" in capsys.readouterr().err
    from kplab.faces.training.model import load_model
    model = load_model(tmp_path)
    assert model.dense_layout is None and model.to_heatmaps.out_channels == 68


def test_training_data_with_dense_points_supervises_them_and_a_nameless_set_is_named_generically(tmp_path, capsys):
    faces = faces68(16).as_layout(KAGGLE15)  # carries its 68 points as dense points
    cfg = TrainConfig(model=ModelConfig(widths=(4, 4, 8, 8), blocks=(0, 0, 0, 0), head_width=4, dense_layout="ibug68"),
                      epochs=1, batch_size=8, threads=1)
    dense = train(cfg, faces, faces, tmp_path / "dense")
    assert "carries no" not in capsys.readouterr().err
    bare = FaceSet(faces.images, faces.keypoints, KAGGLE15)  # no source, no dense points
    alone = train(cfg, bare, bare, tmp_path / "bare")
    assert "note: the training data carries no ibug68 points" in capsys.readouterr().err
    # the same seed and batches: only the dense term makes the losses differ
    assert dense["history"][0]["train_loss"] != pytest.approx(alone["history"][0]["train_loss"], rel=1e-3)


def test_a_dense_point_exactly_on_the_image_edge_is_still_supervised():
    cfg = TrainConfig(model=ModelConfig(dense_layout="ibug68"), loss="l1", dense_weight=1.0)
    y, pred = torch.zeros(1, 83, 2), torch.zeros(1, 83, 2)
    y[0, 15:] = torch.tensor([1.0, -1.0])  # every dense target on the border: a heatmap can still reach it
    m = torch.ones(1, 83, dtype=torch.bool)
    assert supervised_loss(pred, y, m, cfg).item() == pytest.approx(1.0)
