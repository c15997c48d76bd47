"""One 2x3 affine per sample moves both the pixels (grid_sample) and the points (matmul).

Coordinates. Everything here works in the normalised frame of `grid_sample(align_corners=False)`:
x runs across the width and y down the height, each from -1 to 1 over the image *extent*, so the
centre of pixel column j sits at g = (2j + 1)/W - 1. A matrix A = [M | t] (N, 2, 3) is a *forward*
map from input points to output points,

    p' = M p + t,

and `warp_images` samples the input at A^{-1}(q) for every output pixel centre q, so a feature at p
in the input lands at A(p) in the output. Because both use the same A, pixels and points cannot
disagree. Callers whose points live in another frame (faces use the I2DL frame) convert at their
boundary. Rotation and shear act on the normalised frame: they are rigid in pixels for square images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def compose_affine(rotation_deg, scale, shift, shear_deg) -> torch.Tensor:
    """Forward affines from per-sample parameters, about the image centre (the origin).

    A = T(shift) . R(rotation) . H(shear) . S(scale), i.e. scale first, then shear, rotate, shift:

        S = s I,   H = [[1, tan(phi)], [0, 1]],   R = [[cos a, -sin a], [sin a, cos a]],   t = shift.

    Positive angles turn +x towards +y, which is clockwise on screen because y points down.
    rotation_deg, scale, shear_deg: (N,) or scalars; shift: (N, 2) or (2,) in normalised units.
    Returns (N, 2, 3).
    """
    rotation_deg, scale, shear_deg = torch.broadcast_tensors(
        torch.as_tensor(rotation_deg), torch.as_tensor(scale), torch.as_tensor(shear_deg))
    dtype = torch.promote_types(rotation_deg.dtype, torch.float32)
    a = torch.deg2rad(rotation_deg.to(dtype)).reshape(-1)  # (N,)
    s = scale.to(dtype).reshape(-1)  # (N,)
    k = torch.tan(torch.deg2rad(shear_deg.to(dtype))).reshape(-1)  # (N,)
    cos, sin = torch.cos(a), torch.sin(a)
    # R @ H @ S written out: columns are R e_x * s and R (k e_x + e_y) * s.
    m = torch.stack([
        torch.stack([cos * s, (cos * k - sin) * s], -1),
        torch.stack([sin * s, (sin * k + cos) * s], -1),
    ], -2)  # (N, 2, 2)
    t = torch.as_tensor(shift, dtype=dtype, device=m.device).expand(m.shape[0], 2)  # (N, 2)
    return torch.cat([m, t.unsqueeze(-1)], -1)  # (N, 2, 3)


def random_affine(n: int, *, rotation_deg: float, scale: tuple[float, float], shift: float,
                  shear_deg: float, generator: torch.Generator, device=None,
                  dtype: torch.dtype = torch.float32, reframe: float = 1.0) -> torch.Tensor:
    """N random forward affines: each parameter uniform in its range, independently per sample.

    rotation in [-rotation_deg, rotation_deg], scale in [scale[0], scale[1]], shift per axis in
    [-shift, shift] (normalised units: 1 is half the image), shear in [-shear_deg, shear_deg].
    `reframe`: the probability that a sample takes its scale and shift draws; the others keep scale 1
    and shift 0 (the framing they came with) and are only turned and sheared.
    Draws happen on the generator's device in a fixed order whatever the ranges, so a seeded generator
    gives the same matrices on any output device. Returns (N, 2, 3).
    """
    def uniform(lo, hi, *shape):
        u = torch.rand(n, *shape, generator=generator, device=generator.device, dtype=torch.float64)
        return lo + (hi - lo) * u

    rot = uniform(-rotation_deg, rotation_deg)  # (N,)
    sc = uniform(scale[0], scale[1])  # (N,)
    sh = uniform(-shift, shift, 2)  # (N, 2)
    shr = uniform(-shear_deg, shear_deg)  # (N,)
    kept = uniform(0.0, 1.0) >= reframe  # (N,) framing left as it came
    sc = torch.where(kept, torch.ones_like(sc), sc)
    sh = torch.where(kept[:, None], torch.zeros_like(sh), sh)
    return compose_affine(rot, sc, sh, shr).to(device=device, dtype=dtype)


def hflip_affine(flip: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Mirror matrices: x -> -x where flip (N,) bool is True, identity elsewhere. (N, 2, 3)."""
    sign = 1.0 - 2.0 * flip.to(dtype)  # (N,)
    one, zero = torch.ones_like(sign), torch.zeros_like(sign)
    return torch.stack([torch.stack([sign, zero, zero], -1),
                        torch.stack([zero, one, zero], -1)], -2)  # (N, 2, 3)


