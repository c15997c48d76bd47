"""The module system (Sequential, parameters, zero_grad, train/eval, load_torch), the small head layers,
losses and SGD, each against its PyTorch counterpart."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kplab.scratch import (SGD, AvgPool2d, BatchNorm2d, Conv2d, Dropout2d, Flatten, GroupNorm, Linear,
                           MaxPool2d, ReLU, Sequential, cross_entropy, mse_loss)


def _torch_net():
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.nn.GroupNorm(3, 6), torch.nn.ReLU(),
        torch.nn.AvgPool2d(2, ceil_mode=True), torch.nn.Flatten(), torch.nn.Linear(6 * 2 * 2, 5),
    ).double()


def _our_net():
    return Sequential(
        Conv2d(2, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
        Conv2d(4, 6, 3, stride=2, padding=1, groups=2), GroupNorm(3, 6), ReLU(),
        AvgPool2d(2, ceil_mode=True), Flatten(), Linear(6 * 2 * 2, 5),
    )


def test_sequential_matches_torch_through_training_and_eval(parity):
    rng = np.random.default_rng(0)
    theirs = parity.randomise(_torch_net(), rng)
    ours = _our_net().load_torch(theirs)
    for step in range(2):
        parity.assert_close(parity.step(ours, theirs, rng.normal(size=(3, 2, 12, 12)), dy_seed=step))
    ours.eval(), theirs.eval()
    parity.assert_close(parity.step(ours, theirs, rng.normal(size=(3, 2, 12, 12)), dy_seed=9))


def test_parameter_names_and_count_match_torch():
    theirs, ours = _torch_net(), _our_net()
    expected = {name: tuple(p.shape) for name, p in theirs.named_parameters()}
    assert {name: p.shape for name, p in ours.named_parameters()} == expected
    assert sum(p.size for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_grads_accumulate_until_zero_grad():
    net = Sequential(Linear(3, 2, dtype=np.float64, rng=np.random.default_rng(0)))
    x, dy = np.ones((4, 3)), np.ones((4, 2))
    net.forward(x)
    net.backward(dy)
    once = net[0].grads["weight"].copy()
    net.forward(x)
    net.backward(dy)
    np.testing.assert_allclose(net[0].grads["weight"], 2 * once)
    net.zero_grad()
    assert all(not g.any() for _, g in net.named_grads())


def test_train_and_eval_reach_every_layer():
    net = Sequential(Conv2d(1, 1, 1), Sequential(Dropout2d(0.5), BatchNorm2d(1)))
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_load_torch_refuses_mismatches():
    with pytest.raises(ValueError, match="cannot load a torch BatchNorm2d into a scratch Conv2d"):
        Conv2d(2, 2, 3).load_torch(torch.nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="weight: torch shape"):
        Conv2d(2, 2, 3).load_torch(torch.nn.Conv2d(2, 2, 5))
    with pytest.raises(ValueError, match="holds"):
        Conv2d(2, 2, 3, bias=False).load_torch(torch.nn.Conv2d(2, 2, 3))
    with pytest.raises(ValueError, match="children"):
        Sequential(ReLU()).load_torch(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.ReLU()))


def test_linear_relu_flatten_match_torch(parity):
    rng = np.random.default_rng(1)
    theirs = parity.randomise(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.ReLU(), torch.nn.Linear(12, 4)).double(), rng)
    ours = Sequential(Flatten(), ReLU(), Linear(12, 4)).load_torch(theirs)
    parity.assert_close(parity.step(ours, theirs, rng.normal(size=(5, 3, 2, 2))))


def test_losses_match_torch():
    rng = np.random.default_rng(2)
    logits, target = rng.normal(size=(6, 4)) * 5, rng.integers(0, 4, size=6)
    lt = torch.tensor(logits, requires_grad=True)
    F.cross_entropy(lt, torch.from_numpy(target)).backward()
    loss, grad = cross_entropy(logits, target)
    assert loss == pytest.approx(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target)).item(), abs=1e-12)
    np.testing.assert_allclose(grad, lt.grad.numpy(), atol=1e-12)

    pred, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    pt = torch.tensor(pred, requires_grad=True)
    F.mse_loss(pt, torch.from_numpy(y)).backward()
    loss, grad = mse_loss(pred, y)
    assert loss == pytest.approx(F.mse_loss(torch.from_numpy(pred), torch.from_numpy(y)).item(), abs=1e-12)
    np.testing.assert_allclose(grad, pt.grad.numpy(), atol=1e-12)


def test_sgd_with_momentum_and_weight_decay_matches_torch():
    rng = np.random.default_rng(3)
    theirs = torch.nn.Linear(4, 3).double()
    ours = Sequential(Linear(4, 3)).load_torch(torch.nn.Sequential(theirs))
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    opt = SGD(ours, lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        x, dy = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
        opt_t.zero_grad()
        theirs(torch.from_numpy(x)).backward(torch.from_numpy(dy))
        opt_t.step()
        opt.zero_grad()
        ours.forward(x)
        ours.backward(dy)
        opt.step()
    np.testing.assert_allclose(ours[0].params["weight"], theirs.weight.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(ours[0].params["bias"], theirs.bias.detach().numpy(), atol=1e-12)


def test_flatten_merges_only_the_axes_asked_for():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    f = Flatten(1, 2)
    y = f.forward(x)
    assert y.shape == (2, 12, 5) and np.array_equal(y, torch.nn.Flatten(1, 2)(torch.from_numpy(x)).numpy())
    assert f.backward(np.ones_like(y)).shape == x.shape


def test_linear_init_dtype_rng_and_inputs_of_any_rank():
    a, b = (Linear(3, 2, rng=np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a.params["weight"], b.params["weight"]) and np.array_equal(a.params["bias"], b.params["bias"])
    assert a.params["weight"].dtype == np.float32 and a.params["bias"].dtype == np.float32
    assert Linear(3, 2, dtype=np.float64).params["weight"].dtype == np.float64
    assert Linear(3, 2, dtype=np.float64).params["bias"].dtype == np.float64
    bare = Linear(3, 2, bias=False, dtype=np.float64, rng=np.random.default_rng(8))
    x = np.random.default_rng(9).normal(size=(4, 5, 3))  # (N, T, in): the last axis is the features
    y = bare.forward(x)
    assert "bias" not in bare.params and np.allclose(y, x @ bare.params["weight"].T)
    dx = bare.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.allclose(bare.grads["weight"], np.ones((20, 2)).T @ x.reshape(20, 3))
    with pytest.raises(ValueError, match=r"Linear\(3, 2\) got input shape \(4, 3, 5\)"):
        bare.forward(np.zeros((4, 3, 5)))
