"""Metrics against independent references: the I2DL per-image loop, hand-computed NMEs, analytic AUC/FR."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from kplab.faces.training.layout import KAGGLE15, Layout, normalise
from kplab.faces.training.metrics import (ced_auc, ced_curve, failure_rate, format_table, keypoint_metrics,
                                 per_image_nme, per_keypoint_table, per_region_table)

L15 = KAGGLE15
OUTER = (L15.index("left_eye_outer_corner"), L15.index("right_eye_outer_corner"))
CENTRES = (L15.index("left_eye_center"), L15.index("right_eye_center"))


def random_points(rng, n, spread=0.5):
    return rng.uniform(-spread, spread, size=(n, L15.n_points, 2))


def faces_with_nme(rng, nme):
    """Targets with a random face-like spread and predictions whose per-image NME_io is exactly `nme`:
    every point moves by nme_i * (outer-corner distance) along one random direction per image."""
    target = random_points(rng, len(nme))  # (N, 15, 2)
    ref = np.linalg.norm(target[:, OUTER[0]] - target[:, OUTER[1]], axis=-1)  # (N,)
    angle = rng.uniform(0, 2 * np.pi, size=len(nme))
    step = (np.asarray(nme) * ref)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # (N, 2)
    return target + step[:, None, :], target


# ---- the exact I2DL score -------------------------------------------------------------------------

class DictFaces(Dataset):
    """A course-style dataset: items are dicts with "image" (1, 96, 96) and "keypoints" (15, 2)."""

    def __init__(self, images, keypoints):
        self.images, self.keypoints = images, keypoints

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "keypoints": self.keypoints[i]}


def i2dl_evaluate_model(model, dataset):
    """The seed-style loop as the exercise deck writes it (15 is the course's own constant)."""
    model.eval()
    criterion = torch.nn.MSELoss()
    dataloader = DataLoader(dataset, batch_size=1, shuffle=False)
    loss = 0
    for batch in dataloader:
        image, keypoints = batch["image"], batch["keypoints"]
        predicted_keypoints = model(image).view(-1, 15, 2)
        loss += criterion(
            torch.squeeze(keypoints),
            torch.squeeze(predicted_keypoints),
        ).item()
    return 1.0 / (2 * (loss / len(dataloader)))


def test_score_matches_i2dl_per_image_loop():
    torch.manual_seed(0)
    images = torch.rand(24, 1, 96, 96)
    keypoints = torch.rand(24, L15.n_points, 2) * 1.6 - 0.8
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 5, stride=4), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(4 * 23 * 23, L15.n_outputs), torch.nn.Tanh(),
    )
    expected = i2dl_evaluate_model(model, DictFaces(images, keypoints))
    with torch.no_grad():
        pred = model(images).view(-1, L15.n_points, 2)  # (N, 15, 2), one batched forward
    got = keypoint_metrics(pred, keypoints, L15)
    assert got["score"] == pytest.approx(expected, rel=1e-6)
    assert got["n_images"] == 24
    assert 0.5 < expected < 50  # a real, finite score, not a degenerate case


def test_score_identities_without_mask():
    rng = np.random.default_rng(1)
    pred, target = random_points(rng, 50), random_points(rng, 50)
    m = keypoint_metrics(pred, target, L15)
    sq_px = ((48 * (pred - target)) ** 2).mean()  # over all N * 2K pixel coordinates
    assert m["rmse_px"] == pytest.approx(math.sqrt(sq_px), rel=1e-12)
    assert m["mse"] == pytest.approx(((pred - target) ** 2).mean(), rel=1e-12)
    assert m["score"] == pytest.approx(1152 / m["rmse_px"] ** 2, rel=1e-12)
    assert m["score"] == pytest.approx(1 / (2 * m["mse"]), rel=1e-12)


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(2)
    pred, target = random_points(rng, 10), random_points(rng, 10)
    a = keypoint_metrics(pred, target, L15)
    b = keypoint_metrics(torch.tensor(pred, dtype=torch.float32, requires_grad=True),
                         torch.tensor(target, dtype=torch.float32), L15)
    assert a.keys() == b.keys() == {"score", "mse", "rmse_px", "nme_io", "nme_ip", "fr10", "auc10", "n_images"}
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-5)
        assert type(b[k]) in (float, int)


