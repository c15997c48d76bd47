"""Flip TTA and the evaluation phase against hand-computed answers and an independent computation.

The mirror is written out here from the task definition rather than taken from kplab: pixel column j
shows at column 95 - j after a flip, a keypoint x (pixels) sits at column x - PIXEL_CENTRE, so
x -> 95 + 2 PIXEL_CENTRE - x, i.e. n -> -n + (2 PIXEL_CENTRE - 1) / 48 in I2DL units; and the
subject's left and right swap names: (0,1) (2,4) (3,5) (6,8) (7,9) (11,12) (DESIGN.md).
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from kplab.cli import main
from kplab.faces.training.data import write_npz
from kplab.faces.training.evaluate import evaluate, evaluation_report, predict, to_tensors
from kplab.faces.training.layout import KAGGLE15, PIXEL_CENTRE
from kplab.faces.training.model import load_model
from kplab.faces.inference.predict import resolve_model
from kplab.faces.training.synthetic import synthetic_faces

PAIRS = [(0, 1), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12)]
SWAP = np.arange(15)
for a, b in PAIRS:
    SWAP[a], SWAP[b] = b, a
SHIFT = (2 * PIXEL_CENTRE - 1) / 48


def mirror_by_hand(points: np.ndarray) -> np.ndarray:
    """(..., 15, 2) normalised points of a face -> the points of its mirror image, names swapped."""
    out = points[..., SWAP, :].copy()
    out[..., 0] = -out[..., 0] + SHIFT
    return out


# A face that is not symmetric: points i at (i/10 - 0.7, 0.05 i - 0.35).
P = np.stack([np.arange(15) / 10 - 0.7, np.arange(15) / 20 - 0.35], -1)  # (15, 2)


class FixedPoints(nn.Module):
    """Answers the same points whatever the image shows."""

    def __init__(self, points):
        super().__init__()
        self.register_buffer("points", torch.as_tensor(points, dtype=torch.float32).flatten())

    def forward(self, x):
        return self.points.expand(len(x), -1)


class FlipConsistent(nn.Module):
    """A perfectly mirror-consistent model: P for a face brighter on its left image half, the hand
    mirror of P for one brighter on the right (the mirror image of the first)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("p", torch.as_tensor(P, dtype=torch.float32).flatten())
        self.register_buffer("q", torch.as_tensor(mirror_by_hand(P), dtype=torch.float32).flatten())

    def forward(self, x):
        left_brighter = x[..., :48].mean((1, 2, 3)) > x[..., 48:].mean((1, 2, 3))  # (N,)
        return torch.where(left_brighter[:, None], self.p, self.q)


def test_tta_on_a_fixed_answer_averages_it_with_its_hand_mirror():
    images = torch.rand(3, 1, 96, 96)
    got = predict(FixedPoints(P), images, KAGGLE15, tta=True).numpy()  # (3, 15, 2)
    # Point i averages P[i] with the mirrored partner: x_i = (x_i - x_swap(i) + SHIFT) / 2.
    expected = np.stack([(P[:, 0] - P[SWAP, 0] + SHIFT) / 2, (P[:, 1] + P[SWAP, 1]) / 2], -1)
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), atol=1e-6)
    assert got[0, 0, 0] == pytest.approx((-0.7 - (-0.6) + SHIFT) / 2, abs=1e-6)  # left eye centre, by hand
    assert got[0, 10, 0] == pytest.approx(SHIFT / 2, abs=1e-6)  # nose tip (unpaired): 0.3 - 0.3 + SHIFT


def test_tta_changes_nothing_for_a_mirror_consistent_model():
    images = torch.zeros(4, 1, 96, 96)
    images[:2, ..., :48] = 1.0  # two faces bright on the left, two bright on the right
    images[2:, ..., 48:] = 1.0
    plain = predict(FlipConsistent(), images, KAGGLE15).numpy()
    tta = predict(FlipConsistent(), images, KAGGLE15, tta=True).numpy()
    np.testing.assert_allclose(plain[:2], np.broadcast_to(P, (2, 15, 2)), atol=1e-6)
    np.testing.assert_allclose(tta, plain, atol=1e-6)


