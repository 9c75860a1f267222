"""A small VGG-style convolutional network family, described once for both engines.

Per stage: (conv 3x3 'same' -> [norm] -> activation) twice, then 2x2 max-pool (stride 2,
'valid': 28 -> 14 -> 7 -> 3). After the last stage: flatten -> Dense(classes, softmax).
The input arrives flat (the datasets store images as rows of pixels) and is reshaped to
``image_shape`` (NHWC) first, so the data pipeline is the MLP's.

placement keeps its MLP meaning, per convolution:
- ``none``: conv -> activation.
- ``before``: conv -> norm -> activation.
- ``after``: conv -> activation -> norm.
- ``after+input``: a norm on the input image too, then as ``after``.

Normalizers (:func:`norm_layer`; ``bench.engines._xla_cnn`` computes the same ops). Every
one has one gamma (and beta) per channel, as in Wu & He, "Group Normalization" (2018), whose
definitions for conv nets these are: they differ only in the set a mean and variance are
taken over.

- ``batch``: Keras ``BatchNormalization(axis=-1)``: per channel, over batch x height x width.
- ``group``: Keras ``GroupNormalization(groups=norm_groups, axis=-1)``: per example and
  group of C/G channels, over height x width x C/G.
- ``layer``: Wu & He's layer normalization, which is group normalization with one group:
  Keras ``GroupNormalization(groups=1)``, per example over height x width x channels.
  (``LayerNormalization(axis=-1)`` would normalize each pixel over its channels instead, and
  ``LayerNormalization(axis=[1, 2, 3])`` has the right statistics but a gamma and beta per
  pixel and channel, H*W times the parameters of every other arm.)
- ``rms``: root mean square over the same set as ``layer`` (height x width x channels of one
  example), no centring, one scale per channel: :class:`ChannelRMSNormalization`, Keras'
  ``RMSNormalization`` with its scale per channel (Keras' own layer over axes [1, 2, 3]
  would have a scale per pixel and channel, as above).

Initial weights come from :func:`bench.pairing.initial_cnn_weights`, drawn with NumPy per
seed: every placement starts from the same conv and head kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.factors import CNN_DEFAULT_WIDTHS

#: Image shape (height, width, channels) of the datasets a CNN can train on. The 8x8 digits
#: fit up to 3 stages (8 -> 4 -> 2 -> 1); synthetic data are not images.
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "digits": (8, 8, 1),
}

#: Default widths per stage: 7.1 MFLOP per training image, 4x fewer than (16, 32)
#: (docs/performance.md, "CNN").
DEFAULT_WIDTHS = CNN_DEFAULT_WIDTHS
CONVS_PER_STAGE = 2


@dataclass(frozen=True)
class CnnSpec:
    """Everything the CNN's compiled program depends on (seeds only change the numbers)."""

    image_shape: tuple[int, int, int]
    widths: tuple[int, ...]  # channels per stage
    n_classes: int
    placement: str
    activation: str
    normalizer: str = "batch"
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    optimizer: str = "sgd"
    learning_rate: float = 1e-3
    norm_groups: int = 4

    @classmethod
    def from_config(cls, cfg, dataset: str, n_classes: int) -> CnnSpec:
        """The spec of a ``RunConfig``'s cell."""
        return cls(IMAGE_SHAPES[dataset], tuple(cfg.widths), n_classes, cfg.placement, cfg.activation,
                   cfg.normalizer, cfg.bn_momentum, cfg.bn_epsilon, cfg.optimizer, cfg.learning_rate,
                   cfg.norm_groups)

    @property
    def conv_channels(self) -> list[tuple[int, int]]:
        """(in, out) channels of every convolution, in forward order."""
        pairs, c = [], self.image_shape[2]
        for w in self.widths:
            for _ in range(CONVS_PER_STAGE):
                pairs.append((c, w))
                c = w
        return pairs

    @property
    def norm_channels(self) -> list[int]:
        """Channels of each normalization layer, in forward order."""
        if self.placement == "none":
            return []
        first = [self.image_shape[2]] if self.placement == "after+input" else []
        return first + [out for _, out in self.conv_channels]

    @property
    def norm_layers(self) -> list[tuple[int, int]]:
        """(height x width, channels) of each normalization layer's input, in forward order."""
        if self.placement == "none":
            return []
        h, w, c = self.image_shape
        layers = [(h * w, c)] if self.placement == "after+input" else []
        for width in self.widths:
            layers += [(h * w, width)] * CONVS_PER_STAGE
            h, w = h // 2, w // 2
        return layers

    @property
    def head_features(self) -> int:
        """Inputs of the dense head: the last stage's output, flattened."""
        h, w, _ = self.image_shape
        for _ in self.widths:
            h, w = h // 2, w // 2
        return h * w * self.widths[-1]

    def footprint_bytes(self, batch: int) -> int:
        """Bytes one seed adds to a stacked program (float32), counted as
        ``bench.device.footprint_bytes`` counts the MLP's: weights, gradients and optimizer
        slots, moving statistics, and ``ACTIVATION_COPIES`` copies of every layer's output."""
        from bench.device import ACTIVATION_COPIES

        params = (sum(9 * i * o + o for i, o in self.conv_channels)
                  + self.head_features * self.n_classes + self.n_classes + 2 * sum(self.norm_channels))
        slots = {"sgd": 0, "momentum": 1, "adam": 2}[self.optimizer]
        h, w, c = self.image_shape
        per_example = h * w * c
        for width in self.widths:
            per_example += CONVS_PER_STAGE * h * w * width
            h, w = h // 2, w // 2
            per_example += h * w * width
        floats = (params * (2 + slots) + 2 * sum(self.norm_channels)
                  + ACTIVATION_COPIES * batch * (per_example + self.n_classes))
        return 4 * floats

    @property
    def activation_floats(self) -> int:
        """Floats of the largest activation of one example (sizes evaluation slices)."""
        h, w, c = self.image_shape
        return h * w * max(c, self.widths[0])


