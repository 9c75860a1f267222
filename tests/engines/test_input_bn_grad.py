"""``input_bn_dense``'s hand-written gradient (``after+input``'s input BN and first layer)
against the exact gradient, computed in float64 by the tape from the plain formula.

Inputs are float32 numbers, so the float64 path is exact to ~1e-16 and what is left is the
float32 rounding of either path. Bound (Higham, *Accuracy and Stability of Numerical
Algorithms*, eq. 3.4-3.5, any summation order): each gradient entry is a sum over the batch
and the layer's outputs of products, every term passing through at most B + O additions and
a few other roundings (products, the rsqrt of at most a few ulp, the subtraction of the mean
term), so |computed - exact| <= gamma_n * sum |terms| with n = B + O + 16, gamma_n = n u / (1 - n u),
u = 2^-24. The tape's own float32 gradient (what main computes) must meet the same bound; a
wrong formula (a missing term or factor) misses it by orders of magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bench.engines._xla_mlp import input_bn_dense

BATCH, N_IN, N_OUT, EPS = 32, 50, 20, 1e-3
U = 2.0**-24


def _plain(x, mean, var, gamma, beta, kernel, bias, eps):
    """The forward as the tape differentiates it in main (``StackedMLP._bn`` then ``_dense``)."""
    h = tf.nn.batch_normalization(x, mean[:, None, :], var[:, None, :], beta[:, None, :],
                                  gamma[:, None, :], eps)
    return tf.einsum("sbi,sio->sbo", h, kernel) + bias[:, None, :]


def _inputs(seeds: int) -> dict[str, np.ndarray]:
    """float32-representable float64 arrays; some input columns constant (MNIST's border pixels)."""
    rng = np.random.default_rng(seeds)
    x = rng.random((seeds, BATCH, N_IN))
    x[:, :, :5] = 0.0
    a = {"x": x, "gamma": 1 + 0.2 * rng.standard_normal((seeds, N_IN)), "beta": 0.2 * rng.standard_normal((seeds, N_IN)),
         "kernel": rng.standard_normal((seeds, N_IN, N_OUT)) / np.sqrt(N_IN), "bias": 0.1 * rng.standard_normal((seeds, N_OUT)),
         "dz": rng.standard_normal((seeds, BATCH, N_OUT)) / BATCH}
    a = {k: v.astype(np.float32).astype(np.float64) for k, v in a.items()}
    a["mean"] = a["x"].mean(axis=1).astype(np.float32).astype(np.float64)
    a["var"] = a["x"].var(axis=1).astype(np.float32).astype(np.float64)
    return a


def _grads(fn, a: dict[str, np.ndarray], dtype, jit: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """z and d(sum(z * dz)) / (gamma, beta, kernel, bias): dz is the upstream gradient."""
    t = {k: tf.constant(v, dtype) for k, v in a.items()}

    def run(gamma, beta, kernel, bias):
        with tf.GradientTape() as tape:
            tape.watch([gamma, beta, kernel, bias])
            z = fn(t["x"], t["mean"], t["var"], gamma, beta, kernel, bias, EPS)
            loss = tf.reduce_sum(z * t["dz"])
        return z, tape.gradient(loss, [gamma, beta, kernel, bias])

    z, grads = tf.function(run, jit_compile=True)(*map(t.get, ("gamma", "beta", "kernel", "bias"))) if jit \
        else run(*map(t.get, ("gamma", "beta", "kernel", "bias")))
    return z.numpy(), [g.numpy() for g in grads]


def _bounds(a: dict[str, np.ndarray]) -> list[np.ndarray]:
    """gamma_n times the sum of |terms| of each gradient entry (float64), in (gamma, beta, kernel, bias) order."""
    n = BATCH + N_OUT + 16
    gamma_n = n * U / (1 - n * U)
    r = 1 / np.sqrt(a["var"] + EPS)  # [S, I]
    dz_w = np.einsum("sbo,sio->sbio", np.abs(a["dz"]), np.abs(a["kernel"]))  # |dz_bo W_io|
    x_abs = np.abs(a["x"]) + np.abs(a["mean"])[:, None, :]  # |x_bi| + |mean_i|
    d_gamma = np.einsum("sbi,sbio->si", x_abs, dz_w) * r
    d_beta = dz_w.sum(axis=(1, 3))
    inv = r * np.abs(a["gamma"])
    h_abs = np.abs(a["x"]) * inv[:, None, :] + (np.abs(a["beta"]) + np.abs(a["mean"]) * inv)[:, None, :]
    d_kernel = np.einsum("sbi,sbo->sio", h_abs, np.abs(a["dz"]))
    d_bias = np.abs(a["dz"]).sum(axis=1)
    return [gamma_n * b for b in (d_gamma, d_beta, d_kernel, d_bias)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("seeds", [1, 3])
def test_input_bn_dense_gradient_within_float32_rounding(seeds, jit):
    a = _inputs(seeds)
    z_exact, exact = _grads(_plain, a, tf.float64, jit=False)
    bounds = _bounds(a)
    z_plain, tape32 = _grads(_plain, a, tf.float32, jit)
    z_fused, fused32 = _grads(input_bn_dense, a, tf.float32, jit)
    np.testing.assert_array_equal(z_fused, z_plain)  # the forward is main's, op for op
    for name, got, want, tape, bound in zip(("gamma", "beta", "kernel", "bias"), fused32, exact, tape32, bounds):
        assert np.all(np.abs(tape - want) <= bound), f"d {name}: the tape's float32 gradient misses the bound"
        assert np.all(np.abs(got - want) <= bound), f"d {name}: off by up to {np.max(np.abs(got - want) - bound):.3g} beyond the bound"
    # The bound is tight enough to catch a wrong formula: d gamma without its mean term is far off.
    wrong = exact[0] + a["mean"] * exact[1] / np.sqrt(a["var"] + EPS)
    assert np.any(np.abs(wrong - exact[0]) > 100 * bounds[0])
