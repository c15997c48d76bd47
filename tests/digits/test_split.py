import numpy as np
import pytest

from kplab.digits.recipe import SplitConfig
from kplab.digits.split import i2dl_split
from kplab.errors import ConfigError, DataError


def labels(n_per_class=200):
    return np.random.default_rng(0).permutation(np.repeat(np.arange(10), n_per_class))


def test_sizes_balance_and_disjointness():
    y = labels()
    s = i2dl_split(y, SplitConfig())
    for part in (s.labeled_train, s.labeled_val, s.labeled_test):
        assert np.bincount(y[part], minlength=10).tolist() == [10] * 10
    assert len(s.unlabeled_val) == 1000
    everything = np.concatenate([s.labeled_train, s.labeled_val, s.labeled_test, s.unlabeled_val, s.unlabeled_train])
    assert len(everything) == len(y) == len(np.unique(everything))  # every image exactly once


def test_deterministic_in_seed_and_labels_option():
    y = labels()
    a, b = i2dl_split(y, SplitConfig(seed=3)), i2dl_split(y, SplitConfig(seed=3))
    np.testing.assert_array_equal(a.labeled_train, b.labeled_train)
    np.testing.assert_array_equal(a.unlabeled_train, b.unlabeled_train)
    c = i2dl_split(y, SplitConfig(seed=4))
    assert set(a.labeled_train) != set(c.labeled_train)
    odd = i2dl_split(y, SplitConfig(labeled_train=25))
    assert np.bincount(y[odd.labeled_train], minlength=10).tolist() == [3] * 5 + [2] * 5
    assert len(odd.unlabeled_train) == len(y) - 25 - 200 - 1000


def test_bad_sizes():
    with pytest.raises(ConfigError, match="at least one label per class"):
        i2dl_split(labels(), SplitConfig(labeled_train=5))
    with pytest.raises(DataError, match="class 0 has 200 training images; the split needs 300"):
        i2dl_split(labels(), SplitConfig(labeled_train=1000, labeled_val=1000, labeled_test=1000))


def test_split_on_real_mnist_counts():
    # 60,000 training images: 300 labeled, 1,000 unlabeled val, the rest unlabeled train.
    y = np.repeat(np.arange(10), 6000)
    s = i2dl_split(y, SplitConfig())
    assert len(s.unlabeled_train) == 58_700