def spec_of(cfg, dataset: str, n_classes: int) -> CnnSpec | None:
    """The CNN a run trains, or None for the MLP: the one switch the engines read."""
    if cfg.architecture != "cnn":
        return None
    return CnnSpec.from_config(cfg, dataset, n_classes)


def check(dataset: str, widths: tuple[int, ...]) -> str | None:
    """Why this CNN cannot be built, as a one-line message naming the bad value; None if it can.

    (bench.spec refuses group counts that do not divide the channels, as for the MLP.)
    """
    if dataset not in IMAGE_SHAPES:
        return (f"architecture = 'cnn' needs image data ({', '.join(IMAGE_SHAPES)}), "
                f"got dataset = {dataset!r}")
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        return f"widths must be a non-empty list of positive integers, got {list(widths)!r}"
    side = min(IMAGE_SHAPES[dataset][:2])
    if side >> len(widths) < 1:
        return (f"widths has {len(widths)} stages but {dataset}'s {side}x{side} images allow at most "
                f"{side.bit_length() - 1} 2x2 poolings")
    return None


def norm_layer(spec: CnnSpec):
    """The Keras normalization layer of ``spec.normalizer`` (per channel, NHWC; see the
    module docstring for the definitions)."""
    import keras

    eps = spec.bn_epsilon
    if spec.normalizer == "batch":
        return keras.layers.BatchNormalization(axis=-1, momentum=spec.bn_momentum, epsilon=eps)
    if spec.normalizer in ("layer", "group"):
        groups = spec.norm_groups if spec.normalizer == "group" else 1
        return keras.layers.GroupNormalization(groups=groups, axis=-1, epsilon=eps)
    if spec.normalizer == "rms":
        from bench.model import ChannelRMSNormalization

        return ChannelRMSNormalization(epsilon=eps)
    raise ValueError(f"unknown normalizer {spec.normalizer!r}")


def build_cnn_model(spec: CnnSpec, seed: int, initializer: str):
    """The Keras CNN for ``spec`` with ``seed``'s initial weights; not compiled."""
    import keras

    from bench.model import placed
    from bench.pairing import initial_cnn_weights

    h, w, c = spec.image_shape
    layers = [keras.Input(shape=(h * w * c,)), keras.layers.Reshape(spec.image_shape)]
    if spec.placement == "after+input":
        layers.append(norm_layer(spec))
    weighted = []
    for width in spec.widths:
        for _ in range(CONVS_PER_STAGE):
            conv = keras.layers.Conv2D(width, 3, padding="same")
            weighted.append(conv)
            layers += placed(conv, spec.placement, lambda: norm_layer(spec), spec.activation)
        layers.append(keras.layers.MaxPooling2D(pool_size=2))
    head = keras.layers.Dense(spec.n_classes, activation="softmax")
    weighted.append(head)
    layers += [keras.layers.Flatten(), head]
    model = keras.Sequential(layers)
    init = initial_cnn_weights(seed, spec.conv_channels, spec.head_features, spec.n_classes, initializer)
    for layer, (kernel, bias) in zip(weighted, init, strict=True):
        layer.set_weights([kernel, bias])
    return model
