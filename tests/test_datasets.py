"""Datasets: found offline, split like the notebook, clear errors when missing or malformed."""

from __future__ import annotations


import numpy as np
import pytest

from bench.datasets import DatasetError, _mnist_candidates, _raw, load_dataset

#: The first mnist.npz on the loader's own search path (no download), if any.
MNIST = next((p for p in _mnist_candidates("") if p.is_file()), None)


@pytest.fixture(autouse=True)
def fresh_cache():
    _raw.cache_clear()
    yield
    _raw.cache_clear()


def test_digits_split_and_scale():
    d = load_dataset("digits", 297)
    assert d.x_train.shape == (1500, 64) and d.x_val.shape == (297, 64)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert d.n_classes == 10


def test_train_limit_cuts_training_only():
    d = load_dataset("synthetic", 2000, train_limit=500)
    assert len(d.x_train) == 500 and len(d.x_val) == 2000


def test_mnist_holds_out_first_images_like_the_notebook(require):
    require(MNIST, "mnist.npz", "put it in ../shared/data/, $BNBENCH_DATA_DIR or ~/.keras/datasets/")
    d = load_dataset("mnist", 5000, data_path=str(MNIST))
    with np.load(MNIST) as f:
        x = f["x_train"]
    assert d.x_train.shape == (55000, 784)
    np.testing.assert_allclose(d.x_val[0], x[0].reshape(-1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(d.x_train[0], x[5000].reshape(-1) / 255.0, rtol=1e-6)


def test_missing_explicit_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"mnist: .*absent\.npz does not exist"):
        load_dataset("mnist", 5000, data_path=str(tmp_path / "absent.npz"))


def test_wrong_shapes_are_rejected(tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((2000, 20, 20), np.uint8), y_train=np.zeros(2000, np.uint8))
    with pytest.raises(DatasetError, match=r"wrong shapes \(images \(2000, 20, 20\)"):
        load_dataset("mnist", 500, data_path=str(bad))


def test_not_an_npz_is_rejected(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_text("garbage")
    with pytest.raises(DatasetError, match="not a readable mnist.npz"):
        load_dataset("mnist", 500, data_path=str(bad))


def test_fashion_idx_reader(tmp_path):
    import gzip

    images = np.arange(1200 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(1200, 28, 28)
    labels = (np.arange(1200) % 10).astype(np.uint8)
    header_i = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    header_l = bytes([0, 0, 8, 1]) + (1200).to_bytes(4, "big")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header_i + images.tobytes())
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(header_l + labels.tobytes())
    d = load_dataset("fashion_mnist", 200, data_path=str(tmp_path))
    assert d.x_train.shape == (1000, 784)
    np.testing.assert_array_equal(d.y_val, labels[:200])
