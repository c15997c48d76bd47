"""Batch, layer, instance and group normalisation, forward and backward.

All four standardise x over some set of axes A and then apply a learnable affine map:

    mu = mean_A(x),   var = mean_A((x - mu)^2)   (biased),   xhat = (x - mu) / sqrt(var + eps),
    y = weight * xhat + bias.

They differ only in A (for x of shape (N, C, H, W)):

    BatchNorm2d     A = (N, H, W)          one mean/var per channel c
    LayerNorm       A = normalized_shape   the trailing axes, e.g. (C, H, W): one per sample n
    InstanceNorm2d  A = (H, W)             one per (n, c)
    GroupNorm       A = (C/G, H, W)        one per (n, group of C/G channels)

With M = |A| and g = dL/dxhat (= dy * weight), the backward pass through the standardisation is

    dL/dx = (1 / sqrt(var + eps)) * (g - mean_A(g) - xhat * mean_A(g * xhat)),

and dL/dweight = sum(dy * xhat), dL/dbias = sum(dy) over every axis the parameter is shared along.
When stored running statistics are used instead (evaluation mode), mu and var are constants and
dL/dx = g / sqrt(running_var + eps).
"""

from __future__ import annotations

import numpy as np

from kplab.scratch.module import Module


def standardise(x: np.ndarray, axes: tuple[int, ...], eps: float):
    """(xhat, mean, biased var, 1/sqrt(var + eps)); the statistics keep their reduced axes as size 1."""
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mean) * inv_std, mean, var, inv_std


def standardise_backward(dxhat: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray,
                         axes: tuple[int, ...]) -> np.ndarray:
    """dL/dx given dL/dxhat, for xhat computed by `standardise` over `axes`."""
    return inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


def _unbiased(var: np.ndarray, count: int) -> np.ndarray:
    return var * count / (count - 1)


class _Normalisation(Module):
    """The part all four share: y = weight * xhat + bias, the parameters broadcast as `view`."""

    def _init_affine(self, shape: tuple[int, ...], weight: bool, bias: bool, dtype) -> None:
        dtype = dtype or np.float32
        if weight:
            self.params["weight"] = np.ones(shape, dtype=dtype)
        if bias:
            self.params["bias"] = np.zeros(shape, dtype=dtype)
        self.zero_grad()

    def _init_channel_norm(self, num_features: int, eps: float, momentum: float | None, affine: bool,
                           track_running_stats: bool, dtype) -> None:
        """Batch and instance norm: per-channel affine and, when tracked, running statistics."""
        Module.__init__(self)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self._init_affine((num_features,), affine, affine, dtype)
        if track_running_stats:
            self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype or np.float32)
            self.buffers["running_var"] = np.ones(num_features, dtype=dtype or np.float32)
            self.buffers["num_batches_tracked"] = np.array(0, dtype=np.int64)
        self._cache = None

    def _affine(self, xhat: np.ndarray, view: tuple[int, ...]) -> np.ndarray:
        y = xhat * self.params["weight"].reshape(view) if "weight" in self.params else xhat
        return y + self.params["bias"].reshape(view) if "bias" in self.params else y

    def _affine_backward(self, dy: np.ndarray, xhat: np.ndarray, view: tuple[int, ...]) -> np.ndarray:
        """Accumulates dweight, dbias; returns dL/dxhat."""
        shared = tuple(i for i, s in enumerate(view) if s == 1)  # axes each parameter entry is shared along
        if "bias" in self.params:
            self._accumulate("bias", dy.sum(axis=shared).reshape(self.params["bias"].shape))
        if "weight" not in self.params:
            return dy
        self._accumulate("weight", (dy * xhat).sum(axis=shared).reshape(self.params["weight"].shape))
        return dy * self.params["weight"].reshape(view)


def _check_channels(x: np.ndarray, channels: int, name: str, ndim: int | None = 4) -> None:
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} expects input (N, C, H, W), got shape {x.shape}")
    if x.ndim < 2 or x.shape[1] != channels:
        raise ValueError(f"{name}({channels}) got input with {x.shape[1] if x.ndim > 1 else '?'} channels "
                         f"(shape {x.shape})")