def test_evaluate_with_tta_scores_a_consistent_model_perfectly():
    images = torch.zeros(2, 1, 96, 96)
    images[..., :48] = 1.0
    target = torch.as_tensor(P, dtype=torch.float32).expand(2, 15, 2)
    _, metrics = evaluate(FlipConsistent(), images, target, torch.ones(2, 15, dtype=torch.bool), KAGGLE15, tta=True)
    assert metrics["rmse_px"] == pytest.approx(0.0, abs=1e-4) and metrics["nme_io"] == pytest.approx(0.0, abs=1e-6)


def test_dense_prediction_mirrors_each_point_set_by_its_own_pairs():
    from kplab.faces.training.augment import flip_faces
    from kplab.faces.training.layout import IBUG68, stacked
    from kplab.faces.training.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(dense_layout="ibug68", dense_mode="aux"), KAGGLE15).eval()
    images = torch.rand(5, 1, 96, 96)
    both = stacked(KAGGLE15, IBUG68)
    with torch.no_grad():
        plain, mirrored = model(images, dense=True), model(images.flip(-1), dense=True)  # (5, 83, 2)
    torch.testing.assert_close(predict(model, images, both, dense=True, batch_size=2), plain)
    got = predict(model, images, both, tta=True, dense=True, batch_size=2)
    torch.testing.assert_close(got[:, :15], predict(model, images, KAGGLE15, tta=True), rtol=0, atol=1e-6)
    back = flip_faces(images.flip(-1), mirrored[:, 15:], IBUG68)[1]
    torch.testing.assert_close(got[:, 15:], (plain[:, 15:] + back) / 2, rtol=0, atol=1e-6)
    assert (got - plain).abs().max() > 1e-3  # the mirror changed something worth checking


# ------------------------------------------------------------------ the evaluation report and `kplab evaluate`

def reference_metrics(model, faces, tta: bool) -> dict:
    """The I2DL loop written out: per image MSELoss over its 30 coordinates, score = 1 / (2 mean);
    NME_io per image = mean point distance / distance of the true outer eye corners (3 and 5)."""
    x = torch.from_numpy(faces.images).float().unsqueeze(1) / 255
    target = (torch.from_numpy(faces.keypoints).double() - 48) / 48  # (N, 15, 2)
    with torch.no_grad():
        pred = model(x).double().view(-1, 15, 2)
        if tta:
            pred = (pred + torch.from_numpy(mirror_by_hand(model(x.flip(-1)).double().view(-1, 15, 2).numpy()))) / 2
    loss = np.mean([nn.MSELoss()(pred[i], target[i]).item() for i in range(len(x))])
    dist = (pred - target).norm(dim=-1).mean(1)  # (N,)
    nme = (dist / (target[:, 3] - target[:, 5]).norm(dim=-1)).numpy()
    return {"score": 1 / (2 * loss), "rmse_px": 48 * np.sqrt(loss), "nme_io": nme.mean(),
            "fr10": np.mean(nme > 0.1), "auc10": np.mean(np.clip(1 - nme / 0.1, 0, 1))}


@pytest.fixture(scope="module")
def tiny_faces():
    return synthetic_faces(12, seed=5)


@pytest.fixture(scope="module")
def shipped_dir():
    """The shipped model: trained, so its mirrored predictions mean something (a random network
    answers about the same points for every face, which would hide a missing swap)."""
    return resolve_model("default")


