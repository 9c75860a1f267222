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
    shape = (fan_in, fan_out)
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
