"""The notebook's MLP as a Keras model, with batch normalization where ``placement`` says.

placement:
- ``none``: Dense -> activation, per hidden layer.
- ``before``: Dense -> BN -> activation (Ioffe & Szegedy's placement).
- ``after``: Dense -> activation -> BN.
- ``after+input``: the notebook's exact layout: BN on the flattened input, then as ``after``.

Initial Dense weights come from :func:`bench.pairing.initial_weights`, so a seed gives every
placement (and every engine) the same starting point.
"""

from __future__ import annotations

import keras

from bench.pairing import initial_weights
from bench.spec import RunConfig

LEAKY_RELU_SLOPE = 0.3  # keras.layers.LeakyReLU()'s default, as in the notebook


def activation_layer(name: str) -> keras.layers.Layer:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE)
    return keras.layers.Activation(name)


def bn_layer(cfg: RunConfig) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(momentum=cfg.bn_momentum, epsilon=cfg.bn_epsilon)


def layer_sizes(cfg: RunConfig, n_features: int, n_classes: int) -> list[int]:
    return [n_features, *cfg.hidden, n_classes]


def build_model(cfg: RunConfig, n_features: int, n_classes: int) -> keras.Model:
    """The MLP for ``cfg`` with its seed's initial weights; not compiled."""
    sizes = layer_sizes(cfg, n_features, n_classes)
    layers: list[keras.layers.Layer] = [keras.Input(shape=(n_features,))]
    if cfg.placement == "after+input":
        layers.append(bn_layer(cfg))
    dense_layers = []
    for width in cfg.hidden:
        dense = keras.layers.Dense(width)
        dense_layers.append(dense)
        layers.append(dense)
        if cfg.placement == "before":
            layers.append(bn_layer(cfg))
        layers.append(activation_layer(cfg.activation))
        if cfg.placement in ("after", "after+input"):
            layers.append(bn_layer(cfg))
    out = keras.layers.Dense(n_classes, activation="softmax")
    dense_layers.append(out)
    layers.append(out)
    model = keras.Sequential(layers)
    for dense, (kernel, bias) in zip(dense_layers, initial_weights(cfg.seed, sizes, cfg.initializer)):
        dense.set_weights([kernel, bias])
    return model


def make_optimizer(cfg: RunConfig) -> keras.optimizers.Optimizer:
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=cfg.learning_rate)
    if cfg.optimizer == "momentum":
        return keras.optimizers.SGD(learning_rate=cfg.learning_rate, momentum=0.9)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
