"""The notebook's MLP as a Keras model, normalized where ``placement`` says by ``normalizer``.

placement (N is the normalization layer):
- ``none``: Dense -> activation, per hidden layer.
- ``before``: Dense -> N -> activation (Ioffe & Szegedy's placement).
- ``after``: Dense -> activation -> N.
- ``after+input``: the notebook's exact layout: N on the flattened input, then as ``after``.

normalizer: Keras 3's own layers, ``bn_epsilon`` as their epsilon: ``batch``
(BatchNormalization, momentum ``bn_momentum``), ``layer`` (LayerNormalization), ``group``
(GroupNormalization, ``norm_groups`` groups) and ``rms`` (RMSNormalization).

Initial Dense weights come from :func:`bench.pairing.initial_weights`, so a seed gives every
placement (and every engine) the same starting point.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from bench.pairing import initial_weights
from bench.spec import RunConfig

LEAKY_RELU_SLOPE = 0.3  # keras.layers.LeakyReLU()'s default, as in the notebook


def activation_layer(name: str) -> keras.layers.Layer:
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE)
    return keras.layers.Activation(name)


def placed(weighted: keras.layers.Layer, placement: str, norm: Callable[[], keras.layers.Layer],
           activation: str) -> list[keras.layers.Layer]:
    """A weighted layer, its activation and, where ``placement`` says, a fresh ``norm()`` layer.

    The one definition of what placement means, for the MLP and the CNN alike.
    """
    layers = [weighted]
    if placement == "before":
        layers.append(norm())
    layers.append(activation_layer(activation))
    if placement in ("after", "after+input"):
        layers.append(norm())
    return layers


class ChannelRMSNormalization(keras.layers.RMSNormalization):
    """``x * rsqrt(mean(x^2 over H, W, C) + eps) * scale[c]``: Keras' RMSNormalization over
    each example's whole feature map, with one scale per channel (the CNN's ``rms``,
    bench/cnn.py; Keras' own layer over axes [1, 2, 3] would have a scale per pixel)."""

    def build(self, input_shape):
        self.axis = list(range(1, len(input_shape)))
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.built = True


def bn_layer(cfg: RunConfig) -> keras.layers.Layer:
    """The normalization layer of ``cfg`` (named for batch normalization, the first one)."""
    if cfg.normalizer == "batch":
        return keras.layers.BatchNormalization(momentum=cfg.bn_momentum, epsilon=cfg.bn_epsilon)
    if cfg.normalizer == "layer":
        return keras.layers.LayerNormalization(epsilon=cfg.bn_epsilon)
    if cfg.normalizer == "group":
        return keras.layers.GroupNormalization(groups=cfg.norm_groups, epsilon=cfg.bn_epsilon)
    if cfg.normalizer == "rms":
        return keras.layers.RMSNormalization(epsilon=cfg.bn_epsilon)
    raise ValueError(f"unknown normalizer {cfg.normalizer!r}")


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
        layers += placed(dense, cfg.placement, lambda: bn_layer(cfg), cfg.activation)
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