# ---- NME, FR, AUC ----------------------------------------------------------------------------------

def test_nme_hand_computed_example():
    """Image 0: outer corners 40 px apart, eye centres 30 px, every point off by (3, 4) px -> 5 px.
    Image 1: a half-size face (20 px, 15 px), every point off by (0.6, 0.8) px -> 1 px."""
    face = np.random.default_rng(3).uniform(30, 66, size=(L15.n_points, 2))
    face[OUTER[0]], face[OUTER[1]] = (68, 40), (28, 40)  # subject-left is image-right
    face[CENTRES[0]], face[CENTRES[1]] = (63, 42), (33, 42)
    target_px = np.stack([face, 48 + 0.5 * (face - 48)])  # (2, 15, 2)
    pred_px = target_px + np.array([[3.0, 4.0], [0.6, 0.8]])[:, None, :]
    pred, target = normalise(pred_px), normalise(target_px)

    np.testing.assert_allclose(per_image_nme(pred, target, L15, "io"), [5 / 40, 1 / 20], rtol=1e-12)
    np.testing.assert_allclose(per_image_nme(pred, target, L15, "ip"), [5 / 30, 1 / 15], rtol=1e-12)
    m = keypoint_metrics(pred, target, L15)
    assert m["nme_io"] == pytest.approx((0.125 + 0.05) / 2)
    assert m["nme_ip"] == pytest.approx((5 / 30 + 1 / 15) / 2)
    assert m["fr10"] == 0.5  # 0.125 fails, 0.05 passes
    assert m["auc10"] == pytest.approx((0 + (1 - 0.05 / 0.1)) / 2)
    # per-coordinate squared pixel errors: (9 + 16) / 2 and (0.36 + 0.64) / 2, averaged over images
    assert m["rmse_px"] == pytest.approx(math.sqrt((12.5 + 0.5) / 2))
    with pytest.raises(ValueError, match="normaliser"):
        per_image_nme(pred, target, L15, "bogus")


def test_zero_error_gives_perfect_ced():
    target = random_points(np.random.default_rng(4), 8)
    m = keypoint_metrics(target.copy(), target, L15)
    assert (m["nme_io"], m["nme_ip"], m["fr10"], m["auc10"]) == (0.0, 0.0, 0.0, 1.0)
    assert m["score"] == math.inf and m["rmse_px"] == 0.0


def test_uniform_errors_on_0_to_0p2_give_analytic_auc_and_failure_rate():
    """For e ~ U[0, 0.2]: FR@0.1 = 1/2 and AUC@0.1 = (1/0.1) * int_0^0.1 x/0.2 dx = 1/4.
    On the midpoint grid the exact step integral gives these values exactly."""
    n = 1000
    grid = 0.2 * (np.arange(n) + 0.5) / n
    pred, target = faces_with_nme(np.random.default_rng(5), grid)
    np.testing.assert_allclose(per_image_nme(pred, target, L15), grid, rtol=1e-9)
    m = keypoint_metrics(pred, target, L15)
    assert m["fr10"] == pytest.approx(0.5, abs=1e-12)
    assert m["auc10"] == pytest.approx(0.25, abs=1e-9)
    assert m["nme_io"] == pytest.approx(0.1, rel=1e-9)

    sample = np.random.default_rng(6).uniform(0, 0.2, size=20_000)  # statistical: sd about 0.002
    assert ced_auc(sample) == pytest.approx(0.25, abs=0.01)
    assert failure_rate(sample) == pytest.approx(0.5, abs=0.015)


def test_ced_curve_counts_and_integrates_to_auc():
    rng = np.random.default_rng(7)
    nme = np.concatenate([rng.uniform(0, 0.15, size=300), [np.nan, np.nan]])
    x, frac = ced_curve(nme, max_error=0.1, steps=2001)
    assert x[0] == 0 and x[-1] == 0.1 and len(x) == 2001
    finite = nme[np.isfinite(nme)]
    for i in (0, 500, 1234, 2000):
        assert frac[i] == np.mean(finite <= x[i])
    assert np.all(np.diff(frac) >= 0)
    trapezoid = np.sum((frac[1:] + frac[:-1]) / 2 * np.diff(x)) / 0.1
    assert trapezoid == pytest.approx(ced_auc(nme), abs=1 / 2000)


