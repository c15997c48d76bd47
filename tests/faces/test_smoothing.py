"""One-Euro filter: checked against the plain exponential smoother it reduces to, and on jitter and lag."""

import math

import numpy as np
import pytest

from kplab.faces.inference.smoothing import OneEuroFilter, smooth_sequence

FPS = 30.0


def jitter(track: np.ndarray) -> float:
    """RMS frame-to-frame movement of a (T, ...) track."""
    return float(np.sqrt(np.mean(np.diff(track, axis=0) ** 2)))


def test_beta_zero_is_the_exponential_smoother_with_the_cutoff_formula():
    # Independent reference: y_t = y_{t-1} + a (x_t - y_{t-1}), a = 1 / (1 + fps / (2 pi f_c)).
    x = np.random.default_rng(0).normal(size=50)
    a = 1.0 / (1.0 + FPS / (2 * math.pi * 2.0))
    expected = [x[0]]
    for v in x[1:]:
        expected.append(expected[-1] + a * (v - expected[-1]))
    got = smooth_sequence(x, FPS, min_cutoff=2.0, beta=0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_static_noisy_points_lose_most_of_their_jitter_and_keep_their_place():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 200, size=(15, 2))
    noisy = truth + rng.normal(0, 1.0, size=(300, 15, 2))  # (T, K, 2): 1 px noise per frame
    smooth = smooth_sequence(noisy, FPS, min_cutoff=1.0, beta=0.05)
    assert jitter(smooth) < 0.35 * jitter(noisy)
    # After the start-up, the filtered points sit closer to the truth than the raw ones.
    assert np.abs(smooth[60:] - truth).mean() < 0.6 * np.abs(noisy[60:] - truth).mean()


def test_beta_cuts_the_lag_on_a_moving_point():
    t = np.arange(120) / FPS
    ramp = 300.0 * t  # 300 px/s, like a head turning across a frame
    lag = {beta: float(np.mean(ramp[60:] - smooth_sequence(ramp, FPS, 1.0, beta)[60:])) for beta in (0.0, 0.05)}
    assert lag[0.0] > 30.0  # a 1 Hz smoother trails a fast point by tens of pixels ...
    assert lag[0.05] < 0.25 * lag[0.0]  # ... the speed-adaptive cutoff keeps up


def test_filtering_an_array_equals_filtering_each_coordinate_alone():
    rng = np.random.default_rng(2)
    seq = rng.normal(size=(40, 3, 2)).cumsum(0)  # (T, K, 2) random walks
    whole = smooth_sequence(seq, FPS, 0.5, 0.3)
    for k in range(3):
        for c in range(2):
            np.testing.assert_allclose(whole[:, k, c], smooth_sequence(seq[:, k, c], FPS, 0.5, 0.3), rtol=1e-12)


def test_constant_signal_passes_unchanged_and_bad_use_is_refused():
    f = OneEuroFilter()
    for i in range(5):
        np.testing.assert_array_equal(f(np.full((15, 2), 7.5), i / FPS), 7.5)
    with pytest.raises(ValueError, match="time must increase"):
        f(np.zeros((15, 2)), 0.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros((14, 2)), 1.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)


# ---------------------------------------------- the defaults on each kind of motion, against known truth

T_FRAMES, START = 240, 30  # 8 s at 30 fps; errors counted after the first second


def track_error(kind: str, sigma: float, seed: int = 0, **settings) -> tuple[float, float]:
    """(RMS error of the raw track, of the smoothed track) against the truth, in px, for 15 points
    moving as `kind` with Gaussian noise `sigma` px per coordinate and frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(T_FRAMES) / FPS
    base = rng.uniform(50, 150, (15, 2))
    if kind == "rest":
        offset = np.zeros((T_FRAMES, 2))
    elif kind.startswith("drift"):  # steady move at the given px/s, mostly sideways
        offset = t[:, None] * float(kind.split()[1]) * np.array([1.0, 0.4]) / np.hypot(1.0, 0.4)
    else:  # hand-held camera shake: about 2 px at 1.5-4.5 Hz
        ph = rng.uniform(0, 2 * np.pi, 4)
        offset = 2.0 * np.stack([np.sin(2 * np.pi * 2.0 * t + ph[0]) + 0.5 * np.sin(2 * np.pi * 4.5 * t + ph[1]),
                                 np.sin(2 * np.pi * 1.5 * t + ph[2]) + 0.5 * np.sin(2 * np.pi * 3.5 * t + ph[3])], -1)
    truth = base + offset[:, None, :]  # (T, 15, 2)
    noisy = truth + rng.normal(0, sigma, truth.shape)
    smooth = smooth_sequence(noisy, FPS, **settings)
    rms = lambda x: float(np.sqrt(np.mean(x[START:] ** 2)))  # noqa: E731
    return rms(noisy - truth), rms(smooth - truth)


@pytest.mark.parametrize("sigma, at_most", [(0.2, 0.93), (0.5, 0.98)])
def test_defaults_at_rest_cut_the_error(sigma, at_most):
    # Modest by design: bench/smoothing_motion.py measured x0.92 (0.2 px noise) and x0.97 (0.5 px).
    raw, smooth = track_error("rest", sigma)
    assert smooth < at_most * raw


@pytest.mark.parametrize("kind", ["drift 3", "drift 10", "drift 30", "drift 100"])
@pytest.mark.parametrize("sigma", [0.2, 0.5, 1.0])
def test_defaults_never_make_a_drifting_face_worse(kind, sigma):
    raw, smooth = track_error(kind, sigma)
    assert smooth <= raw, f"{kind} px/s, noise {sigma} px: smoothed {smooth:.3f} px > raw {raw:.3f} px"


@pytest.mark.parametrize("sigma", [0.2, 0.5, 1.0])
def test_defaults_never_make_a_shaking_face_worse(sigma):
    raw, smooth = track_error("shake", sigma)
    assert smooth <= raw, f"shake, noise {sigma} px: smoothed {smooth:.3f} px > raw {raw:.3f} px"


def test_a_slow_low_cutoff_filter_fails_these_checks():
    # The old defaults (1 Hz, beta 0.05, d_cutoff 1 Hz): 5x less jitter at rest, but on a 10 px/s drift
    # the error more than doubles and on a shake it grows 5x; the checks above would catch them.
    old = dict(min_cutoff=1.0, beta=0.05, d_cutoff=1.0)
    raw, smooth = track_error("drift 10", 0.2, **old)
    assert smooth > 2 * raw
    raw, smooth = track_error("shake", 0.2, **old)
    assert smooth > 4 * raw
