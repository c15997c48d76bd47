"""One-Euro filter: checked against the plain exponential smoother it reduces to, and on jitter and lag."""

import math

import numpy as np
import pytest

from kplab.faces.smoothing import OneEuroFilter, smooth_sequence

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