# ---- masks -----------------------------------------------------------------------------------------

def test_mask_matches_per_image_loop_over_present_points():
    rng = np.random.default_rng(8)
    n = 30
    pred, target = random_points(rng, n), random_points(rng, n)
    mask = rng.random((n, L15.n_points)) < 0.6
    mask[3] = False  # an image with no labelled point at all
    target[~mask] = np.nan  # missing targets as a Kaggle CSV gives them

    losses = []
    for i in range(n):  # independent reference: MSELoss over each image's present coordinates
        if mask[i].any():
            p, t = torch.tensor(pred[i][mask[i]]), torch.tensor(target[i][mask[i]])
            losses.append(torch.nn.MSELoss()(t, p).item())
    m = keypoint_metrics(pred, target, L15, mask=mask)
    assert m["n_images"] == n - 1 == len(losses)
    assert m["score"] == pytest.approx(1 / (2 * np.mean(losses)), rel=1e-12)
    assert m["score"] == pytest.approx(1152 / m["rmse_px"] ** 2, rel=1e-12)

    # predictions at missing points do not matter
    pred2 = pred.copy()
    pred2[~mask] += 5.0
    assert keypoint_metrics(pred2, target, L15, mask=mask) == m


def test_mask_drops_images_without_reference_points_from_nme_only():
    rng = np.random.default_rng(9)
    pred, target = random_points(rng, 6), random_points(rng, 6)
    mask = np.ones((6, L15.n_points), dtype=bool)
    mask[0, OUTER[1]] = False  # image 0: no inter-ocular reference, but eye centres are there
    masked = keypoint_metrics(pred, target, L15, mask=mask)
    io = per_image_nme(pred, target, L15, "io", mask=mask)
    assert np.isnan(io[0]) and np.isfinite(io[1:]).all()
    assert masked["nme_io"] == pytest.approx(keypoint_metrics(pred[1:], target[1:], L15)["nme_io"])
    assert masked["n_images"] == 6
    ip = per_image_nme(pred, target, L15, "ip", mask=mask)
    keep = np.arange(L15.n_points) != OUTER[1]
    dist = np.linalg.norm(pred[0, keep] - target[0, keep], axis=-1).mean()
    assert ip[0] == pytest.approx(dist / np.linalg.norm(target[0, CENTRES[0]] - target[0, CENTRES[1]]))


def test_nan_targets_without_mask_and_bad_shapes_are_refused():
    rng = np.random.default_rng(10)
    pred, target = random_points(rng, 3), random_points(rng, 3)
    target[1, 4] = np.nan
    with pytest.raises(ValueError, match="mask"):
        keypoint_metrics(pred, target, L15)
    with pytest.raises(ValueError, match=r"\(N, 15, 2\)"):
        keypoint_metrics(pred[:, :14], target[:, :14], L15)
    with pytest.raises(ValueError, match="mask must have shape"):
        keypoint_metrics(pred, target, L15, mask=np.ones((3, 14), bool))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        keypoint_metrics(pred, target, L15, mask=np.zeros((3, L15.n_points), bool))


# ---- invariances -----------------------------------------------------------------------------------

def test_invariances():
    rng = np.random.default_rng(11)
    pred, target = random_points(rng, 20), random_points(rng, 20)
    base = keypoint_metrics(pred, target, L15)
    swapped = keypoint_metrics(target, pred, L15)
    for k in ("score", "mse", "rmse_px", "n_images"):
        assert swapped[k] == pytest.approx(base[k], rel=1e-12)
    assert swapped["nme_io"] != pytest.approx(base["nme_io"])  # NME is normalised by the target only

    shift = np.array([0.3, -0.2])
    moved = keypoint_metrics(pred + shift, target + shift, L15)
    for k in base:
        assert moved[k] == pytest.approx(base[k], rel=1e-9)

    scaled = keypoint_metrics(0.5 * pred, 0.5 * target, L15)  # a face half the size, same relative error
    for k in ("nme_io", "nme_ip", "fr10", "auc10"):
        assert scaled[k] == pytest.approx(base[k], rel=1e-9)
    assert scaled["mse"] == pytest.approx(0.25 * base["mse"], rel=1e-12)


