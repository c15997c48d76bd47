"""Video through `kplab predict`: per-frame records, an annotated video, and --smooth against jitter."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from kplab.cli import main
from kplab.faces.inference.video import VideoWriter, read_frames, video_info

N_FRAMES, FPS = 16, 25.0


@pytest.fixture(scope="module")
def noisy_static_video(detectable_face, tmp_path_factory):
    """A video of one still face with fresh pixel noise in every frame, written with OpenCV."""
    grey, _ = detectable_face
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    rng = np.random.default_rng(0)
    h, w = grey.shape
    with VideoWriter(path, FPS, w, h) as writer:
        for _ in range(N_FRAMES):
            noisy = np.clip(grey + rng.normal(0, 8, grey.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR))
    return path


def run_predict(model_dir, video, out, *extra):
    result = CliRunner().invoke(main, ["predict", str(model_dir), str(video), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def track(records):
    """(frames, K, 2) keypoints of the one face per frame, in frame order."""
    by_frame = sorted(records, key=lambda r: r["frame"])
    return np.array([list(r["keypoints"].values()) for r in by_frame])


def test_video_gives_per_frame_records_an_annotated_video_and_smooth_cuts_jitter(
        tiny_model_dir, noisy_static_video, tmp_path):
    info = video_info(noisy_static_video)
    assert (info.width, info.height) == (240, 200) and info.fps == pytest.approx(FPS)
    records = run_predict(tiny_model_dir, noisy_static_video, tmp_path / "raw")
    frames = [r["frame"] for r in records]
    assert len(frames) == len(set(frames)) >= N_FRAMES - 2  # one face per frame (the detector may miss one or two)
    assert set(frames) <= set(range(N_FRAMES))
    assert all(r["file"] == str(noisy_static_video) and len(r["box"]) == 4 for r in records)
    out_frames = list(read_frames(tmp_path / "raw" / "annotated" / "clip.mp4"))
    assert len(out_frames) == N_FRAMES and out_frames[0].shape == (200, 240, 3)
    # The drawing is there: strongly red pixels (keypoints), which the grey input never has.
    reddish = (out_frames[frames[0]][..., 2].astype(int) - out_frames[frames[0]][..., 1]) > 80
    assert reddish.sum() > 10

    # --smooth on the same still face: the One-Euro filter removes most frame-to-frame movement. One
    # framing: this untrained model's nine framings never agree, and which fit the fit test keeps changes
    # with the noise (jumps of many pixels); the filter is what is tested here.
    raw = track(run_predict(tiny_model_dir, noisy_static_video, tmp_path / "raw1", "--starts", "1"))
    smooth = track(run_predict(tiny_model_dir, noisy_static_video, tmp_path / "smooth", "--smooth",
                               "--min-cutoff", "1.0", "--beta", "0.05", "--starts", "1"))
    assert raw.shape == smooth.shape
    jitter = {name: float(np.sqrt(np.mean(np.diff(t, axis=0) ** 2))) for name, t in (("raw", raw), ("smooth", smooth))}
    print(f"\nframe-to-frame jitter (RMS px): raw {jitter['raw']:.3f}, smoothed {jitter['smooth']:.3f}")
    assert jitter["raw"] > 0.01  # the noise does move the points ...
    assert jitter["smooth"] < 0.5 * jitter["raw"]  # ... and the filter removes most of that movement
    np.testing.assert_allclose(smooth[0], raw[0])  # the first frame passes unchanged