class BatchNorm2d(_Normalisation):
    """`torch.nn.BatchNorm2d`: statistics over (N, H, W) per channel.

    Training uses the batch statistics and updates the running ones:
    running = (1 - momentum) * running + momentum * batch, where the batch variance fed to
    ``running_var`` is the unbiased one, var * M / (M - 1) with M = N*H*W. ``momentum=None`` uses the
    cumulative average, momentum = 1 / num_batches_tracked. Evaluation uses the running statistics
    (or the batch's when ``track_running_stats=False``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, dtype=None) -> None:
        self._init_channel_norm(num_features, eps, momentum, affine, track_running_stats, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_channels(x, self.num_features, "BatchNorm2d")
        view, axes = (1, self.num_features, 1, 1), (0, 2, 3)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if self.training and count < 2:
                raise ValueError(f"BatchNorm2d: expected more than 1 value per channel when training, "
                                 f"got input shape {x.shape}")
            xhat, mean, var, inv_std = standardise(x, axes, self.eps)
            if self.training and self.track_running_stats:
                self._update_running(mean.ravel(), _unbiased(var.ravel(), count))
        else:
            inv_std = (1.0 / np.sqrt(self.buffers["running_var"] + self.eps)).reshape(view)
            xhat = (x - self.buffers["running_mean"].reshape(view)) * inv_std
        self._cache = (xhat, inv_std, batch_stats)
        return self._affine(xhat, view)

    def _update_running(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        b = self.buffers
        b["num_batches_tracked"] = b["num_batches_tracked"] + 1
        m = self.momentum if self.momentum is not None else 1.0 / float(b["num_batches_tracked"])
        b["running_mean"] = (1 - m) * b["running_mean"] + m * mean
        b["running_var"] = (1 - m) * b["running_var"] + m * unbiased_var

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv_std, batch_stats = self._cache
        dxhat = self._affine_backward(dy, xhat, (1, self.num_features, 1, 1))
        return standardise_backward(dxhat, xhat, inv_std, (0, 2, 3)) if batch_stats else dxhat * inv_std


class LayerNorm(_Normalisation):
    """`torch.nn.LayerNorm`: statistics over the trailing ``normalized_shape`` axes of each sample.

    weight and bias have shape ``normalized_shape`` (one value per normalised element); no running
    statistics, so training and evaluation compute the same thing.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self._init_affine(self.normalized_shape, elementwise_affine, elementwise_affine and bias, dtype)
        self._cache = None

    def _axes_view(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} expects input (*, "
                             f"{', '.join(map(str, self.normalized_shape))}), got shape {x.shape}")
        lead = x.ndim - k
        return tuple(range(lead, x.ndim)), (1,) * lead + self.normalized_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes, view = self._axes_view(x)
        xhat, _, _, inv_std = standardise(x, axes, self.eps)
        self._cache = (xhat, inv_std, axes, view)
        return self._affine(xhat, view)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv_std, axes, view = self._cache
        return standardise_backward(self._affine_backward(dy, xhat, view), xhat, inv_std, axes)


class InstanceNorm2d(_Normalisation):
    """`torch.nn.InstanceNorm2d`: statistics over (H, W) for every (n, c).

    Defaults follow PyTorch: ``affine=False`` and ``track_running_stats=False`` (so evaluation also
    normalises each instance by its own statistics). With tracking, the running statistics move
    towards the batch average of the per-instance mean and unbiased variance (M = H*W), and
    ``momentum=None`` means momentum 0, as in PyTorch (the running statistics then stay put).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, dtype=None) -> None:
        self._init_channel_norm(num_features, eps, momentum, affine, track_running_stats, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_channels(x, self.num_features, "InstanceNorm2d")
        view, axes = (1, self.num_features, 1, 1), (2, 3)
        instance_stats = self.training or not self.track_running_stats
        if instance_stats:
            count = x.shape[2] * x.shape[3]
            if self.training and count < 2:
                raise ValueError(f"InstanceNorm2d: expected more than 1 spatial element when training, "
                                 f"got input shape {x.shape}")
            xhat, mean, var, inv_std = standardise(x, axes, self.eps)  # stats (N, C, 1, 1)
            if self.training and self.track_running_stats:
                m = self.momentum if self.momentum is not None else 0.0
                b = self.buffers
                b["running_mean"] = (1 - m) * b["running_mean"] + m * mean[:, :, 0, 0].mean(axis=0)
                b["running_var"] = (1 - m) * b["running_var"] + m * _unbiased(var[:, :, 0, 0], count).mean(axis=0)
        else:
            inv_std = (1.0 / np.sqrt(self.buffers["running_var"] + self.eps)).reshape(view)
            xhat = (x - self.buffers["running_mean"].reshape(view)) * inv_std
        self._cache = (xhat, inv_std, instance_stats)
        return self._affine(xhat, view)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv_std, instance_stats = self._cache
        dxhat = self._affine_backward(dy, xhat, (1, self.num_features, 1, 1))
        return standardise_backward(dxhat, xhat, inv_std, (2, 3)) if instance_stats else dxhat * inv_std


class GroupNorm(_Normalisation):
    """`torch.nn.GroupNorm`: channels split into ``num_groups`` groups of C/G; statistics over
    (C/G, *spatial) for every (n, group); weight and bias per channel. Works for any (N, C, *) input."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 dtype=None) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"num_channels {num_channels} must be divisible by num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self._init_affine((num_channels,), affine, affine, dtype)
        self._cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_channels(x, self.num_channels, "GroupNorm", ndim=None)
        xg = x.reshape(x.shape[0], self.num_groups, -1)  # (N, G, C/G * spatial)
        if x.shape[0] * xg.shape[2] == 1:  # PyTorch refuses this case (its check counts N too)
            raise ValueError(f"GroupNorm: expected more than 1 value per group, got input shape {x.shape}")
        xhat, _, _, inv_std = standardise(xg, (2,), self.eps)
        view = (1, self.num_channels) + (1,) * (x.ndim - 2)
        self._cache = (xhat, inv_std, x.shape, view)
        return self._affine(xhat.reshape(x.shape), view)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv_std, shape, view = self._cache
        dxhat = self._affine_backward(dy, xhat.reshape(shape), view).reshape(xhat.shape)
        return standardise_backward(dxhat, xhat, inv_std, (2,)).reshape(shape)
