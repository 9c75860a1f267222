"""The notebook MLP in plain TensorFlow, S seeds stacked on a leading axis.

Every tensor carries the seed axis first: kernels ``[S, in, out]``, activations
``[S, batch, width]``. Seeds never mix: the only cross-seed op is the sum of per-seed
losses handed to the tape, whose derivative w.r.t. each seed's loss is exactly 1, so each
seed's gradient is its own loss's gradient (and a NaN in one seed cannot leak into another).

The math mirrors Keras 3 op for op (see ``keras/src``): ``tf.nn.moments`` (biased variance,
used for the moving variance too) and ``tf.nn.batch_normalization`` for BN; moving averages
``moving * momentum + batch * (1 - momentum)``; layer and group normalization as
``keras.ops.layer_normalization`` and ``GroupNormalization._apply_normalization`` compute them
(``tf.nn.moments`` over each example's features or groups of features, ``inv = rsqrt(var +
eps) * gamma``, ``x * inv + (beta - mean * inv)``), RMS as ``keras.ops.rms_normalization``
(``x * rsqrt(mean(x^2) + eps) * scale``, no beta); only BN keeps moving statistics, so the
others evaluate exactly as they train; the softmax output's loss computed from the
logits by ``sparse_softmax_cross_entropy_with_logits`` (Keras takes the logits cached on the
softmax output, so no 1e-7 clipping happens in ``fit``); SGD, SGD momentum (0.9, not
Nesterov) and Adam (0.9, 0.999, 1e-7) with Keras' update formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from bench.model import LEAKY_RELU_SLOPE
from bench.pairing import initial_weights
from bench.spec import RunConfig

ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-7
SGD_MOMENTUM = 0.9


@dataclass(frozen=True)
class NetSpec:
    """What the compiled program depends on (one cell; seeds only change the numbers)."""

    sizes: tuple[int, ...]  # (features, *hidden, classes)
    placement: str
    activation: str
    optimizer: str
    learning_rate: float
    bn_momentum: float
    bn_epsilon: float
    normalizer: str = "batch"
    norm_groups: int = 4

    @classmethod
    def from_config(cls, cfg: RunConfig, n_features: int, n_classes: int) -> NetSpec:
        return cls((n_features, *cfg.hidden, n_classes), cfg.placement, cfg.activation,
                   cfg.optimizer, cfg.learning_rate, cfg.bn_momentum, cfg.bn_epsilon,
                   cfg.normalizer, cfg.norm_groups)

    @property
    def bn_widths(self) -> list[int]:
        """Width of each normalization layer, in forward order."""
        if self.placement == "none":
            return []
        widths = [self.sizes[0]] if self.placement == "after+input" else []
        return widths + list(self.sizes[1:-1])


def _activate(name: str, h: tf.Tensor) -> tf.Tensor:
    if name == "leaky_relu":
        return tf.nn.leaky_relu(h, alpha=LEAKY_RELU_SLOPE)
    if name == "relu":
        return tf.nn.relu(h)
    if name == "sigmoid":
        return tf.sigmoid(h)
    if name == "tanh":
        return tf.tanh(h)
    raise ValueError(f"unknown activation {name!r}")


def _layer_norm(h: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: float) -> tf.Tensor:
    """Keras 3's layer normalization over h's last axis, op for op (``_layer_normalization``
    in keras/src/ops/nn.py; GroupNormalization computes the same on [..., groups, size]).

    gamma and beta: [S, d] (broadcast over the batch) or already shaped like h's groups.
    """
    if gamma.shape.rank == 2:
        gamma, beta = gamma[:, None, :], beta[:, None, :]
    mean, variance = tf.nn.moments(h, axes=[-1], keepdims=True)
    inv = tf.math.rsqrt(variance + epsilon) * gamma
    return h * inv + (-mean * inv + beta)


def _dense(h: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """[S, B, I] x [S, I, O] -> [S, B, O].

    With one seed the batch axis is dropped: XLA's CPU backend ran a batch-1 batched dot
    about 25% slower than the plain GEMM (measured, docs/performance.md).
    """
    if kernel.shape[0] == 1 and _SQUEEZE_SINGLE:
        return tf.matmul(h[0], kernel[0])[None]
    return tf.einsum("sbi,sio->sbo", h, kernel)


#: Switch for measuring the S=1 shortcut against the batched dot (read at trace time).
_SQUEEZE_SINGLE = True


class StackedMLP:
    """Variables and step/eval functions for S seeds of one cell."""

    def __init__(self, spec: NetSpec, seeds: list[int], initializer: str):
        self.spec, self.n_seeds = spec, len(seeds)
        S, n_dense = self.n_seeds, len(spec.sizes) - 1
        pairs = zip(spec.sizes[:-1], spec.sizes[1:])
        self.kernels = [tf.Variable(tf.zeros((S, i, o))) for i, o in pairs]
        self.biases = [tf.Variable(tf.zeros((S, o))) for o in spec.sizes[1:]]
        assert len(self.kernels) == n_dense
        # RMS normalization has a scale (gamma) but no beta; only BN keeps moving statistics.
        beta_widths = [] if spec.normalizer == "rms" else spec.bn_widths
        moving_widths = spec.bn_widths if spec.normalizer == "batch" else []
        self.gammas = [tf.Variable(tf.ones((S, d))) for d in spec.bn_widths]
        self.betas = [tf.Variable(tf.zeros((S, d))) for d in beta_widths]
        self.moving_means = [tf.Variable(tf.zeros((S, d))) for d in moving_widths]
        self.moving_vars = [tf.Variable(tf.ones((S, d))) for d in moving_widths]
        self._make_training_state(spec.optimizer)
        self.reset(seeds, initializer)

    def _make_training_state(self, optimizer: str) -> None:
        """Optimizer slots, step counter and metric totals for the trainable variables."""
        self.trainable = self.kernels + self.biases + self.gammas + self.betas
        self.slots: list[list[tf.Variable]] = []
        if optimizer in ("momentum", "adam"):
            self.slots.append([tf.Variable(tf.zeros_like(v)) for v in self.trainable])
        if optimizer == "adam":
            self.slots.append([tf.Variable(tf.zeros_like(v)) for v in self.trainable])
        self.iterations = tf.Variable(0, dtype=tf.int64)
        # Keras' Mean metrics: float32 totals and a shared sample count.
        self.loss_total = tf.Variable(tf.zeros(self.n_seeds))
        self.correct_total = tf.Variable(tf.zeros(self.n_seeds))
        self.count = tf.Variable(0.0)

    def reset(self, seeds: list[int], initializer: str) -> None:
        """Fresh state for these seeds, in the same variables (compiled programs stay valid)."""
        assert len(seeds) == self.n_seeds
        per_seed = [initial_weights(s, list(self.spec.sizes), initializer) for s in seeds]
        for i, (k, b) in enumerate(zip(self.kernels, self.biases)):
            k.assign(np.stack([w[i][0] for w in per_seed]))
            b.assign(np.stack([w[i][1] for w in per_seed]))
        for v in self.betas + self.moving_means + [s for group in self.slots for s in group]:
            v.assign(tf.zeros_like(v))
        for v in self.gammas + self.moving_vars:
            v.assign(tf.ones_like(v))
        self.iterations.assign(0)
        self.reset_metrics()

    # ------------------------------------------------------------------ forward
    def _bn(self, h: tf.Tensor, i: int, training: bool) -> tf.Tensor:
        """Normalization layer ``i`` (the spec's normalizer) of h: [S, B, d]."""
        sp = self.spec
        if sp.normalizer == "layer":
            return _layer_norm(h, self.gammas[i], self.betas[i], sp.bn_epsilon)
        if sp.normalizer == "group":
            s, b, d, g = h.shape[0], tf.shape(h)[1], h.shape[2], sp.norm_groups
            grouped = tf.reshape(h, [s, b, g, d // g])
            gamma = tf.reshape(self.gammas[i], [s, 1, g, d // g])
            beta = tf.reshape(self.betas[i], [s, 1, g, d // g])
            return tf.reshape(_layer_norm(grouped, gamma, beta, sp.bn_epsilon), [s, b, d])
        if sp.normalizer == "rms":
            rrms = tf.math.rsqrt(tf.reduce_mean(tf.square(h), axis=-1, keepdims=True) + sp.bn_epsilon)
            return h * rrms * self.gammas[i][:, None, :]
        if training:
            mean, var = tf.nn.moments(h, axes=[1])  # [S, d] each; biased variance
            m = sp.bn_momentum
            self.moving_means[i].assign(self.moving_means[i] * m + mean * (1.0 - m))
            self.moving_vars[i].assign(self.moving_vars[i] * m + var * (1.0 - m))
        else:
            mean, var = self.moving_means[i], self.moving_vars[i]
        return tf.nn.batch_normalization(
            h, mean[:, None, :], var[:, None, :], self.betas[i][:, None, :],
            self.gammas[i][:, None, :], sp.bn_epsilon)

    def logits(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """x: [S, B, F] (or [B, F], shared by all seeds) -> logits [S, B, C].

        A shared x is broadcast rather than multiplied as one [B, F] x [F, S*O] GEMM: that
        reorders the sums and would make a seed's validation loss depend on S (by an ulp).
        """
        sp, bn = self.spec, 0
        h = x if x.shape.rank == 3 else tf.broadcast_to(x[None], [self.n_seeds, *x.shape])
        if sp.placement == "after+input":
            h, bn = self._bn(h, 0, training), 1
        for layer in range(len(sp.sizes) - 1):
            h = _dense(h, self.kernels[layer]) + self.biases[layer][:, None, :]
            if layer == len(sp.sizes) - 2:
                return h
            if sp.placement == "before":
                h, bn = self._bn(h, bn, training), bn + 1
            h = _activate(sp.activation, h)
            if sp.placement in ("after", "after+input"):
                h, bn = self._bn(h, bn, training), bn + 1
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ training
    def _apply(self, grads: list[tf.Tensor]) -> None:
        sp, lr = self.spec, self.spec.learning_rate
        if sp.optimizer == "sgd":
            for v, g in zip(self.trainable, grads):
                v.assign_sub(g * lr)
        elif sp.optimizer == "momentum":
            for v, m, g in zip(self.trainable, self.slots[0], grads):
                m.assign(m * SGD_MOMENTUM - g * lr)
                v.assign_add(m)
        else:
            step = tf.cast(self.iterations + 1, tf.float32)
            b1p = tf.pow(tf.constant(ADAM_BETA_1, tf.float32), step)
            b2p = tf.pow(tf.constant(ADAM_BETA_2, tf.float32), step)
            alpha = lr * tf.sqrt(1 - b2p) / (1 - b1p)
            for v, m, s, g in zip(self.trainable, self.slots[0], self.slots[1], grads):
                m.assign_add((g - m) * (1 - ADAM_BETA_1))
                s.assign_add((tf.square(g) - s) * (1 - ADAM_BETA_2))
                v.assign_sub((m * alpha) / (tf.sqrt(s) + ADAM_EPSILON))
        self.iterations.assign_add(1)

    def train_step(self, x: tf.Tensor, y: tf.Tensor) -> None:
        """One SGD step for every seed. x: [S, B, F] float32, y: [S, B] int32."""
        with tf.GradientTape() as tape:
            logits = self.logits(x, training=True)
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            loss = tf.reduce_mean(per_sample, axis=1)  # [S]: Keras' sum_over_batch_size
            total = tf.reduce_sum(loss)
        grads = tape.gradient(total, self.trainable)
        batch = tf.cast(tf.shape(y)[1], tf.float32)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        self.loss_total.assign_add(loss * batch)
        self.correct_total.assign_add(tf.reduce_sum(hits, axis=1))
        self.count.assign_add(batch)
        self._apply(grads)

    def reset_metrics(self) -> None:
        for v in (self.loss_total, self.correct_total, self.count):
            v.assign(tf.zeros_like(v))

    def train_metrics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed (mean loss, accuracy) since the last reset, as Keras' Mean metric."""
        count = self.count.numpy()
        return self.loss_total.numpy() / count, self.correct_total.numpy() / count

    # ------------------------------------------------------------------ evaluation
    def eval_per_sample(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Inference-mode (moving statistics) per-sample losses and hits, [nb, S, VB] each.

        x: [nb, VB, F] shared by all seeds, y: [nb, VB]. Sums are left to the caller (in
        float64 on the host) so that they do not depend on how many seeds share the program.
        """
        n_batches = tf.shape(x)[0]

        def body(i, losses, hits):
            logits = self.logits(x[i], training=False)  # [S, VB, C]
            labels = tf.broadcast_to(y[i][None], tf.shape(logits)[:2])
            per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
            return i + 1, losses.write(i, per), hits.write(i, hit)

        arrays = (tf.TensorArray(tf.float32, size=n_batches), tf.TensorArray(tf.float32, size=n_batches))
        _, losses, hits = tf.while_loop(lambda i, *_: i < n_batches, body, (tf.constant(0), *arrays))
        return losses.stack(), hits.stack()
