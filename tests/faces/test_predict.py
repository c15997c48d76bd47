"""Predictor and `kplab predict`: real photos with the shipped model, batching, the Python API."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from kplab.cli import main
from kplab.errors import CheckpointError
from kplab.faces.training.layout import KAGGLE15, PIXEL_CENTRE, to_pixels
from kplab.faces.training.images import read_image
from kplab.faces.training.metrics import per_image_nme
from kplab.faces.training.model import load_model
from kplab.faces.inference.predict import Predictor, resolve_model


def read_truth(folder):
    with open(folder / "keypoints.csv", newline="") as f:
        return {r["file"]: np.array([float(r[c]) for c in KAGGLE15.csv_columns()]).reshape(-1, 2)
                for r in csv.DictReader(f)}


def match(faces, truth):
    """The face whose box holds the true eyes-and-mouth centre (largest if several), or None."""
    centre = truth[[0, 1, 11, 12]].mean(0)
    inside = [f for f in faces if f["box"][0] <= centre[0] <= f["box"][2] and f["box"][1] <= centre[1] <= f["box"][3]]
    return max(inside, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]), default=None)


def photo_scores(records, truth):
    """(number of photos with a matched face, mean NME_io over them) from face records."""
    by_file = {}
    for r in records:
        by_file.setdefault(r["file"], []).append(r)
    pred, target = [], []
    for name, points in truth.items():
        face = match(by_file.get(name, []), points)
        if face is not None:
            pred.append([face["keypoints"][n] for n in KAGGLE15.names])
            target.append(points)
    nme = per_image_nme(np.array(pred), np.array(target), KAGGLE15, "io")
    return len(pred), float(np.mean(nme))


@pytest.mark.real
def test_default_model_on_40_real_photos_finds_the_faces_and_places_the_points(shared_data, tmp_path):
    folder = shared_data / "faces" / "photos"
    truth = read_truth(folder)
    result = CliRunner().invoke(main, ["predict", "default", str(folder), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    for r in records:
        r["file"] = r["file"].rsplit("/", 1)[-1]
    found, nme = photo_scores(records, truth)
    print(f"\n40 photos, default model: faces found {found}, mean NME_io {100 * nme:.2f}%")
    assert found >= 39  # 40 here
    # Measured 3.45 % here (9 starts, 3 passes; 3.62 % with the old single 2-pass framing, where the
    # soft-argmax grid shifted by half a pixel gave 3.86 %): room for another machine's float
    # rounding, none for a half-pixel bug.
    assert nme <= 0.0375
    assert len(list((tmp_path / "annotated").iterdir())) == len(truth)


@pytest.mark.real
def test_detector_scores_put_every_false_detection_below_every_real_face(shared_data, tmp_path):
    folder = shared_data / "faces" / "photos"
    truth = read_truth(folder)
    predictor = Predictor("default")
    real, false = [], []
    for name, points in truth.items():
        faces = [f.to_dict() for f in predictor.predict(folder / name)]
        face = match(faces, points)
        real.append(face["score"])
        false += [f["score"] for f in faces if f is not face]
    print(f"\ndetector scores: real faces >= {min(real):.2f}, false detections {sorted(false)}")
    assert false and max(false) < min(real)
    # 1.5 cuts 1.7 % of faces15's training faces (HaarFaceDetector.detect_with_scores); here it keeps
    # each photo's face and nothing else.
    result = CliRunner().invoke(main, ["predict", "default", str(folder), "--min-score", "1.5", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert sorted(r["file"].rsplit("/", 1)[-1] for r in rows) == sorted(truth)
    assert min(float(r["score"]) for r in rows) >= 1.5


@pytest.mark.real
def test_second_framing_pass_beats_the_detector_box_alone(shared_data):
    folder = shared_data / "faces" / "photos"
    truth = read_truth(folder)
    paths = [folder / name for name in truth]
    scores = {}
    for passes in (1, 2):
        predictor = Predictor("default", passes=passes, starts=1)
        records = [{"file": r.source.rsplit("/", 1)[-1], **f.to_dict()}
                   for r in predictor.predict_files(paths) for f in r.faces]
        scores[passes] = photo_scores(records, truth)[1]
    print(f"\nmean NME_io: 1 pass {100 * scores[1]:.2f}%, 2 passes {100 * scores[2]:.2f}%")
    assert scores[2] < scores[1]


def test_a_folder_of_1000_crops_is_predicted_in_batches(tiny_model_dir, tmp_path):
    # Smooth random blobs rather than white noise, so crops differ in ways the model responds to.
    coarse = torch.rand(1000, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    smooth = torch.nn.functional.interpolate(coarse, size=(96, 96), mode="bilinear", align_corners=False)
    crops = (smooth[:, 0] * 255).round().to(torch.uint8).numpy()  # (1000, 96, 96)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, crop in enumerate(crops):
        cv2.imwrite(str(folder / f"{i:04d}.png"), crop)
    predictor = Predictor(tiny_model_dir, detect=False, batch_size=256)
    results = list(predictor.predict_files(sorted(folder.iterdir())))
    assert len(results) == 1000 and all(len(r.faces) == 1 for r in results)
    assert predictor.forward_calls == 4  # ceil(1000 / 256) batches, not 1000 single forwards
    # Reference: the torch model called directly on the same pixels (a sample of them); a ready
    # crop maps 1:1 to pixels, and the results keep the files' order.
    pick = np.random.default_rng(0).choice(1000, 64, replace=False)
    model = load_model(tiny_model_dir)
    with torch.no_grad():
        expected = to_pixels(model(torch.from_numpy(crops[pick]).unsqueeze(1).float() / 255).view(64, -1, 2).numpy())
    got = np.stack([results[i].faces[0].keypoints for i in pick])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # The box is the whole crop: its outer pixel edges, in the keypoints' frame.
    np.testing.assert_allclose(results[0].faces[0].box, np.array([0, 0, 96, 96]) + PIXEL_CENTRE - 0.5)


def test_python_api_takes_paths_and_arrays_and_names_the_points(tiny_model_dir, detectable_face, tmp_path):
    grey, _ = detectable_face
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), grey)
    predictor = Predictor(tiny_model_dir)
    from_path = predictor.predict(path)
    from_grey = predictor.predict(grey)
    from_rgb = predictor.predict(np.repeat(grey[..., None], 3, axis=2))
    from_float = predictor.predict(grey.astype(np.float32) / 255)
    assert len(from_path) == 1
    for other in (from_grey, from_rgb, from_float):
        np.testing.assert_allclose(other[0].keypoints, from_path[0].keypoints, atol=1e-6)
    face = from_path[0]
    assert face["nose_tip"] == tuple(face.keypoints[KAGGLE15.index("nose_tip")])
    record = face.to_dict()
    assert list(record["keypoints"]) == list(KAGGLE15.names) and len(record["box"]) == 4
    # four pictures, three framing passes each, then two passes that test the fits (the framings of this
    # barely trained model never agree): every pass is one model call for all of a picture's crops
    assert predictor.forward_calls == 4 * (3 + 2)


def test_csv_rows_carry_the_json_records_and_ready_crops_have_no_score(tiny_model_dir, detectable_face, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.png"), detectable_face[0])
    out = {}
    for args in ([], ["--no-detect"]):
        for fmt in ("json", "csv"):
            result = CliRunner().invoke(main, ["predict", str(tiny_model_dir), str(folder), "--format", fmt, *args])
            assert result.exit_code == 0, result.output
            out[fmt, bool(args)] = result.stdout
    for no_detect in (False, True):
        record = json.loads(out["json", no_detect])
        row = next(csv.DictReader(out["csv", no_detect].splitlines()))
        columns = ["file", "frame", "face", "x0", "y0", "x1", "y1", "score", "quality"] + [
            f"{n}_{axis}" for n in KAGGLE15.names for axis in ("x", "y")]
        assert list(row) == columns and row["file"] == record["file"] and row["frame"] == ""
        assert [float(row[c]) for c in ("x0", "y0", "x1", "y1")] == record["box"]
        assert [[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for n in KAGGLE15.names] == list(
            record["keypoints"].values())
        if no_detect:
            assert record["score"] is None and row["score"] == ""
            assert record["quality"] is None and row["quality"] == ""
        else:
            assert record["score"] > 0 and float(row["score"]) == record["score"]
            assert 0 <= record["quality"] <= 1 and float(row["quality"]) == record["quality"]


def test_min_score_drops_detections_scored_below_it(tiny_model_dir, detectable_face):
    from kplab.faces.inference.detect import HaarFaceDetector

    grey, _ = detectable_face
    boxes, scores = HaarFaceDetector().detect_with_scores(grey)
    (face,) = Predictor(tiny_model_dir).predict(grey)
    assert face.score == scores[0] > 0
    assert len(Predictor(tiny_model_dir, min_score=scores[0]).predict(grey)) == 1  # the bound is inclusive
    assert Predictor(tiny_model_dir, min_score=scores[0] + 1e-6).predict(grey) == []


def test_model_arguments_resolve_or_say_what_is_missing(tmp_path):
    with pytest.raises(CheckpointError, match="nope"):
        resolve_model(tmp_path / "nope")
    path = resolve_model("default")  # the package ships it
    assert path.parts[-2:] == ("models", "faces-default") and (path / "model.json").is_file()


def test_agreeing_fits_keep_the_framings_that_found_the_same_face():
    from kplab.faces.inference.predict import AGREEMENT, agreeing_fits

    eyes_mouth = np.array([[60.0, 40.0], [30.0, 40.0], [45.0, 70.0]])  # eye distance 30 px
    fits = np.repeat(eyes_mouth[None, None], 5, axis=1)  # (1, 5, 3, 2): five framings, one face
    fits[0, 1] += (0.6, 0.0)  # 2 % of the eye distance
    fits[0, 3] += (0.0, 30.0)  # two framings that wandered off, in different directions
    fits[0, 4] += (9.0, 12.0)  # 15 px = 50 %
    kept, disagreement = agreeing_fits(fits)
    assert kept.tolist() == [[True, True, True, False, False]]
    # the centre is fit 0 (first of those three with the most agreeing fits); distances from it:
    # 0, 0.02, 0, 1.0, 0.5 -> median 0.02
    np.testing.assert_allclose(disagreement, [0.6 / 30])
    fits[0, 1] += (1.2 * AGREEMENT * 30 - 0.6, 0.0)  # just past the agreement radius of fits 0 and 2
    assert agreeing_fits(fits)[0].tolist() == [[True, False, True, False, False]]
    # a minority that agrees loses to a majority that agrees, wherever the median falls
    fits = np.repeat(eyes_mouth[None, None], 5, axis=1)
    fits[0, :2] += (15.0, 0.0)
    assert agreeing_fits(fits)[0].tolist() == [[False, False, True, True, True]]


def test_when_no_framings_agree_the_fit_that_settled_is_kept():
    from kplab.faces.inference.predict import agreeing_fits

    eyes_mouth = np.array([[60.0, 40.0], [30.0, 40.0], [45.0, 70.0]])  # eye distance 30 px
    fits = eyes_mouth[None, None] + np.array([0.0, 20.0, 40.0])[None, :, None, None]  # 3 fits, 20 px apart
    previous = fits + np.array([3.0, 0.3, 6.0])[None, :, None, None]  # fit 1 moved least in its last pass
    kept, _ = agreeing_fits(fits, previous)
    assert kept.tolist() == [[False, True, False]]
    assert agreeing_fits(fits)[0].tolist() == [[True, False, False]]  # without the last moves: the first
    # support still comes first: two agreeing fits beat a lone settled one
    fits[0, 2] = fits[0, 0] + 0.5
    assert agreeing_fits(fits, previous)[0].tolist() == [[True, False, True]]


def test_fit_quality_falls_from_one_to_zero_over_half_an_eye_distance():
    from kplab.faces.inference.predict import fit_quality

    np.testing.assert_allclose(fit_quality([0.0, 0.1, 0.25, 0.5, 2.0]), [1.0, 0.8, 0.5, 0.0, 0.0])


def test_start_boxes_move_and_scale_about_the_centre():
    from kplab.faces.inference.predict import _start_boxes

    box = np.array([[10.0, 20.0, 110.0, 220.0]])  # 100 x 200
    starts = np.array([[0.0, 0.0, 1.0], [0.1, -0.2, 1.0], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(_start_boxes(box, starts), [[10, 20, 110, 220], [20, -20, 120, 180],
                                                           [35, 70, 85, 170]])


@pytest.mark.real
def test_quality_separates_faces_framed_off_the_face_from_good_fits(shared_data):
    """Boxes moved 1 to 1.5 box widths off the face (onto background, shoulder or hair) mostly give fits
    that miss the face and whose framings disagree; the detector's own boxes give good fits whose
    framings agree (68-point model, 10 photos). Judged by each fit's real error, not by where its box was."""
    from kplab.faces.training.annotations import read_photo_csv
    from kplab.faces.training.images import read_image
    from kplab.faces.training.layout import IBUG68
    from kplab.faces.training.metrics import per_image_nme

    folder = shared_data / "faces" / "photos"
    predictor = Predictor("faces68")
    annotations, _ = read_photo_csv(folder / "keypoints68.csv")
    good, failed = [], []
    for a in annotations[::4]:
        image = read_image(a.photo)
        centre = a.points.mean(0)
        face = next(f for f in predictor.predict_images([image])[0]
                    if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3])
        width = face.box[2] - face.box[0]
        off = [face.box + np.array([dx, dy, dx, dy]) * width for dx, dy in ((1, 0), (-1, 0), (0, 1), (1.5, 0))]
        for fit in [face] + predictor.predict_boxes(image, np.array(off), order="bgr"):
            nme = per_image_nme(fit.keypoints[None], a.points[None], IBUG68)[0]
            (good if nme < 0.07 else failed if nme > 0.10 else []).append(fit.quality)
    assert len(good) >= 8 and len(failed) >= 20
    assert min(good) > 0.7 and np.mean(failed) < 0.3 and np.mean(np.array(failed) > 0.7) < 0.05, (good, failed)
    kept = Predictor("faces68", min_quality=0.7).predict_boxes(image, np.array([face.box, *off]), order="bgr")
    assert all(per_image_nme(f.keypoints[None], a.points[None], IBUG68)[0] < 0.10 for f in kept)


