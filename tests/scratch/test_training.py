"""A 2-layer CNN built only from kplab.scratch learns: its loss falls and it beats chance clearly."""

import numpy as np
import pytest

from kplab.scratch import SGD, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, cross_entropy


def two_layer_cnn(side: int, classes: int, rng: np.random.Generator) -> Sequential:
    return Sequential(
        Conv2d(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),  # (N, 8, side/2, side/2)
        Conv2d(8, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),  # (N, 16, side/4, side/4)
        Flatten(), Linear(16 * (side // 4) ** 2, classes, rng=rng),
    )


def train(net: Sequential, images: np.ndarray, labels: np.ndarray, steps: int, batch: int, lr: float,
          rng: np.random.Generator) -> list[float]:
    """Plain minibatch SGD with momentum; returns the loss of every step."""
    opt = SGD(net, lr=lr, momentum=0.9)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(images), size=batch, replace=False)
        opt.zero_grad()
        loss, dlogits = cross_entropy(net.forward(images[idx]), labels[idx])
        net.backward(dlogits.astype(np.float32))
        opt.step()
        losses.append(loss)
    return losses


def accuracy(net: Sequential, images: np.ndarray, labels: np.ndarray) -> float:
    return float((net.eval().forward(images).argmax(axis=1) == labels).mean())


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """12x12 noisy images holding one bright horizontal (label 0) or vertical (label 1) bar."""
    labels = rng.integers(0, 2, size=n)
    images = rng.normal(0, 0.3, size=(n, 1, 12, 12)).astype(np.float32)
    where = rng.integers(1, 11, size=n)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, where[i], 2:10] += 1.0
        else:
            images[i, 0, 2:10, where[i]] += 1.0
    return images, labels


def test_cnn_learns_synthetic_bars():
    rng = np.random.default_rng(0)
    images, labels = bars(400, rng)
    net = two_layer_cnn(12, 2, rng)
    losses = train(net, images[:300], labels[:300], steps=60, batch=32, lr=0.05, rng=rng)
    assert np.mean(losses[-10:]) < 0.25 * np.mean(losses[:5])
    assert accuracy(net, images[300:], labels[300:]) > 0.9


@pytest.mark.real
def test_cnn_learns_mnist_subset(shared_data):
    with np.load(shared_data / "mnist" / "mnist.npz") as d:
        x_train, y_train = d["x_train"][:2000], d["y_train"][:2000]
        x_test, y_test = d["x_test"][:500], d["y_test"][:500]

    def prep(x):
        return (x.astype(np.float32) / 255.0)[:, None]  # (N, 1, 28, 28)

    rng = np.random.default_rng(0)
    net = two_layer_cnn(28, 10, rng)
    losses = train(net, prep(x_train), y_train.astype(int), steps=150, batch=32, lr=0.05, rng=rng)
    assert np.mean(losses[:5]) > 2.0  # chance level is ln 10 = 2.30
    assert np.mean(losses[-20:]) < 0.6
    assert accuracy(net, prep(x_test), y_test.astype(int)) > 0.8
