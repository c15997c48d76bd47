"""Softmax cross-entropy and mean squared error, each returning the loss and its gradient.

Cross-entropy over N rows of K logits z with labels t, mean reduction:
    L = -(1/N) sum_n log softmax(z_n)[t_n],     dL/dz_n = (softmax(z_n) - onehot(t_n)) / N.
MSE, mean over all E elements:  L = (1/E) sum (p - y)^2,   dL/dp = 2 (p - y) / E.
"""

from __future__ import annotations

import numpy as np


def cross_entropy(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(loss, dL/dlogits) for logits (N, K) and integer labels (N,), like `F.cross_entropy`."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, K); stable: exp never overflows
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), target].mean()
    grad = np.exp(log_probs)
    grad[np.arange(n), target] -= 1.0
    return float(loss), grad / n


def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(loss, dL/dpred), like `F.mse_loss` with mean reduction."""
    diff = pred - target
    return float((diff ** 2).mean()), 2.0 * diff / diff.size