@pytest.mark.real
def test_shipped_68_point_model_beats_dlib_on_the_40_photos(shared_data):
    """dlib's 68-point predictor scores NME_io 6.1 % on these photos (5.3 % shifted to 1-based pixels;
    bench/faces_vs_dlib.py); the shipped faces68 measured 4.75 %."""
    from kplab.faces.training.annotations import read_photo_csv
    from kplab.faces.training.layout import IBUG68

    annotations, _ = read_photo_csv(shared_data / "faces" / "photos" / "keypoints68.csv")
    predictor = Predictor("faces68")
    pred, target = [], []
    for a, faces in zip(annotations, predictor.predict_images([read_image(a.photo) for a in annotations])):
        centre = a.points.mean(0)
        inside = [f for f in faces if f.box[0] <= centre[0] <= f.box[2] and f.box[1] <= centre[1] <= f.box[3]]
        if inside:
            pred.append(inside[0].keypoints), target.append(a.points)
    nme = per_image_nme(np.array(pred), np.array(target), IBUG68, "io")
    assert len(pred) >= 38 and nme.mean() < 0.05


@pytest.mark.real
@pytest.mark.parametrize("photo, shift, scale", [("Celso_Lafer_20.jpg", (0.25, -0.24), 1.16),
                                                 ("Tom_Osborne_31.jpg", (-0.23, 0.15), 1.0),
                                                 ("Lincoln_Chafee_52.jpg", (-0.23, -0.24), 0.85)])