def test_evaluation_report_numbers_match_the_i2dl_loop(shipped_dir, tiny_faces, tmp_path, tta=True):
    model = load_model(shipped_dir)
    metrics, text = evaluation_report(model, tiny_faces, tmp_path, tta=tta)
    expected = reference_metrics(model, tiny_faces, tta)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written.pop("regions") == metrics["regions"] and written.pop("layout") == tiny_faces.layout.name
    assert written == pytest.approx({k: v for k, v in metrics.items() if k not in ("regions", "layout")})
    # the per-region row "all" is the overall NME_io
    assert metrics["regions"]["all"]["nme_io"] == pytest.approx(metrics["nme_io"], rel=1e-12)
    rows = (tmp_path / "keypoints.csv").read_text().splitlines()
    assert len(rows) == 16 and rows[1].startswith("left_eye_center")
    assert ("(flip TTA)" in text) == tta
    assert text.startswith(f"{tiny_faces.source}: 12 faces, layout kaggle15{' (flip TTA)' if tta else ''}\n")
    assert text.endswith(f"figures and tables in {tmp_path}")
    for name in ("ced.png", "worst.png", "random.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_the_reference_tells_a_missing_swap_apart(shipped_dir, tiny_faces):
    # Guards the reference itself: on these faces a TTA that skips the swap scores far lower, so the
    # comparisons above would see it.
    model = load_model(shipped_dir)
    plain, tta = (reference_metrics(model, tiny_faces, t)["score"] for t in (False, True))
    # What TTA without the name swap would give:
    x = torch.from_numpy(tiny_faces.images).float().unsqueeze(1) / 255
    with torch.no_grad():
        back = model(x.flip(-1)).view(-1, 15, 2).numpy()
    back[..., 0] = -back[..., 0] + SHIFT
    target = (tiny_faces.keypoints - 48) / 48
    no_swap = 1 / (2 * np.mean(((model(x).detach().view(-1, 15, 2).numpy() + back) / 2 - target) ** 2))
    print(f"\nshipped model on 12 synthetic faces: score {plain:.1f}, flip TTA {tta:.1f}, TTA without swap {no_swap:.1f}")
    assert no_swap < 0.5 * min(plain, tta)


def test_kplab_evaluate_cli_prints_the_reference_numbers(shipped_dir, tiny_faces, tmp_path):
    data = tmp_path / "faces.npz"
    write_npz(data, {"train": tiny_faces, "val": tiny_faces})
    result = CliRunner().invoke(main, ["evaluate", str(shipped_dir), "--data", str(data), "--json",
                                       "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    expected = reference_metrics(load_model(shipped_dir), tiny_faces, tta=False)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    assert metrics["n_images"] == len(tiny_faces)


# ------------------------------------------------------------------ tensors, layouts and batching

def test_in_layout_answers_in_the_target_points_or_passes_the_model_through():
    from kplab.faces.training.evaluate import in_layout
    from kplab.faces.training.layout import IBUG68

    points68 = np.random.default_rng(3).uniform(-0.8, 0.8, (68, 2))
    model = FixedPoints(points68)
    assert in_layout(model, IBUG68, IBUG68) is model
    derived = in_layout(model, IBUG68, KAGGLE15)
    out = derived(torch.zeros(2, 1, 96, 96))
    assert out.shape == (2, 30) and out.dtype == torch.float32
    # the subject's left eye centre is the mean of the six iBUG points around it (42..47)
    left_eye = out.view(2, 15, 2)[:, KAGGLE15.index("left_eye_center")]
    np.testing.assert_allclose(left_eye.numpy(), np.broadcast_to(points68[42:48].mean(0), (2, 2)), atol=1e-6)
    assert set(derived.state_dict()) == {"model.points"}  # the derivation weights are not saved state
    double = in_layout(FixedPoints(points68).double(), IBUG68, KAGGLE15)  # the weights follow the model's dtype
    assert double(torch.zeros(1, 1, 96, 96)).dtype == torch.float64


def test_image_and_label_tensors_scale_normalise_and_fill_missing_points():
    import warnings

    from kplab.faces.training.evaluate import image_tensor, label_tensors
    from kplab.faces.training.faceset import FaceSet

    images = np.array([[[0, 51], [255, 102]]], np.uint8).repeat(48, 1).repeat(48, 2)  # (1, 96, 96)
    images.setflags(write=False)  # as a memory-mapped pack hands them out
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on read-only arrays: they must be copied first
        x = image_tensor(images)
    assert x.shape == (1, 1, 96, 96) and x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == 0.0 and x[0, 0, 0, 95].item() == pytest.approx(0.2)
    assert x[0, 0, 95, 0].item() == 1.0
    keypoints = np.full((1, 15, 2), 72.0, np.float32)
    keypoints[0, 3] = np.nan
    faces = FaceSet(np.zeros((1, 96, 96), np.uint8), keypoints, KAGGLE15)
    points, mask = label_tensors(faces)
    assert points.dtype == torch.float32 and mask.dtype == torch.bool
    assert points[0, 3].tolist() == [0.0, 0.0] and not mask[0, 3]
    assert points[0, 0].tolist() == [0.5, 0.5] and mask[0, 0]  # (72 - 48) / 48


class Brightness(nn.Module):
    """Answers every point at (mean brightness, 0) of its own image, with dropout that eval mode turns off."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        b = self.drop(x.mean((1, 2, 3)))[:, None].expand(-1, 15)
        return torch.stack([b, torch.zeros_like(b)], -1).flatten(1)


def test_predict_runs_in_eval_mode_batch_by_batch():
    images = torch.rand(5, 1, 96, 96)
    model = Brightness().train()
    got = predict(model, images, KAGGLE15, batch_size=2)
    assert not model.training
    np.testing.assert_allclose(got[:, 0, 0].numpy(), images.mean((1, 2, 3)).numpy(), rtol=1e-6)
    assert torch.equal(got, predict(model, images, KAGGLE15, batch_size=256))



def test_training_figures_are_the_curves_and_a_grid_of_up_to_16_val_faces(tmp_path):
    from PIL import Image

    from kplab.faces.training.evaluate import write_training_figures
    from kplab.faces.training.model import ModelConfig, build_model, save_model
    from kplab.faces.training.report import HEADER_INCHES

    save_model(tmp_path, build_model(ModelConfig(widths=(4, 4, 8, 8), blocks=(0, 0, 0, 0), head_width=4)).eval())
    history = [{"epoch": 1, "train_loss": 0.3, "val_score": 5.0}, {"epoch": 2, "train_loss": 0.2, "val_score": 7.0}]
    write_training_figures(tmp_path, history, synthetic_faces(20, seed=6))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    with Image.open(tmp_path / "val_grid.png") as grid:  # 16 faces: 6 columns, 3 rows of 2-inch panels at 100 dpi
        assert grid.size == (1200, round((3 * 2 + HEADER_INCHES) * 100))


def test_the_report_leaves_missing_points_out_of_every_number(tmp_path):
    import csv
    import dataclasses

    faces = synthetic_faces(4, seed=5)
    keypoints = faces.keypoints.copy()
    keypoints[0, 10] = np.nan  # face 0 has no nose tip
    faces = dataclasses.replace(faces, keypoints=keypoints)
    # FixedPoints has buffers but no parameters, like an ONNX Runtime model: the report must cope
    out = tmp_path / "eval" / "synthetic"  # made with its parents
    metrics, text = evaluation_report(FixedPoints(P), faces, out)
    target = (keypoints - 48) / 48
    dist_px = np.linalg.norm(P[None] - target, axis=-1) * 48  # (4, 15), NaN where missing
    present = ~np.isnan(dist_px)
    per_image_mse = np.nanmean(((P[None] - target) ** 2).reshape(4, 30), axis=1)  # the I2DL loss, per image
    assert metrics["rmse_px"] == pytest.approx(48 * np.sqrt(per_image_mse.mean()), rel=1e-5)
    assert metrics["regions"]["all"]["mean_px"] == pytest.approx(dist_px[present].mean(), rel=1e-5)
    with open(out / "keypoints.csv") as f:
        nose = next(row for row in csv.DictReader(f) if row["name"] == "nose_tip")
    assert int(nose["n"]) == 3 and float(nose["mean_px"]) == pytest.approx(np.nanmean(dist_px[:, 10]), rel=1e-5)
    # the text: a header line, then three tables (metrics without the nested ones, regions, keypoints)
    header, summary, regions, points, footer = text.split("\n\n")[0].split("\n", 1)[0], \
        *text.split("\n", 1)[1].split("\n\n")
    assert header == f"{faces.source}: 4 faces, layout kaggle15"
    assert summary.splitlines()[0].split() == ["metric", "value"]
    names = [line.split()[0] for line in summary.splitlines()[2:]]
    assert "score" in names and "rmse_px" in names and "regions" not in names and "layout" not in names
    assert regions.splitlines()[0].split() == ["region", "points", "mean_px", "nme_io"]
    assert points.splitlines()[0].split() == ["name", "n", "mean_px", "median_px", "rmse_px", "nme_io"]
    assert footer == f"figures and tables in {out}"
    values = dict(line.split() for line in summary.splitlines()[2:])
    assert float(values["rmse_px"]) == pytest.approx(metrics["rmse_px"], rel=1e-3)
    # evaluate scores the plain prediction unless asked for TTA
    images, points, mask = to_tensors(faces)
    assert torch.equal(evaluate(FixedPoints(P), images, points, mask, KAGGLE15)[0],
                       predict(FixedPoints(P), images, KAGGLE15))