def test_other_layouts_are_looked_up_by_name():
    """A 5-point layout in a different order: the metrics follow the names, not fixed indices."""
    names = ("nose_tip", "right_eye_outer_corner", "left_eye_center", "left_eye_outer_corner", "right_eye_center")
    five = Layout("five", names, flip_pairs=((3, 1), (2, 4)))
    cols = [L15.index(n) for n in names]
    rng = np.random.default_rng(12)
    pred, target = random_points(rng, 7), random_points(rng, 7)
    got = per_image_nme(pred[:, cols], target[:, cols], five, "io")
    dist = np.linalg.norm(pred[:, cols] - target[:, cols], axis=-1).mean(axis=1)
    np.testing.assert_allclose(got, dist / np.linalg.norm(target[:, OUTER[0]] - target[:, OUTER[1]], axis=-1))
    m = keypoint_metrics(pred[:, cols], target[:, cols], five)
    assert m["mse"] == pytest.approx(((pred[:, cols] - target[:, cols]) ** 2).mean())


# ---- per-keypoint table ----------------------------------------------------------------------------

def test_per_keypoint_table_sums_to_global_metrics():
    rng = np.random.default_rng(13)
    pred, target = random_points(rng, 40), random_points(rng, 40)
    rows = per_keypoint_table(pred, target, L15)
    m = keypoint_metrics(pred, target, L15)
    assert [r["name"] for r in rows] == list(L15.names)
    assert np.mean([r["rmse_px"] ** 2 for r in rows]) == pytest.approx(m["rmse_px"] ** 2, rel=1e-12)
    assert np.mean([r["nme_io"] for r in rows]) == pytest.approx(m["nme_io"], rel=1e-12)
    dist = 48 * np.linalg.norm(pred - target, axis=-1)  # (N, 15) Euclidean pixel errors
    np.testing.assert_allclose([r["mean_px"] for r in rows], dist.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose([r["median_px"] for r in rows], np.median(dist, axis=0), rtol=1e-12)
    assert all(r["n"] == 40 for r in rows)


def test_per_keypoint_table_hand_example_with_mask():
    rng = np.random.default_rng(14)
    target = random_points(rng, 5)
    nose = L15.index("nose_tip")
    pred = target.copy()
    pred[:, nose, 0] += 3 / 48  # the nose is 3 px off in x on every image, all else exact
    mask = np.ones((5, L15.n_points), dtype=bool)
    mask[:2, nose] = False
    pred[:2, nose] += 1.0  # ... except where it is unlabelled, which must not count
    rows = {r["name"]: r for r in per_keypoint_table(pred, target, L15, mask=mask)}
    assert rows["nose_tip"]["n"] == 3
    assert rows["nose_tip"]["mean_px"] == pytest.approx(3) and rows["nose_tip"]["median_px"] == pytest.approx(3)
    assert rows["nose_tip"]["rmse_px"] == pytest.approx(math.sqrt(9 / 2))
    ref = 48 * np.linalg.norm(target[2:, OUTER[0]] - target[2:, OUTER[1]], axis=-1)
    assert rows["nose_tip"]["nme_io"] == pytest.approx(np.mean(3 / ref))
    assert rows["mouth_left_corner"]["mean_px"] == 0 and rows["mouth_left_corner"]["n"] == 5


def test_format_table_aligns_columns():
    rows = [{"name": "nose_tip", "n": 752, "err": math.pi}, {"name": "x", "n": 3, "err": 0.000123456}]
    text = format_table(rows, ["name", "n", "err"])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["name", "n", "err"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["nose_tip", "752", "3.142"]
    assert lines[3].split() == ["x", "3", "0.0001235"]
    assert len({len(line) for line in lines}) == 1  # numbers right-aligned to one edge
    assert lines[3].startswith("x ")  # text left-aligned


# ---- a dataset fact --------------------------------------------------------------------------------

@pytest.mark.real
def test_mean_shape_scores_about_78_on_real_val(shared_data):
    """../shared/DESIGN.md: predicting the training mean shape for every val face scores about 78."""
    d = np.load(shared_data / "faces" / "faces15.npz")
    split, kp = d["split"], d["keypoints"]
    target = normalise(kp[split == "val"].astype(np.float64))  # (752, 15, 2)
    pred = np.broadcast_to(normalise(kp[split == "train"].astype(np.float64).mean(axis=0)), target.shape)
    m = keypoint_metrics(pred, target, L15)
    assert m["n_images"] == 752
    assert m["score"] == pytest.approx(78, abs=2)
    assert m["score"] == pytest.approx(1152 / m["rmse_px"] ** 2, rel=1e-12)
    assert 0.05 < m["nme_io"] < m["nme_ip"] < 0.2  # eye centres are closer together than outer corners


# ------------------------------------------------------- edge cases that mutation testing found unpinned

def two_faces():
    """Two faces, 15 points each in a row along x (outer eye corners 3 and 5 one unit apart), and a
    prediction moved right by 0.1 per point."""
    target = np.zeros((2, 15, 2))
    target[:, :, 0] = np.arange(15) / 14 - 0.5
    target[:, 5, 0] = target[:, 3, 0] + 1.0
    return target + np.array([0.1, 0.0]), target


def test_coincident_or_missing_reference_points_leave_the_image_out_of_nme():
    pred, target = two_faces()
    target[1, 5] = target[1, 3]  # image 1: outer eye corners coincide
    nme = per_image_nme(pred, target, L15)
    assert nme[0] == pytest.approx(0.1) and np.isnan(nme[1])
    rows = per_keypoint_table(pred, target, L15)
    assert all(r["nme_io"] == pytest.approx(0.1) for r in rows)  # image 1 left out, not divided by 0
    mask = np.ones((2, 15), bool)
    mask[1, 3] = False  # image 1: one reference point missing (its target is garbage)
    pred, target = two_faces()
    target[1, 3] = [7.0, -3.0]
    assert np.isnan(per_image_nme(pred, target, L15, mask=mask)[1])
    rows = per_keypoint_table(pred, target, L15, mask=mask)
    assert all(r["nme_io"] == pytest.approx(0.1) for r in rows)
    mask[1, 3], mask[1, 5] = True, False  # the other reference point missing instead
    rows = per_keypoint_table(pred, target, L15, mask=mask)
    assert all(r["nme_io"] == pytest.approx(0.1) for r in rows)


def test_a_small_face_still_has_an_nme():
    pred, target = two_faces()
    target[:, 5, 0] = target[:, 3, 0] + 0.5 / 48  # outer corners half a pixel apart
    pred = target + 0.01 / 48
    rows = per_keypoint_table(pred, target, L15)
    assert rows[0]["nme_io"] == pytest.approx(np.sqrt(2) * 0.01 / 0.5)


def test_all_missing_column_gives_nan_quietly():
    pred, target = two_faces()
    mask = np.ones((2, 15), bool)
    mask[:, 10] = False  # nose tip missing everywhere
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "on purpose": no RuntimeWarning for the empty column
        rows = per_keypoint_table(pred, target, L15, mask=mask)
    assert rows[10]["n"] == 0 and all(np.isnan(rows[10][k]) for k in ("mean_px", "median_px", "rmse_px", "nme_io"))


def test_ced_curve_default_grid_edges_and_degenerate_inputs():
    x, y = ced_curve(np.array([0.0, 0.2]))
    assert len(x) == 1001 and x[0] == 0.0 and x[-1] == pytest.approx(0.1)
    assert y[0] == 0.5  # an error of exactly 0 counts at threshold 0 (NME <= x)
    x, y = ced_curve(np.array([0.05]), steps=11)  # one image: a single step at 0.05
    np.testing.assert_array_equal(y, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    x, y = ced_curve(np.array([np.nan, np.nan]), steps=7)  # nothing defined
    assert x.shape == y.shape == (7,) and np.isnan(y).all()


def test_format_table_cells_missing_keys_bools_and_no_trailing_spaces():
    text = format_table([{"n": 5, "ok": True, "name": "a"}, {"n": 10, "name": "b"}], ["n", "ok", "name"])
    lines = text.splitlines()
    assert lines[0] == " n  ok    name"
    assert lines[2] == " 5  True  a"
    assert lines[3] == "10  -     b"
    assert all(line == line.rstrip() for line in lines)


def test_rates_on_edges_and_on_nothing():
    assert failure_rate(np.array([0.1, 0.1000001, 0.05])) == pytest.approx(1 / 3)  # exactly 10 % is no failure
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing defined: NaN, without "mean of empty slice"
        assert math.isnan(failure_rate(np.array([np.nan]))) and math.isnan(ced_auc(np.array([])))
        pred, target = two_faces()
        mask = np.ones((2, 15), bool)
        mask[:, [0, 3]] = False  # no image has both reference points of either NME
        metrics = keypoint_metrics(pred, target, L15, mask=mask)
    assert math.isnan(metrics["nme_io"]) and math.isnan(metrics["nme_ip"]) and math.isnan(metrics["fr10"])
    assert metrics["score"] == pytest.approx(1 / (2 * 0.01 / 2))


def test_inputs_of_any_float_type_are_computed_in_float64():
    pred, target = two_faces()
    pred = pred + np.random.default_rng(0).normal(0, 0.013, pred.shape)
    exact = keypoint_metrics(pred.astype(np.float32).astype(np.float64), target.astype(np.float32), L15)
    assert keypoint_metrics(pred.astype(np.float32), target.astype(np.float32), L15) == exact  # bit for bit
    halves = keypoint_metrics(torch.tensor(pred, dtype=torch.bfloat16), torch.tensor(target, dtype=torch.bfloat16), L15)
    assert halves["score"] == pytest.approx(exact["score"], rel=0.05)


def test_masks_of_every_kind_are_read_as_booleans():
    pred, target = two_faces()
    pred[0, 10] += 1.0  # a wild nose tip in image 0 ...
    as_bool = np.ones((2, 15), bool)
    as_bool[0, 10] = False  # ... that the mask hides
    expected = keypoint_metrics(pred, target, L15, mask=as_bool)
    for mask in (as_bool.astype(float), as_bool.astype(np.int64), torch.from_numpy(as_bool),
                 torch.from_numpy(as_bool.astype(np.float32)), as_bool.tolist(),
                 2 * as_bool.astype(np.int64), 2 * torch.from_numpy(as_bool.astype(np.uint8))):  # 2 is True, not 2 points
        assert keypoint_metrics(pred, target, L15, mask=mask) == expected
        assert [r["n"] for r in per_keypoint_table(pred, target, L15, mask=mask)] == [2] * 10 + [1] + [2] * 4


def test_bad_input_messages_name_the_culprit():
    pred, target = two_faces()
    with pytest.raises(ValueError, match=r"^pred must have shape \(N, 15, 2\) for layout kaggle15, got \(2, 14, 2\)"):
        keypoint_metrics(pred[:, :14], target, L15)
    with pytest.raises(ValueError, match=r"^target must have shape \(N, 15, 2\)"):
        keypoint_metrics(pred, target[..., :1], L15)
    with pytest.raises(ValueError, match=r"^mask must have shape \(2, 15\), got \(2, 14\)"):
        keypoint_metrics(pred, target, L15, mask=np.ones((2, 14), bool))
    target[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"^target has NaN coordinates: pass a mask \(N, K\)"):
        keypoint_metrics(pred, target, L15)
    with pytest.raises(ValueError, match=r"^no image has a present keypoint: nothing to evaluate$"):
        keypoint_metrics(pred, target, L15, mask=np.zeros((2, 15), bool))


def test_mismatched_counts_and_a_point_present_in_one_image_only():
    pred, target = two_faces()
    with pytest.raises(ValueError, match=r"^pred \(1, 15, 2\) and target \(2, 15, 2\) differ in shape$"):
        keypoint_metrics(pred[:1], target, L15)
    mask = np.ones((2, 15), bool)
    mask[1, 10] = False  # nose tip present in image 0 only: its median is that one error
    rows = per_keypoint_table(pred, target, L15, mask=mask)
    assert rows[10]["n"] == 1 and rows[10]["median_px"] == pytest.approx(0.1 * 48)


# ---- per-region table -------------------------------------------------------------------------------

# Five points: 0 and 1 are the outer eye corners (the "io" reference), 4 is never present.
REGIONS5 = Layout("five", ("a", "b", "c", "d", "e"), ((0, 1),),
                  regions={"eyes": (0, 1), "rest": (2, 3), "gone": (4,)}, references={"io": ((0,), (1,))})


def region_case():
    """Three images; each present point is off by a hand-set distance along x. Image 0's reference
    distance is 1, image 1's is 2, image 2 lacks point 0 so its reference is undefined. Missing points
    have NaN targets and predictions 9 units away, which must not leak into any number."""
    target = np.zeros((3, 5, 2))
    target[:, :4] = [[0.5, 0], [-0.5, 0], [0, 0.3], [0, -0.3]]
    target[1, :2] = [[1, 0], [-1, 0]]
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0]], bool)
    off = np.array([[0, 0.2, 0.1, 0.3, 0], [0.8, 0, 0.6, 0, 0], [0, 0.5, 0.6, 0.1, 0]])
    pred = target.copy()
    pred[..., 0] += np.where(mask, off, 9.0)
    target[~mask] = np.nan
    return pred, target, mask


