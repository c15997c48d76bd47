"""Where the framing points sit inside OpenCV's Haar face box, measured on faces15 training crops.

Prints the HAAR_BOX_POINTS table that kplab/faces/detect.py uses for the first framing pass.
Usage: python bench/faces_detector_calibration.py [--data ../shared/data/faces/faces15.npz] [--n 1000]
"""

import argparse
from pathlib import Path

import numpy as np

from kplab.faces.inference.detect import HAAR_BOX_POINTS, HaarFaceDetector, calibrate_box_points
from kplab.faces.training.layout import KAGGLE15

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "faces" / "faces15.npz"))
    ap.add_argument("--n", type=int, default=1000, help="training crops to use (random, seed 0)")
    args = ap.parse_args()
    data = np.load(args.data)
    train = np.flatnonzero(data["split"] == "train")
    pick = np.random.default_rng(0).choice(train, min(args.n, len(train)), replace=False)
    table, found = calibrate_box_points(HaarFaceDetector(), data["images"][pick], data["keypoints"][pick],
                                        KAGGLE15)
    print(f"# {found} of {len(pick)} training crops gave a Haar box")
    print(f"{'point':<26} {'measured (u, v)':>18} {'in detect.py':>18}")
    for name, uv in table.items():
        print(f"{name:<26} {str(uv):>18} {str(HAAR_BOX_POINTS.get(name)):>18}")


if __name__ == "__main__":
    main()
