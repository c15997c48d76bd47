"""MNIST readers against hand-built idx bytes, and every kind of bad file."""

import gzip
import struct

import numpy as np
import pytest

from kplab.digits.data import IMAGE_MAGIC, LABEL_MAGIC, read_idx, read_idx_folder, read_mnist, read_npz, write_idx
from kplab.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx layout from the MNIST page: 0x0000, type 0x08 (ubyte), ndim, big-endian int32 dims, data."""
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def small_mnist(rng, n_train=30, n_test=10):
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


STEMS = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def write_folder(folder, arrays, gz):
    for key, stem in STEMS.items():
        raw = idx_bytes(arrays[key])
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_reads_hand_built_files(tmp_path, gz):
    arrays = small_mnist(np.random.default_rng(0))
    write_folder(tmp_path, arrays, gz)
    mnist = read_mnist(tmp_path)
    np.testing.assert_array_equal(mnist.x_train, arrays["x_train"])
    np.testing.assert_array_equal(mnist.y_test, arrays["y_test"])
    assert mnist.y_train.dtype == np.int64


def test_write_idx_matches_the_published_layout(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", a)
    assert (tmp_path / "x").read_bytes() == idx_bytes(a)
    assert int.from_bytes(idx_bytes(a)[:4], "big") == IMAGE_MAGIC


def test_npz_reader(tmp_path):
    arrays = small_mnist(np.random.default_rng(1))
    np.savez(tmp_path / "m.npz", **arrays)
    mnist = read_npz(tmp_path / "m.npz")
    np.testing.assert_array_equal(mnist.x_test, arrays["x_test"])


def test_wrong_magic_names_file_and_numbers(tmp_path):
    labels = np.zeros(5, np.uint8)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(labels))  # a label file where images are expected
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: idx magic number is 2049.*expected 2051"):
        read_idx(path, IMAGE_MAGIC)


def test_truncated_idx(tmp_path):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"x.gz: truncated: header declares shape \(3, 28, 28\)"):
        read_idx(path, IMAGE_MAGIC)
    short = tmp_path / "x"
    short.write_bytes(raw[:10])
    with pytest.raises(DataError, match="x: truncated idx header"):
        read_idx(short, IMAGE_MAGIC)


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "y.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:20])
    with pytest.raises(DataError, match="y.gz: not a readable gzip file"):
        read_idx(path, LABEL_MAGIC)


def test_label_image_count_mismatch(tmp_path):
    arrays = small_mnist(np.random.default_rng(2))
    arrays["y_train"] = arrays["y_train"][:-1]
    write_folder(tmp_path, arrays, gz=False)
    with pytest.raises(DataError, match="x_train has 30 images but y_train has 29 labels"):
        read_idx_folder(tmp_path)


def test_npz_problems(tmp_path):
    arrays = small_mnist(np.random.default_rng(3))
    np.savez(tmp_path / "missing.npz", x_train=arrays["x_train"])
    with pytest.raises(DataError, match=r"missing.npz: missing arrays \['y_train', 'x_test', 'y_test'\]"):
        read_npz(tmp_path / "missing.npz")
    arrays["y_test"] = arrays["y_test"] + 10
    np.savez(tmp_path / "range.npz", **arrays)
    with pytest.raises(DataError, match="range.npz: y_test has labels outside 0-9"):
        read_npz(tmp_path / "range.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz"):
        read_npz(tmp_path / "junk.npz")


def test_missing_things(tmp_path):
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        read_mnist(tmp_path)
    with pytest.raises(DataError, match="nope.npz: file not found"):
        read_mnist(tmp_path / "nope.npz")


@pytest.mark.real
def test_shared_mnist_facts(shared_data):
    mnist = read_mnist(shared_data / "mnist" / "mnist.npz")
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    # Published class counts: 5,923 zeros in train, 980 zeros and 1,135 ones in test.
    assert np.bincount(mnist.y_train)[0] == 5923
    assert np.bincount(mnist.y_test)[[0, 1]].tolist() == [980, 1135]