def test_a_box_that_cuts_off_most_of_the_face_still_gets_the_face(shared_data, photo, shift, scale):
    """Detector boxes moved a quarter of their width diagonally: one of the nine framings lands on the face
    and the others wander off, each its own way. Which fit is the face is told by re-framing each one moved
    (the face draws the moved framings back); the face stays flagged by its scattered framings. With the
    first fit kept instead, these gave NME_io 82 %, 67 % and 58 % (bench/faces_photos.py's perturbed boxes)."""
    folder = shared_data / "faces" / "photos"
    truth = read_truth(folder)[photo]
    image = read_image(folder / photo)
    predictor = Predictor("default")
    detected = match([f.to_dict() for f in predictor.predict_images([image])[0]], truth)
    box = np.array(detected["box"])
    width = box[2] - box[0]
    centre = (box[:2] + box[2:]) / 2 + np.array(shift) * width
    moved = np.concatenate([centre - width * scale / 2, centre + width * scale / 2])
    face = predictor.predict_boxes(image, moved[None], order="bgr")[0]
    assert per_image_nme(face.keypoints[None], truth[None], KAGGLE15, "io")[0] < 0.10
    assert face.quality < 0.3


@pytest.mark.real
def test_a_coarser_detector_step_finds_the_same_faces_as_well_placed(shared_data):
    """--detect-step 1.2 searches about half the face sizes of 1.1 (about half the detection time here)."""
    folder = shared_data / "faces" / "photos"
    truth = read_truth(folder)
    images = [read_image(folder / name) for name in truth]
    scores = {}
    for step in (1.1, 1.2):
        faces = Predictor("default", starts=1, passes=2, detect_step=step).predict_images(images)
        records = [dict(f.to_dict(), file=name) for name, fs in zip(truth, faces) for f in fs]
        scores[step] = photo_scores(records, truth)
    assert scores[1.2][0] == scores[1.1][0] == 40
    assert abs(scores[1.2][1] - scores[1.1][1]) < 0.002, scores
