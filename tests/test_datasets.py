"""Datasets: found offline, split like the notebook, clear errors when missing or malformed."""

from __future__ import annotations


import numpy as np
import pytest

from bench.datasets import (
    DIGITS_TEST_SIZE, SYNTHETIC_TEST_SIZE, DatasetError, _mnist_candidates, _raw, load_dataset, make_synthetic,
)

#: The first mnist.npz on the loader's own search path (no download), if any.
MNIST = next((p for p in _mnist_candidates("") if p.is_file()), None)


@pytest.fixture(autouse=True)
def fresh_cache():
    _raw.cache_clear()
    yield
    _raw.cache_clear()


def test_digits_split_and_scale():
    d = load_dataset("digits", 297)
    assert d.x_train.shape == (1203, 64) and d.x_val.shape == (297, 64)
    assert d.x_test.shape == (DIGITS_TEST_SIZE, 64)
    assert d.x_train.dtype == np.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    assert d.n_classes == 10


def test_digits_test_split_is_the_fixed_tail_and_never_trained_on():
    from sklearn.datasets import load_digits

    d = load_dataset("digits", 297)
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    x = (bunch.data[order] / 16.0).astype(np.float32)
    np.testing.assert_array_equal(np.concatenate([d.x_val, d.x_train, d.x_test]), x)
    np.testing.assert_array_equal(d.y_test, bunch.target[order][-DIGITS_TEST_SIZE:])


def test_synthetic_test_split_leaves_the_training_pool_unchanged():
    x, y = make_synthetic()
    d = load_dataset("synthetic", 2000)
    np.testing.assert_array_equal(np.concatenate([d.x_val, d.x_train]), x)
    np.testing.assert_array_equal(np.concatenate([d.y_val, d.y_train]), y)
    assert d.x_test.shape == (SYNTHETIC_TEST_SIZE, 64) and 0 <= d.x_test.min() and d.x_test.max() <= 1
    assert set(d.y_test) == set(range(10))
    # fresh draws, not copies of training rows
    assert not (d.x_test[:, None, :] == x[None, :500, :]).all(axis=2).any()


def test_fingerprint_names_the_data_and_its_split():
    a, b = load_dataset("synthetic", 2000), load_dataset("synthetic", 2000)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert load_dataset("synthetic", 1000).fingerprint != a.fingerprint
    assert load_dataset("synthetic", 2000, train_limit=500).fingerprint != a.fingerprint
    assert load_dataset("digits", 297).fingerprint != a.fingerprint


def test_train_limit_cuts_training_only():
    d = load_dataset("synthetic", 2000, train_limit=500)
    assert len(d.x_train) == 500 and len(d.x_val) == 2000


def test_mnist_holds_out_first_images_like_the_notebook(require):
    require(MNIST, "mnist.npz", "put it in ../shared/data/, $BNBENCH_DATA_DIR or ~/.keras/datasets/")
    d = load_dataset("mnist", 5000, data_path=str(MNIST))
    with np.load(MNIST) as f:
        x, x_test, y_test = f["x_train"], f["x_test"], f["y_test"]
    assert d.x_train.shape == (55000, 784)
    np.testing.assert_allclose(d.x_test, x_test.reshape(len(x_test), -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_test, y_test)
    np.testing.assert_allclose(d.x_val[0], x[0].reshape(-1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(d.x_train[0], x[5000].reshape(-1) / 255.0, rtol=1e-6)


def test_missing_explicit_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"mnist: .*absent\.npz does not exist"):
        load_dataset("mnist", 5000, data_path=str(tmp_path / "absent.npz"))


def test_wrong_shapes_are_rejected(tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((2000, 20, 20), np.uint8), y_train=np.zeros(2000, np.uint8),
             x_test=np.zeros((200, 20, 20), np.uint8), y_test=np.zeros(200, np.uint8))
    with pytest.raises(DatasetError, match=r"wrong shapes \(images \(2000, 20, 20\)"):
        load_dataset("mnist", 500, data_path=str(bad))


def test_mnist_without_a_test_split_is_rejected(tmp_path):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((2000, 28, 28), np.uint8), y_train=np.zeros(2000, np.uint8))
    with pytest.raises(DatasetError, match=r"mnist.npz has no test split \(x_test, y_test missing\)"):
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
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):  # the test split is required
        load_dataset("fashion_mnist", 200, data_path=str(tmp_path))
    _raw.cache_clear()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header_i + images.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(header_l + labels[::-1].tobytes())
    d = load_dataset("fashion_mnist", 200, data_path=str(tmp_path))
    assert d.x_train.shape == (1000, 784) and d.x_test.shape == (1200, 784)
    np.testing.assert_array_equal(d.y_val, labels[:200])
    np.testing.assert_array_equal(d.y_test, labels[::-1])