def matmul_affine(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The affine that applies `inner` first, then `outer`: [Mo|to] . [Mi|ti] = [Mo Mi | Mo ti + to]."""
    m = outer[..., :2] @ inner[..., :2]  # (N, 2, 2)
    t = outer[..., :2] @ inner[..., 2:] + outer[..., 2:]  # (N, 2, 1)
    return torch.cat([m, t], -1)  # (N, 2, 3)


def invert_affine(A: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of 2x3 affines: [M|t]^-1 = [M^-1 | -M^-1 t], M^-1 = adj(M)/det(M).

    Raises ValueError if some M is singular (a zero scale), which a random augmentation never draws.
    """
    a, b, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]  # (N,)
    det = a * d - b * c  # (N,)
    if bool((det == 0).any()):
        raise ValueError("invert_affine: a matrix is singular (determinant 0)")
    m_inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
    t_inv = -(m_inv @ A[..., 2:])  # (N, 2, 1)
    return torch.cat([m_inv, t_inv], -1)  # (N, 2, 3)


def warp_images(images: torch.Tensor, A: torch.Tensor, *, padding_mode: str = "border",
                mode: str = "bilinear") -> torch.Tensor:
    """Resample images (N, C, H, W) so that input point p moves to A(p); same output size.

    grid_sample wants, for each output pixel, where to read in the input: that is A^{-1}.
    padding_mode "border" repeats edge pixels into the uncovered corners; "zeros" fills with 0.
    """
    if images.ndim != 4 or A.shape != (images.shape[0], 2, 3):
        raise ValueError(f"warp_images: need images (N, C, H, W) and A (N, 2, 3), got "
                         f"{tuple(images.shape)} and {tuple(A.shape)}")
    grid = sampling_grid(A.to(images.device), *images.shape[-2:], dtype=images.dtype)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def sampling_grid(A: torch.Tensor, height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """For each output pixel, where to read in the input for the forward affine A (N, 2, 3): the
    (N, H, W, 2) grid grid_sample takes (align_corners=False), which is A^{-1} at each pixel centre."""
    theta = invert_affine(A).to(dtype)  # (N, 2, 3) output -> input
    # Pixel centres in the grid frame, as affine_grid(align_corners=False) places them.
    xs = (2 * torch.arange(width, device=A.device, dtype=dtype) + 1) / width - 1  # (W,)
    ys = (2 * torch.arange(height, device=A.device, dtype=dtype) + 1) / height - 1  # (H,)
    # theta (x, y, 1) is an outer sum of a column term and a row term: one pass over the grid,
    # several times cheaper on CPU than affine_grid's batched matmul with an inner size of 3.
    along_x = xs[:, None] * theta[:, None, :, 0] + theta[:, None, :, 2]  # (N, W, 2)
    along_y = ys[:, None] * theta[:, None, :, 1]  # (N, H, 2)
    return along_x[:, None, :, :] + along_y[:, :, None, :]  # (N, H, W, 2)


def warp_points(points: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """p' = M p + t for points (N, K, 2); a NaN (missing) point stays NaN and touches no other point."""
    A = A.to(points.dtype)
    return points @ A[:, :, :2].transpose(1, 2) + A[:, None, :, 2]  # (N, K, 2)


def hflip_points(points: torch.Tensor, flip_permutation) -> torch.Tensor:
    """Mirror points (N, K, 2) about x = 0 and relabel them: out[:, i] = mirror(points[:, perm[i]])."""
    perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=points.device)
    mirrored = points[:, perm]  # (N, K, 2)
    return torch.stack([-mirrored[..., 0], mirrored[..., 1]], -1)


def hflip(images: torch.Tensor, points: torch.Tensor, flip_permutation) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact horizontal mirror of images (N, C, H, W) and points (N, K, 2), with left/right swap.

    In the grid frame column j <-> W-1-j is exactly g -> -g, so no interpolation is needed.
    `flip_permutation` (K,) swaps the names of mirrored pairs (a subject's left eye shows at image
    right; after a mirror the point there is the right eye's). Flipping twice is the identity.
    """
    return torch.flip(images, dims=[-1]), hflip_points(points, flip_permutation)
