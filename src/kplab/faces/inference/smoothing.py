"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): less jitter at rest, little lag in motion.

Each coordinate is an exponential smoother whose cutoff frequency rises with the signal's speed:

    alpha(f_c, dt) = 1 / (1 + tau / dt),        tau = 1 / (2 pi f_c)
    dx_t   = (x_t - x^_{t-1}) / dt
    dx^_t  = dx^_{t-1} + alpha(d_cutoff, dt) (dx_t - dx^_{t-1})        (smoothed speed)
    f_c    = min_cutoff + beta |dx^_t|
    x^_t   = x^_{t-1} + alpha(f_c, dt) (x_t - x^_{t-1})

`min_cutoff` (Hz) sets the smoothing at rest: lower removes more jitter. `beta` (per unit of speed,
here 1 / (px/s)) sets how quickly the cutoff opens up when the point moves: higher gives less lag.
Everything is elementwise, so one filter smooths all keypoints of a face, (K, 2), at once.
"""

from __future__ import annotations

import math

import numpy as np

# Chosen on point tracks with known truth (bench/smoothing_motion.py --grid, README): among the settings
# that never make a moving face (drift, pan, camera shake) worse than no smoothing at 0.2-1 px of noise,
# the one that cuts rest jitter most. The lag on a steady move is about 1 / (2 pi beta) px, so keeping
# it under the model's own 0.2 px noise takes beta near 10; d_cutoff 3 Hz lets the speed estimate
# follow a shaking camera (1 Hz averaged the shake's speed away and smoothed the shake itself).
DEFAULT_MIN_CUTOFF = 1.0
DEFAULT_BETA = 10.0
DEFAULT_D_CUTOFF = 3.0


def smoothing_factor(cutoff, dt: float):
    """alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi cutoff); elementwise in `cutoff`."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One-Euro filter: min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None   # last filtered value
        self._dx: np.ndarray | None = None  # last filtered speed
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x, t: float) -> np.ndarray:
        """Filter the sample x (any shape, fixed across calls) taken at time t seconds."""
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"One-Euro filter: sample shape {x.shape} differs from {self._x.shape}")
        dt = t - self._t
        if dt <= 0:
            raise ValueError(f"One-Euro filter: time must increase (got {t} after {self._t})")
        speed = (x - self._x) / dt
        self._dx = self._dx + smoothing_factor(self.d_cutoff, dt) * (speed - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + smoothing_factor(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()


def smooth_sequence(samples, fps: float, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                    d_cutoff: float = DEFAULT_D_CUTOFF) -> np.ndarray:
    """Filter a whole sequence (T, ...) sampled at `fps` frames per second; returns (T, ...)."""
    f = OneEuroFilter(min_cutoff, beta, d_cutoff)
    return np.stack([f(x, i / fps) for i, x in enumerate(np.asarray(samples, np.float64))])
