"""The CNN of ``bench.cnn`` in plain TensorFlow, S seeds stacked on a leading axis.

Activations are ``[S, B, H, W, C]``, conv kernels ``[S, 3, 3, in, out]``; each seed's
convolution is an ordinary ``conv2d``. The program runs as a TensorFlow graph, not XLA
(``bench.engines.stacked`` decides): measured side by side (docs/performance.md, "CNN",
``tests/perf/measure_cnn_layouts.py``), XLA's CPU convolutions made a training step
slower than TensorFlow's oneDNN kernels in every layout tried (per-seed convs, seeds as
channel groups of one grouped conv, im2col by ``extract_patches`` or by shifted slices, then
a batched matmul), and XLA refuses max-pool's gradient under op determinism.

Everything after the convolutions mirrors ``_xla_mlp`` (whose optimizer, metric and
evaluation code this class reuses): batch normalization per channel per seed, statistics over
batch and space (``tf.nn.moments`` over axes B, H, W: Keras' ``BatchNormalization(axis=-1)``),
moving averages with Keras' momentum formula; group and layer normalization as Keras'
``GroupNormalization._apply_normalization`` (moments per example over H, W and each group's
channels; layer = one group); RMS as ``keras.ops.rms_normalization`` over H, W, C with a
per-channel scale (bench/cnn.py defines the four); max-pool, the flattened last stage into the
softmax head, gradients by ``tf.GradientTape``. Seeds never mix: the only cross-seed op is
the sum of per-seed losses (derivative exactly 1 per seed).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bench.cnn import CONVS_PER_STAGE, CnnSpec
from bench.engines._xla_mlp import StackedMLP, _activate
from bench.pairing import initial_cnn_weights

def _conv(h: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """[S, B, H, W, I] * [S, 3, 3, I, O] -> [S, B, H, W, O], 'same' padding: one ordinary
    convolution per seed (TensorFlow's oneDNN kernel; independent ops that the inter-op pool
    may run side by side)."""
    return tf.stack([tf.nn.conv2d(h[s], k[s], 1, "SAME") for s in range(k.shape[0])])


def _max_pool(h: tf.Tensor) -> tf.Tensor:
    n_seeds, _, height, width, c = h.shape
    y = tf.nn.max_pool2d(tf.reshape(h, [-1, height, width, c]), 2, 2, "VALID")
    return tf.reshape(y, [n_seeds, -1, height // 2, width // 2, c])


class StackedCNN(StackedMLP):
    """Variables and step/eval functions for S seeds of one CNN cell.

    Reuses ``StackedMLP``'s optimizer updates, training step, metrics and evaluation loop;
    only the variables and the forward pass differ.
    """

    def __init__(self, spec: CnnSpec, seeds: list[int], initializer: str):
        self.spec, self.n_seeds = spec, len(seeds)
        S = self.n_seeds
        self.kernels = [tf.Variable(tf.zeros((S, 3, 3, i, o))) for i, o in spec.conv_channels]
        self.kernels.append(tf.Variable(tf.zeros((S, spec.head_features, spec.n_classes))))
        self.biases = [tf.Variable(tf.zeros((S, o))) for _, o in spec.conv_channels]
        self.biases.append(tf.Variable(tf.zeros((S, spec.n_classes))))
        widths = spec.norm_channels
        # As in the MLP: RMS normalization has no beta; only BN keeps moving statistics.
        beta_widths = [] if spec.normalizer == "rms" else widths
        moving_widths = widths if spec.normalizer == "batch" else []
        self.gammas = [tf.Variable(tf.ones((S, d))) for d in widths]
        self.betas = [tf.Variable(tf.zeros((S, d))) for d in beta_widths]
        self.moving_means = [tf.Variable(tf.zeros((S, d))) for d in moving_widths]
        self.moving_vars = [tf.Variable(tf.ones((S, d))) for d in moving_widths]
        self._make_training_state(spec.optimizer)
        self.reset(seeds, initializer)

    def reset(self, seeds: list[int], initializer: str) -> None:
        """Fresh state for these seeds, in the same variables (compiled programs stay valid)."""
        assert len(seeds) == self.n_seeds
        sp = self.spec
        per_seed = [initial_cnn_weights(s, sp.conv_channels, sp.head_features, sp.n_classes, initializer)
                    for s in seeds]
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
    def _norm(self, h: tf.Tensor, i: int, training: bool) -> tf.Tensor:
        """Normalization layer ``i`` (the spec's normalizer) of [S, B, H, W, C], per seed."""
        sp = self.spec
        if sp.normalizer in ("layer", "group"):
            g = sp.norm_groups if sp.normalizer == "group" else 1
            s, b, height, width, c = h.shape[0], tf.shape(h)[1], h.shape[2], h.shape[3], h.shape[4]
            grouped = tf.reshape(h, [s, b, height, width, g, c // g])
            mean, variance = tf.nn.moments(grouped, axes=[2, 3, 5], keepdims=True)
            inv = tf.math.rsqrt(variance + sp.bn_epsilon) * tf.reshape(self.gammas[i], [s, 1, 1, 1, g, c // g])
            beta = tf.reshape(self.betas[i], [s, 1, 1, 1, g, c // g])
            return tf.reshape(grouped * inv + (-mean * inv + beta), [s, b, height, width, c])
        if sp.normalizer == "rms":
            rrms = tf.math.rsqrt(tf.reduce_mean(tf.square(h), axis=[2, 3, 4], keepdims=True) + sp.bn_epsilon)
            return h * rrms * self.gammas[i][:, None, None, None, :]
        if training:
            mean, var = tf.nn.moments(h, axes=[1, 2, 3])  # [S, C] each; biased variance
            m = sp.bn_momentum
            self.moving_means[i].assign(self.moving_means[i] * m + mean * (1.0 - m))
            self.moving_vars[i].assign(self.moving_vars[i] * m + var * (1.0 - m))
        else:
            mean, var = self.moving_means[i], self.moving_vars[i]

        def b(v):
            return v[:, None, None, None, :]

        return tf.nn.batch_normalization(h, b(mean), b(var), b(self.betas[i]), b(self.gammas[i]),
                                         sp.bn_epsilon)

    def logits(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        """x: [S, B, F] flat images (or [B, F], shared by all seeds) -> logits [S, B, C]."""
        sp, norm, layer = self.spec, 0, 0
        if x.shape.rank == 2:
            x = tf.broadcast_to(x[None], [self.n_seeds, *x.shape])
        h = tf.reshape(x, [self.n_seeds, -1, *sp.image_shape])
        if sp.placement == "after+input":
            h, norm = self._norm(h, 0, training), 1
        for _ in sp.widths:
            for _ in range(CONVS_PER_STAGE):
                h = _conv(h, self.kernels[layer]) + self.biases[layer][:, None, None, None, :]
                layer += 1
                if sp.placement == "before":
                    h, norm = self._norm(h, norm, training), norm + 1
                h = _activate(sp.activation, h)
                if sp.placement in ("after", "after+input"):
                    h, norm = self._norm(h, norm, training), norm + 1
            h = _max_pool(h)
        flat = tf.reshape(h, [self.n_seeds, -1, sp.head_features])
        return tf.einsum("sbi,sio->sbo", flat, self.kernels[layer]) + self.biases[layer][:, None, :]