def test_per_region_table_hand_example_with_mask():
    """eyes: errors 0.2 | 0.8 | 0.5 over 2 | 2 | 1 points -> mean_px 48 * 1.5 / 5, nme (0.2/2/1 + 0.8/2/2) / 2.
    rest: 0.4 | 0.6 | 0.7 over 2 | 1 | 2 -> 48 * 1.7 / 5, nme (0.4/2/1 + 0.6/1/2) / 2 (image 2 has no
    reference). all: 0.6 | 1.4 | 1.2 over 4 | 3 | 3 -> 48 * 3.2 / 10, nme (0.6/4/1 + 1.4/3/2) / 2.
    gone: no present point anywhere -> NaN for both, quietly."""
    pred, target, mask = region_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = per_region_table(pred, target, REGIONS5, mask=mask.tolist())
    assert [(r["region"], r["points"]) for r in rows] == [("eyes", 2), ("rest", 2), ("gone", 1), ("all", 5)]
    assert [sorted(r) for r in rows] == [["mean_px", "nme_io", "points", "region"]] * 4
    eyes, rest, gone, every = rows
    np.testing.assert_allclose([eyes["mean_px"], eyes["nme_io"]], [48 * 1.5 / 5, 0.15])
    np.testing.assert_allclose([rest["mean_px"], rest["nme_io"]], [48 * 1.7 / 5, 0.25])
    np.testing.assert_allclose([every["mean_px"], every["nme_io"]], [48 * 3.2 / 10, (0.15 + 1.4 / 6) / 2])
    assert math.isnan(gone["mean_px"]) and math.isnan(gone["nme_io"])
    assert all(type(v) is float for r in rows for v in (r["mean_px"], r["nme_io"]))
    # the same through torch tensors, and per_image_nme agrees with the "all" row image by image
    again = per_region_table(torch.from_numpy(pred), torch.from_numpy(target), REGIONS5, mask=torch.from_numpy(mask))
    assert [(r["region"], r["points"]) for r in again] == [(r["region"], r["points"]) for r in rows]
    np.testing.assert_array_equal([[r["mean_px"], r["nme_io"]] for r in again],
                                  [[r["mean_px"], r["nme_io"]] for r in rows])
    np.testing.assert_allclose(np.nanmean(per_image_nme(pred, target, REGIONS5, mask=mask)), every["nme_io"])


def test_per_region_table_without_regions_or_references():
    """A layout with neither regions nor NME references: one "all" row, its nme_io NaN, no warning."""
    plain = Layout("plain", ("p", "q"), ())
    target = np.array([[[0.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    pred = target + [[[0.3, 0.4], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.1]]]  # errors 0.5, 0, 0, 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = per_region_table(pred, target, plain)
    assert len(rows) == 1 and rows[0]["region"] == "all" and rows[0]["points"] == 2
    np.testing.assert_allclose(rows[0]["mean_px"], 48 * 0.6 / 4)
    assert math.isnan(rows[0]["nme_io"])
    with pytest.raises(ValueError, match=r"^pred must have shape \(N, 2, 2\) for layout plain"):
        per_region_table(pred[:, :1], target, plain)
