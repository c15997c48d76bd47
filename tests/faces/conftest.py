"""Fixtures for the photo / video / export tests: a small untrained model and a face the detector finds."""

import cv2
import numpy as np
import pytest
import torch

from kplab.faces.training.layout import PIXEL_CENTRE


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A small model with seeded random weights and a plausible mean shape (synthetic faces' mean):
    real files through the real loading code, for tests of plumbing rather than accuracy."""
    from kplab.faces.training.model import ModelConfig, build_model, save_model
    from kplab.faces.training.synthetic import synthetic_faces

    torch.manual_seed(0)
    model = build_model(ModelConfig(widths=(4, 8, 16, 32), blocks=(0, 0, 0, 0), head_width=4, heatmap_stride=8))
    mean_shape = synthetic_faces(40, seed=0).keypoints.mean(0).round(3).tolist()
    out = tmp_path_factory.mktemp("tiny_model")
    save_model(out, model.eval(), {"mean_shape": mean_shape})
    return out


@pytest.fixture(scope="session")
def detectable_face():
    """(grey canvas (200, 240) uint8, keypoints (K, 2) in canvas pixels) of a synthetic face that the
    Haar detector finds: the first of a fixed sequence of synthetic faces it finds at 2x."""
    from kplab.faces.inference.detect import HaarFaceDetector
    from kplab.faces.training.synthetic import synthetic_faces

    faces = synthetic_faces(20, seed=0)
    detector = HaarFaceDetector()
    for image, points in zip(faces.images, faces.keypoints):
        up = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)  # (192, 192)
        canvas = np.full((200, 240), int(np.median(image[:, 0])), np.uint8)
        x, y = 30, 4
        canvas[y:y + 192, x:x + 192] = up
        # Integer upscaling maps pixel edges e -> 2 e; then shift by the paste offset.
        placed = (points + 0.5 - PIXEL_CENTRE) * 2 + (x, y) - 0.5 + PIXEL_CENTRE
        if len(detector.detect(canvas)) == 1:
            return canvas, placed
    pytest.fail("no synthetic face in the fixed sequence is detectable")
