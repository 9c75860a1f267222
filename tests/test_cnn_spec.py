"""The CNN's description (bench/cnn.py) and its initial weights (bench/pairing.py): shapes,
what is refused, and the Keras initializers' variance rules for conv kernels."""

from __future__ import annotations

import numpy as np
import pytest

from bench.cnn import CnnSpec, check
from bench.pairing import init_kernel, init_matrix, initial_cnn_weights, keras_fans


def test_shapes_of_the_default_family():
    spec = CnnSpec((28, 28, 1), (16, 32), 10, "after+input", "relu")
    assert spec.conv_channels == [(1, 16), (16, 16), (16, 32), (32, 32)]
    assert spec.norm_channels == [1, 16, 16, 32, 32]
    assert spec.head_features == 7 * 7 * 32
    assert CnnSpec((28, 28, 1), (8, 16, 32), 10, "none", "relu").head_features == 3 * 3 * 32
    assert CnnSpec((8, 8, 1), (4, 8), 10, "before", "relu").norm_channels == [4, 4, 8, 8]


@pytest.mark.parametrize(("dataset", "widths", "fragment"), [
    ("synthetic", (16, 32), "needs image data"),
    ("digits", (4, 8, 16, 32), "at most 3 2x2 poolings"),
    ("mnist", (), "non-empty"),
    ("mnist", (16, 0), "positive integers"),
])
def test_impossible_cnns_are_refused_with_one_line(dataset, widths, fragment):
    message = check(dataset, widths)
    assert message is not None and fragment in message and "\n" not in message


@pytest.mark.parametrize(("dataset", "widths"), [("mnist", (16, 32)), ("fashion_mnist", (8, 16, 32, 64)),
                                                 ("digits", (4, 8, 16))])
def test_possible_cnns_pass(dataset, widths):
    assert check(dataset, widths) is None


#: SHA-256 (16 hex) of init_matrix(default_rng(7), name, 50, 20) as drawn before init_matrix
#: became the 2-D case of init_kernel: every run's initial Dense weights (and so the committed
#: stores' results) depend on these draws staying bit for bit the same.
DENSE_DRAWS = {"he_normal": "39ca4e0b6cf0c8bc", "he_uniform": "85dae9e7b470ebfa",
               "glorot_normal": "d9bbd3ff372c2aff", "glorot_uniform": "c96c0f181f8d9fc2",
               "lecun_normal": "68fb43c6c19a5578"}


@pytest.mark.parametrize("name", sorted(DENSE_DRAWS))
def test_dense_kernels_are_drawn_as_before(name):
    import hashlib

    w = init_matrix(np.random.default_rng(7), name, 50, 20)
    assert w.dtype == np.float32 and w.shape == (50, 20)
    assert hashlib.sha256(w.tobytes()).hexdigest()[:16] == DENSE_DRAWS[name]
    np.testing.assert_array_equal(w, init_kernel(np.random.default_rng(7), name, (50, 20)))


def test_conv_fans_are_keras_fans():
    from keras.src.initializers.random_initializers import compute_fans

    for shape in [(3, 3, 1, 16), (3, 3, 16, 32), (5, 5, 8, 4), (784, 300)]:
        assert keras_fans(shape) == compute_fans(shape)


@pytest.mark.parametrize(("name", "keras_name"), [("he_normal", "HeNormal"), ("glorot_uniform", "GlorotUniform"),
                                                  ("glorot_normal", "GlorotNormal")])
def test_conv_kernel_spread_matches_keras(name, keras_name):
    """Same variance rule as the Keras initializer on a conv shape: 73,728 draws estimate a
    standard deviation within ~0.3% (relative SE 1/sqrt(2n)); 2% is > 6 SE on each side."""
    import keras

    shape = (3, 3, 64, 128)
    ours = init_kernel(np.random.default_rng(0), name, shape)
    theirs = np.asarray(getattr(keras.initializers, keras_name)(seed=0)(shape))
    assert ours.shape == shape
    assert abs(ours.std() - theirs.std()) / theirs.std() < 0.02
    assert np.abs(ours).max() <= np.abs(theirs).max() * 1.02 + 1e-7


def test_cnn_weights_depend_on_the_seed_only():
    channels = [(1, 4), (4, 4)]
    a = initial_cnn_weights(1, channels, 32, 10, "he_normal")
    b = initial_cnn_weights(1, channels, 32, 10, "he_normal")
    c = initial_cnn_weights(2, channels, 32, 10, "he_normal")
    assert [k.shape for k, _ in a] == [(3, 3, 1, 4), (3, 3, 4, 4), (32, 10)]
    for (ka, ba), (kb, _) in zip(a, b):
        np.testing.assert_array_equal(ka, kb)
        assert not ba.any()
    assert not np.array_equal(a[0][0], c[0][0])
