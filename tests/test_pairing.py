"""Paired seeds: same seed -> same initial Dense weights and data order in every placement."""

from __future__ import annotations

import numpy as np

from bench.pairing import epoch_order, init_matrix, initial_weights
from bench.spec import PLACEMENTS, parse_spec


def configs(seed: int):
    spec = parse_spec({
        "grid": {"name": "p", "seeds": [seed], "validation_size": 297},
        "factors": {"dataset": "digits", "placement": list(PLACEMENTS), "hidden": [32, 16]},
        "engine": {"name": "keras"},
    })
    return spec.expand()


def dense_kernels(model):
    return [layer.get_weights()[0] for layer in model.layers if layer.__class__.__name__ == "Dense"]


def test_every_placement_starts_from_the_same_dense_weights():
    from bench.model import build_model

    kernels = [dense_kernels(build_model(cfg, 64, 10)) for cfg in configs(seed=3)]
    for other in kernels[1:]:
        for a, b in zip(kernels[0], other):
            np.testing.assert_array_equal(a, b)
    different_seed = dense_kernels(build_model(configs(seed=4)[0], 64, 10))
    assert not np.array_equal(kernels[0][0], different_seed[0])


def test_placements_differ_only_in_bn_layers():
    from bench.model import build_model

    names = {cfg.placement: [type(layer).__name__ for layer in build_model(cfg, 64, 10).layers] for cfg in configs(0)}
    assert "BatchNormalization" not in names["none"]
    assert names["before"][:3] == ["Dense", "BatchNormalization", "LeakyReLU"]
    assert names["after"][:3] == ["Dense", "LeakyReLU", "BatchNormalization"]
    assert names["after+input"][:2] == ["BatchNormalization", "Dense"]


def test_data_order_depends_on_seed_and_epoch_only():
    a = epoch_order(5, 1, 1000)
    np.testing.assert_array_equal(a, epoch_order(5, 1, 1000))
    assert sorted(a) == list(range(1000))
    assert not np.array_equal(a, epoch_order(5, 2, 1000))
    assert not np.array_equal(a, epoch_order(6, 1, 1000))


def test_he_normal_matches_keras_distribution():
    import keras

    rng = np.random.default_rng(0)
    ours = init_matrix(rng, "he_normal", 784, 300)
    theirs = keras.initializers.HeNormal(seed=0)((784, 300)).numpy()
    assert abs(ours.std() - theirs.std()) / theirs.std() < 0.02
    assert np.abs(ours).max() <= 2 * np.sqrt(2 / 784) / 0.87962566103423978 + 1e-6


def test_output_layer_is_glorot_and_biases_zero():
    layers = initial_weights(0, [64, 32, 10], "he_normal")
    limit = np.sqrt(6 / (32 + 10))
    assert np.abs(layers[-1][0]).max() <= limit
    assert all(not b.any() for _, b in layers)
