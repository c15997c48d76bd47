"""The numerical gradient checker agrees with every analytic backward, and catches a wrong one."""

import numpy as np
import pytest

from kplab.scratch import (AvgPool2d, BatchNorm2d, Conv2d, Dropout, Dropout2d, Flatten, GroupNorm,
                           InstanceNorm2d, LayerNorm, Linear, MaxPool2d, ReLU, Sequential, gradcheck,
                           numerical_gradient)

F64 = np.float64


def _cases():
    rng = np.random.default_rng(0)
    return {
        "conv": (Conv2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=F64, rng=rng), (2, 4, 6, 5)),
        "conv same reflect dilated": (Conv2d(2, 3, (2, 3), padding="same", dilation=2, padding_mode="reflect",
                                             dtype=F64, rng=rng), (2, 2, 5, 6)),
        "conv circular no bias": (Conv2d(2, 2, 3, padding=1, padding_mode="circular", bias=False,
                                         dtype=F64, rng=rng), (1, 2, 4, 4)),
        "max pool ceil dilated": (MaxPool2d(3, 2, 1, dilation=(1, 2), ceil_mode=True), (2, 3, 7, 6)),
        "avg pool no pad count": (AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (2, 3, 7, 6)),
        "batch norm train": (BatchNorm2d(3, dtype=F64), (4, 3, 2, 3)),
        "batch norm eval": (BatchNorm2d(3, dtype=F64).eval(), (4, 3, 2, 3)),
        "layer norm": (LayerNorm((3, 2, 3), dtype=F64), (4, 3, 2, 3)),
        "instance norm affine": (InstanceNorm2d(3, affine=True, dtype=F64), (4, 3, 2, 3)),
        "instance norm tracked eval": (InstanceNorm2d(3, track_running_stats=True).eval(), (2, 3, 2, 3)),
        "group norm": (GroupNorm(2, 4, dtype=F64), (3, 4, 2, 3)),
        "dropout": (Dropout(0.3, rng=rng), (3, 4, 5)),
        "dropout2d": (Dropout2d(0.5, rng=rng), (3, 4, 2, 2)),
        "linear": (Linear(5, 3, dtype=F64, rng=rng), (4, 5)),
        "relu": (ReLU(), (3, 4)),
        "small cnn": (Sequential(Conv2d(1, 2, 3, dtype=F64, rng=rng), BatchNorm2d(2, dtype=F64), ReLU(),
                                 MaxPool2d(2), Dropout2d(0.3, rng=rng), Flatten(),
                                 Linear(8, 3, dtype=F64, rng=rng)), (3, 1, 6, 6)),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_analytic_backward_matches_numerical_gradient(name):
    module, shape = CASES[name]
    rng = np.random.default_rng(1)
    for m in module.modules():  # move parameters off their 1/0 defaults so every term matters
        for key, p in m.params.items():
            m.params[key] = p + 0.3 * rng.normal(size=p.shape)
    result = gradcheck(module, rng.normal(size=shape))
    assert result.passed, result.max_abs_error
    assert set(result.max_abs_error) == {"input"} | {n for n, _ in module.named_parameters()}
    assert result.worst < 1e-7


def test_checker_catches_a_wrong_backward():
    class LeakyBackwardReLU(ReLU):
        def backward(self, dy):
            return dy * np.where(self._positive, 1.0, 0.01)  # claims slope 0.01 where it is 0

    result = gradcheck(LeakyBackwardReLU(), np.random.default_rng(2).normal(size=(5, 5)))
    assert not result.passed
    assert result.max_abs_error["input"] > 1e-3


def test_checker_catches_a_wrong_parameter_gradient():
    class HalfBiasGrad(Linear):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["bias"] = self.grads["bias"] / 2
            return dx

    layer = HalfBiasGrad(3, 2, dtype=F64, rng=np.random.default_rng(3))
    result = gradcheck(layer, np.random.default_rng(4).normal(size=(4, 3)))
    assert not result.passed and result.max_abs_error["bias"] > 1e-3 and result.max_abs_error["input"] < 1e-7


def test_checker_leaves_the_module_as_it_found_it():
    layer = BatchNorm2d(2, dtype=F64)
    drop = Dropout(0.5, rng=np.random.default_rng(5))
    net = Sequential(layer, drop)
    rng_state = drop.rng.bit_generator.state
    gradcheck(net, np.random.default_rng(6).normal(size=(3, 2, 2, 2)))
    assert drop.rng.bit_generator.state == rng_state
    np.testing.assert_array_equal(layer.buffers["running_mean"], 0.0)
    assert int(layer.buffers["num_batches_tracked"]) == 0


def test_numerical_gradient_of_a_known_function():
    a = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(numerical_gradient(lambda: float(np.sum(a ** 3)), a), 3 * a ** 2, atol=1e-6)


def test_checker_needs_float64():
    with pytest.raises(ValueError, match="float64"):
        gradcheck(Linear(3, 2), np.zeros((2, 3)))
