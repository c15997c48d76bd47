"""Our NumPy conv2d vs PyTorch's CPU conv2d on a 64x3x32x32 float32 batch (acceptance: within 10x).

    python bench/scratch_conv_speed.py [--threads 1] [--repeats 30]

Prints the median time per call (after warm-up) of forward and forward+backward for a few layer
shapes, the ratio ours / torch, and the largest output difference as a sanity check. Both libraries
get the same number of threads (BLAS for NumPy, intra-op for torch); the variables must be set
before NumPy loads, which is why the imports sit inside main().
"""

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from kplab.faces.inference.speed import median_seconds
    from kplab.scratch import Conv2d

    def median_ms(fn, repeats: int) -> float:
        return 1e3 * median_seconds(fn, repeats, warmup=1)

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, 3, 32, 32)).astype(np.float32)  # (64, 3, 32, 32)
    layers = [  # (label, Conv2d arguments)
        ("3->16, 3x3, pad 1", dict(in_channels=3, out_channels=16, kernel_size=3, padding=1)),
        ("3->32, 5x5, pad 2", dict(in_channels=3, out_channels=32, kernel_size=5, padding=2)),
        ("3->16, 3x3, stride 2", dict(in_channels=3, out_channels=16, kernel_size=3, stride=2, padding=1)),
    ]
    print(f"conv2d forward on {x.shape} float32, {args.threads} thread(s), median of {args.repeats}")
    header = f"{'layer':<22}{'ours ms':>9}{'torch ms':>10}{'ratio':>7}   {'fwd+bwd ours':>12}{'torch':>8}{'ratio':>7}   max |diff|"
    print(header)
    print("-" * len(header))
    for label, kwargs in layers:
        theirs = torch.nn.Conv2d(**kwargs)
        ours = Conv2d(**kwargs).load_torch(theirs)
        xt = torch.from_numpy(x)
        xt_grad = xt.clone().requires_grad_(True)
        with torch.no_grad():
            expected = theirs(xt).numpy()
        dy = np.ones_like(expected)
        dyt = torch.from_numpy(dy)

        def ours_train():
            ours.forward(x)
            ours.backward(dy)

        def torch_train():
            theirs(xt_grad).backward(dyt)

        def torch_forward():
            with torch.no_grad():
                theirs(xt)

        f_ours, f_torch = median_ms(lambda: ours.forward(x), args.repeats), median_ms(torch_forward, args.repeats)
        b_ours, b_torch = median_ms(ours_train, args.repeats), median_ms(torch_train, args.repeats)
        diff = float(np.abs(ours.forward(x) - expected).max())
        print(f"{label:<22}{f_ours:>9.2f}{f_torch:>10.2f}{f_ours / f_torch:>7.1f}   "
              f"{b_ours:>12.2f}{b_torch:>8.2f}{b_ours / b_torch:>7.1f}   {diff:.1e}")


if __name__ == "__main__":
    main()
