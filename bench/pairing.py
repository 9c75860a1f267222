"""Paired seeds: what a seed fixes, identically for every placement and every engine.

Seed *s* gives each placement the same initial Dense weights and the same data order, so
placements can be compared pair-wise. Both are drawn with NumPy here (never by TensorFlow),
so the Keras engine and the stacked engine start from the very same numbers.
"""

from __future__ import annotations

import numpy as np

# Keras' truncated normal keeps values within 2 stddev; its stddev is corrected so that the
# truncated distribution keeps the variance of the untruncated one.
_TRUNCATION_CORRECTION = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, std: float, shape: tuple[int, int]) -> np.ndarray:
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def init_matrix(rng: np.random.Generator, initializer: str, fan_in: int, fan_out: int) -> np.ndarray:
    """One Dense kernel, with the same variance rule as the Keras initializer of that name."""
    return init_kernel(rng, initializer, (fan_in, fan_out))


def initial_weights(
    seed: int, layer_sizes: list[int], initializer: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) per Dense layer for sizes like [784, 300, 100, 10].

    Hidden layers use ``initializer``; the softmax output layer uses Glorot uniform as the
    notebook's ``Dense(10, activation="softmax")`` did. Biases start at zero.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    layers = []
    n_dense = len(layer_sizes) - 1
    for i, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        name = initializer if i < n_dense - 1 else "glorot_uniform"
        layers.append((init_matrix(rng, name, fan_in, fan_out), np.zeros(fan_out, np.float32)))
    return layers


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of the training set for ``epoch`` (1-based) under ``seed``."""
    return np.random.default_rng([seed, epoch, 0xDA7A]).permutation(n)



def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras' ``compute_fans`` counts them: a conv kernel
    (kh, kw, in, out) has fan_in = kh*kw*in and fan_out = kh*kw*out."""
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def init_kernel(rng: np.random.Generator, initializer: str, shape: tuple[int, ...]) -> np.ndarray:
    """A kernel of any rank (Dense or conv) with the Keras initializer's variance rule.

    A Dense kernel is the 2-D case (``init_matrix``).
    """
    fan_in, fan_out = keras_fans(shape)
    if initializer == "he_normal":
        w = _truncated_normal(rng, np.sqrt(2.0 / fan_in) / _TRUNCATION_CORRECTION, shape)
    elif initializer == "lecun_normal":
        w = _truncated_normal(rng, np.sqrt(1.0 / fan_in) / _TRUNCATION_CORRECTION, shape)
    elif initializer == "glorot_normal":
        w = _truncated_normal(rng, np.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATION_CORRECTION, shape)
    elif initializer == "he_uniform":
        limit = np.sqrt(6.0 / fan_in)
        w = rng.uniform(-limit, limit, size=shape)
    elif initializer == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=shape)
    else:
        raise ValueError(f"unknown initializer {initializer!r}")
    return w.astype(np.float32)


def initial_cnn_weights(
    seed: int, conv_channels: list[tuple[int, int]], head_features: int, n_classes: int,
    initializer: str, kernel_size: int = 3,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) per conv layer ((k, k, in, out) kernels), then the dense head's.

    Convs use ``initializer``; the softmax head uses Glorot uniform, as the MLP's output
    layer. Biases start at zero. Drawn from a stream of its own (the CNN shares no weights
    with the MLP), the same for every placement: norm layers have no random weights.
    """
    rng = np.random.default_rng([seed, 0xC0111])
    layers = []
    for c_in, c_out in conv_channels:
        kernel = init_kernel(rng, initializer, (kernel_size, kernel_size, c_in, c_out))
        layers.append((kernel, np.zeros(c_out, np.float32)))
    head = init_kernel(rng, "glorot_uniform", (head_features, n_classes))
    layers.append((head, np.zeros(n_classes, np.float32)))
    return layers
