"""kplab's 68-point model against dlib's 68-point predictor on the same 40 photos, per region, and speed.

dlib runs as its users run it: its HOG frontal-face detector (upsampled once) and the
`shape_predictor_68_face_landmarks.dat` that the `face-recognition-models` package ships. kplab runs
`Predictor(MODEL)` (Haar detector, nine framings refined over three passes, ONNX Runtime). Each face is matched to the truth
by its box; NME_io is the mean point error over the outer-eye-corner distance (iBUG points 37 and 46,
1-based) of the truth, over the faces each tool found.

dlib counts pixels from 0, the photos' labels (and kplab) from 1: dlib's raw points sit about 1 px
up-left, so both forms are printed (raw, and shifted by +1 px in x and y).

Speed: the landmark stage alone on one thread, batch 1 (dlib's predictor on a found box; kplab's model on
one 96x96 crop in ONNX Runtime, float and, where the model ships one, its int8 file), median of
repeated calls after warm-up.

Setup (not part of `make test`): `.venv/bin/pip install dlib-bin face-recognition-models`
(dlib-bin is a prebuilt dlib; `pip install dlib` builds it from source, about 20 minutes here).
Usage: python bench/faces_vs_dlib.py [MODEL] [--photos DIR] [--fifteen MODEL15]
"""

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from faces_photos import matched_index, truth_table  # bench/ is on the path when this script runs

from kplab.faces.training.images import read_image
from kplab.faces.training.layout import HALF, IBUG68, KAGGLE15, convert_points
from kplab.faces.training.metrics import per_image_nme, per_region_table
from kplab.faces.inference.predict import Predictor, resolve_model
from kplab.faces.inference.speed import INT8_FILE, median_seconds

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("jaw", "brows", "nose", "eyes", "mouth", "all")


def dlib_model_file() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")  # not imported: it needs pkg_resources
    if spec is None:
        raise SystemExit("needs dlib and its model file: .venv/bin/pip install dlib-bin face-recognition-models")
    return Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


def run_dlib(photos: dict[str, np.ndarray], truth: dict[str, np.ndarray]):
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_file()))
    found, timed = {}, []
    for name, bgr in photos.items():
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        rects = list(detector(rgb, 1))
        boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], float) for r in rects]
        i = matched_index(boxes, truth[name])
        if i is None:
            continue
        shape = predictor(rgb, rects[i])
        found[name] = np.array([(p.x, p.y) for p in shape.parts()], float)  # (68, 2), dlib's 0-based pixels
        timed.append((rgb, rects[i]))
    ms = 1000 * median_seconds(lambda: [predictor(im, r) for im, r in timed], repeats=20) / len(timed)
    return found, ms


def run_kplab(model: str, photos: dict[str, np.ndarray], truth: dict[str, np.ndarray], layout=None):
    predictor = Predictor(model, backend="onnx", threads=1, layout=layout)
    found = {}
    for name, faces in zip(photos, predictor.predict_images(list(photos.values()))):
        i = matched_index([f.box for f in faces], truth[name])
        if i is not None:
            found[name] = faces[i].keypoints
    crop = np.random.default_rng(0).random((1, 1, 96, 96), dtype=np.float32)
    ms = 1000 * median_seconds(lambda: predictor.module.run(crop), repeats=500)
    return found, ms


def region_nme(found: dict[str, np.ndarray], truth: dict[str, np.ndarray], layout) -> dict[str, float]:
    """Mean NME_io (%) per region over the found faces (points divided by HALF: NME is unit-free)."""
    names = list(found)
    pred = np.stack([found[n] for n in names]) / HALF
    target = np.stack([truth[n] for n in names]) / HALF
    return {r["region"]: 100 * r["nme_io"] for r in per_region_table(pred, target, layout)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="faces68")
    ap.add_argument("--photos", default=str(REPO.parent / "shared" / "data" / "faces" / "photos"))
    ap.add_argument("--fifteen", default="default", help="the 15-point model to compare the derived points with")
    args = ap.parse_args()
    folder = Path(args.photos)
    truth, truth15 = truth_table(folder, IBUG68), truth_table(folder, KAGGLE15)
    photos = {name: read_image(folder / name) for name in truth}

    dlib_found, dlib_ms = run_dlib(photos, truth)
    ours, ours_ms = run_kplab(args.model, photos, truth)
    int8_file = resolve_model(args.model) / INT8_FILE
    int8, int8_ms = run_kplab(int8_file, photos, truth) if int8_file.is_file() else ({}, None)
    rows = [("dlib 68 (raw, 0-based)", dlib_found),
            ("dlib 68 (+1 px: 1-based)", {n: p + 1.0 for n, p in dlib_found.items()}),
            (f"kplab {args.model}", ours)] + ([(f"kplab {args.model}, int8 ONNX", int8)] if int8 else [])
    print("40 photos, 68 points; NME_io % (outer eye corners) over the faces each tool found\n")
    print(f"{'tool':<26} {'found':>6} " + " ".join(f"{r:>6}" for r in REGIONS))
    for label, found in rows:
        nme = region_nme(found, truth, IBUG68)
        print(f"{label:<26} {len(found):>3}/40 " + " ".join(f"{nme[r]:>6.2f}" for r in REGIONS))
    common = sorted(set(dlib_found) & set(ours))
    both = {n: ours[n] for n in common}
    print(f"\non the {len(common)} faces both found: kplab {region_nme(both, truth, IBUG68)['all']:.2f} %, "
          f"dlib +1 px {region_nme({n: dlib_found[n] + 1.0 for n in common}, truth, IBUG68)['all']:.2f} %, "
          f"dlib raw {region_nme({n: dlib_found[n] for n in common}, truth, IBUG68)['all']:.2f} %")

    derived = {n: convert_points(p, IBUG68, KAGGLE15) for n, p in ours.items()}
    fifteen, _ = run_kplab(args.fifteen, photos, truth15)
    print("\n15 Kaggle points against photos/keypoints.csv (NME_io %, outer eye corners):")
    for label, found in ((f"{args.model}, derived 15", derived), (f"{args.fifteen} (15-point model)", fifteen)):
        names = list(found)
        nme = 100 * per_image_nme(np.stack([found[n] for n in names]), np.stack([truth15[n] for n in names]),
                                  KAGGLE15, "io")
        print(f"  {label:<30} {len(names):>3}/40  mean {nme.mean():.2f}  median {np.median(nme):.2f}  max {nme.max():.2f}")

    print(f"\nlandmarks alone, one thread, batch 1 (median): dlib shape predictor {dlib_ms:.3f} ms/face, "
          f"kplab ONNX Runtime {ours_ms:.3f} ms/face" + (f", int8 {int8_ms:.3f} ms/face" if int8_ms else ""))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
