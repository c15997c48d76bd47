"""One-Euro settings on point tracks with known truth: rest, slow drift, fast pan and camera shake.

Every track is 15 points x 8 s at 30 fps; the "prediction" is the truth plus fresh Gaussian noise of
sigma px per coordinate and frame (the shipped model's frame-to-frame noise on a video was about
0.2 px; 0.5 and 1 px stand for harder footage). Prints, per setting, the RMS error against the truth
with and without smoothing (after a 1 s start-up) and the frame-to-frame jitter at rest, then a grid
search: the settings that never make a moving face worse, ranked by how much they cut rest jitter.

    python bench/smoothing_motion.py            # table for the defaults and the old defaults
    python bench/smoothing_motion.py --grid     # + the search the defaults came from
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from kplab.faces.inference.smoothing import DEFAULT_BETA, DEFAULT_D_CUTOFF, DEFAULT_MIN_CUTOFF, OneEuroFilter

FPS, SECONDS, WARMUP = 30.0, 8.0, 30
SIGMAS = (0.2, 0.5, 1.0)
SEEDS = (0, 1, 2)


def motion_tracks(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named true tracks (T, 15, 2) in pixels."""
    t = np.arange(int(SECONDS * FPS)) / FPS  # (T,)
    base = rng.uniform(50, 150, (15, 2))
    direction = np.array([1.0, 0.4]) / np.hypot(1.0, 0.4)
    ph = rng.uniform(0, 2 * np.pi, 4)
    # Hand-held camera shake: about 2 px at 1.5-4.5 Hz on each axis.
    shake = 2.0 * np.stack([np.sin(2 * np.pi * 2.0 * t + ph[0]) + 0.5 * np.sin(2 * np.pi * 4.5 * t + ph[1]),
                            np.sin(2 * np.pi * 1.5 * t + ph[2]) + 0.5 * np.sin(2 * np.pi * 3.5 * t + ph[3])], -1)
    tracks = {"rest": np.broadcast_to(base, (len(t), 15, 2))}
    for speed in (3, 10, 30):
        tracks[f"drift {speed} px/s"] = base + t[:, None, None] * speed * direction
    tracks["pan 100 px/s"] = base + t[:, None, None] * 100 * direction
    tracks["shake"] = base + shake[:, None, :]
    return tracks


def filtered(track: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    f = OneEuroFilter(min_cutoff, beta, d_cutoff)
    return np.stack([f(x, i / FPS) for i, x in enumerate(track)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)))


def measure(min_cutoff: float, beta: float, d_cutoff: float) -> dict[tuple[str, float], dict[str, float]]:
    """(motion, sigma) -> mean over seeds of raw/smoothed RMS error and raw/smoothed jitter (px)."""
    rows: dict[tuple[str, float], list[list[float]]] = {}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        for name, truth in motion_tracks(rng).items():
            for sigma in SIGMAS:
                noisy = truth + rng.normal(0, sigma, truth.shape)
                smooth = filtered(noisy, min_cutoff, beta, d_cutoff)
                err_raw, err_smooth = noisy[WARMUP:] - truth[WARMUP:], smooth[WARMUP:] - truth[WARMUP:]
                rows.setdefault((name, sigma), []).append(
                    [rms(err_raw), rms(err_smooth), rms(np.diff(err_raw, axis=0)), rms(np.diff(err_smooth, axis=0))])
    keys = ("err_raw", "err_smooth", "jitter_raw", "jitter_smooth")
    return {k: dict(zip(keys, np.mean(v, axis=0))) for k, v in rows.items()}


def print_table(title: str, setting: tuple[float, float, float]) -> None:
    print(f"\n{title}: min_cutoff {setting[0]:g} Hz, beta {setting[1]:g} s/px, d_cutoff {setting[2]:g} Hz")
    print(f"{'motion':<16}{'noise px':>9}{'error raw':>11}{'smoothed':>10}{'ratio':>7}{'jitter raw':>12}{'smoothed':>10}")
    for (name, sigma), r in measure(*setting).items():
        print(f"{name:<16}{sigma:>9.1f}{r['err_raw']:>11.3f}{r['err_smooth']:>10.3f}"
              f"{r['err_smooth'] / r['err_raw']:>7.2f}{r['jitter_raw']:>12.3f}{r['jitter_smooth']:>10.3f}")


def grid_search() -> None:
    print("\ngrid: worst moving error ratio (smoothed / raw, over every motion and noise level) and the rest")
    print("error and jitter ratios at noise 0.2 / 1.0 px; settings that never make a moving face worse first")
    results = []
    for setting in itertools.product((0.5, 1.0, 2.0, 4.0), (0.05, 1.0, 3.0, 5.0, 10.0, 20.0), (1.0, 3.0, 10.0)):
        m = measure(*setting)
        worst = max(r["err_smooth"] / r["err_raw"] for (name, _), r in m.items() if name != "rest")
        rest = [m[("rest", s)] for s in (0.2, 1.0)]
        results.append((worst > 1.0, rest[0]["jitter_smooth"] / rest[0]["jitter_raw"], worst, rest, setting))
    print(f"{'min_cutoff':>10}{'beta':>6}{'d_cutoff':>9}{'worst moving':>14}{'rest err':>14}{'rest jitter':>14}")
    for _, _, worst, rest, (mc, beta, dc) in sorted(results)[:25]:
        err = "/".join(f"{r['err_smooth'] / r['err_raw']:.2f}" for r in rest)
        jit = "/".join(f"{r['jitter_smooth'] / r['jitter_raw']:.2f}" for r in rest)
        print(f"{mc:>10g}{beta:>6g}{dc:>9g}{worst:>14.3f}{err:>14}{jit:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="store_true", help="also run the grid search")
    args = parser.parse_args()
    print_table("defaults", (DEFAULT_MIN_CUTOFF, DEFAULT_BETA, DEFAULT_D_CUTOFF))
    print_table("old defaults (before issue 14)", (1.0, 0.05, 1.0))
    if args.grid:
        grid_search()


if __name__ == "__main__":
    main()
