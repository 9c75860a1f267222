"""How to train S seeds of a conv net in one program on this CPU: layouts side by side.

    python tests/perf/measure_cnn_layouts.py --widths 8,16 --seeds 1,4 --rounds 2 \
        keras loop-nojit slices loop im2col grouped grouped-nojit

A training step (forward, ``tf.GradientTape`` backward, SGD) of the CNN of ``bench.cnn``
(BN ``before``, leaky ReLU, batch 32, MNIST rows gathered in-graph as the stacked engine does)
with the seeds' convolutions laid out as

- ``loop``: one ``conv2d`` per seed in the same program;
- ``grouped``: seeds folded into channel groups: one ``conv2d`` with S groups
  (``feature_group_count`` in XLA);
- ``im2col``: 3x3 patches by ``tf.image.extract_patches``, then one batched matmul per seed;
- ``slices``: im2col from 9 shifted slices of the padded input (no patch op), then the matmul;

each compiled with XLA, or with ``-nojit`` as a TensorFlow graph (oneDNN kernels); ``keras``
is ``model.fit`` on the same model (no XLA). Prints milliseconds per step per seed (best of 2
calls of K steps, after a compiling call) and the 1-minute load. Op determinism is off here
(XLA has no deterministic max-pool gradient). Before timing, every layout's convolution is
checked against per-seed ``tf.nn.conv2d`` on random data.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

B = 32


def convs():
    import tensorflow as tf

    def loop(h, k):
        return tf.stack([tf.nn.conv2d(h[s], k[s], 1, "SAME") for s in range(k.shape[0])])

    def grouped(h, k):
        S, _, H, W, C = h.shape
        n_out = k.shape[-1]
        x = tf.reshape(tf.transpose(h, [1, 2, 3, 0, 4]), [-1, H, W, S * C])
        f = tf.reshape(tf.transpose(k, [1, 2, 3, 0, 4]), [3, 3, C, S * n_out])
        return tf.transpose(tf.reshape(tf.nn.conv2d(x, f, 1, "SAME"), [-1, H, W, S, n_out]), [3, 0, 1, 2, 4])

    def im2col(h, k):
        S, _, H, W, C = h.shape
        p = tf.image.extract_patches(tf.reshape(h, [-1, H, W, C]), [1, 3, 3, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
        y = tf.einsum("smk,sko->smo", tf.reshape(p, [S, -1, 9 * C]), tf.reshape(k, [S, 9 * C, -1]))
        return tf.reshape(y, [S, -1, H, W, k.shape[-1]])

    def slices(h, k):
        S, _, H, W, C = h.shape
        p = tf.pad(h, [[0, 0], [0, 0], [1, 1], [1, 1], [0, 0]])
        cols = tf.concat([p[:, :, i:i + H, j:j + W, :] for i in range(3) for j in range(3)], axis=-1)
        y = tf.einsum("smk,sko->smo", tf.reshape(cols, [S, -1, 9 * C]), tf.reshape(k, [S, 9 * C, -1]))
        return tf.reshape(y, [S, -1, H, W, k.shape[-1]])

    return {"loop": loop, "grouped": grouped, "im2col": im2col, "slices": slices}


def check_layouts() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    h = tf.constant(rng.normal(size=(3, 5, 6, 7, 4)).astype(np.float32))
    k = tf.constant(rng.normal(size=(3, 3, 3, 4, 2)).astype(np.float32))
    expected = np.stack([tf.nn.conv2d(h[s], k[s], 1, "SAME").numpy() for s in range(3)])
    for name, conv in convs().items():
        got = tf.function(conv, jit_compile=True)(h, k).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=name)  # sums of 36 N(0,1) products


class Net:
    def __init__(self, S: int, conv, widths):
        import tensorflow as tf

        rng = np.random.default_rng(0)
        self.tf, self.conv, self.S, self.widths = tf, conv, S, widths
        self.ks, self.gs, self.bs = [], [], []
        c = 1
        for w in widths:
            for _ in range(2):
                self.ks.append(tf.Variable(rng.normal(0, np.sqrt(2 / (9 * c)), (S, 3, 3, c, w)).astype(np.float32)))
                self.gs.append(tf.Variable(tf.ones((S, w))))
                self.bs.append(tf.Variable(tf.zeros((S, w))))
                c = w
        side = 28 >> len(widths)
        self.head = tf.Variable(rng.normal(0, 0.01, (S, side * side * c, 10)).astype(np.float32))
        self.vars = self.ks + self.gs + self.bs + [self.head]

    def logits(self, x):
        tf = self.tf
        h = tf.reshape(x, [self.S, -1, 28, 28, 1])
        i = 0
        for _ in self.widths:
            for _ in range(2):
                h = self.conv(h, self.ks[i])
                m, v = tf.nn.moments(h, axes=[1, 2, 3], keepdims=True)
                h = tf.nn.batch_normalization(h, m, v, self.bs[i][:, None, None, None], self.gs[i][:, None, None, None], 1e-3)
                h = tf.nn.leaky_relu(h, 0.3)
                i += 1
            S, _, H, W, C = h.shape
            h = tf.reshape(tf.nn.max_pool2d(tf.reshape(h, [-1, H, W, C]), 2, 2, "VALID"), [S, -1, H // 2, W // 2, C])
        return tf.einsum("sbf,sfo->sbo", tf.reshape(h, [self.S, B, -1]), self.head)

    def steps(self, x_all, y_all, idx):
        tf = self.tf
        for i in tf.range(tf.shape(idx)[0]):
            x, y = tf.gather(x_all, idx[i]), tf.gather(y_all, idx[i])
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, self.logits(x)), 1))
            for v, g in zip(self.vars, tape.gradient(loss, self.vars)):
                v.assign_sub(0.01 * g)


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def stacked_ms(layout: str, S: int, widths, x_all, y_all, k: int) -> float:
    import tensorflow as tf

    name, jit = layout.removesuffix("-nojit"), not layout.endswith("-nojit")
    net = Net(S, convs()[name], widths)
    fn = tf.function(net.steps, jit_compile=jit)
    idx = tf.constant(np.random.default_rng(1).integers(0, x_all.shape[0], (k, S, B)).astype(np.int32))
    fn(x_all, y_all, idx)
    return min(_timed(lambda: fn(x_all, y_all, idx)) for _ in range(2)) / k / S * 1e3


def keras_ms(widths, x_all, y_all, k: int) -> float:
    import keras

    layers = [keras.Input((784,)), keras.layers.Reshape((28, 28, 1))]
    for w in widths:
        for _ in range(2):
            layers += [keras.layers.Conv2D(w, 3, padding="same"), keras.layers.BatchNormalization(),
                       keras.layers.LeakyReLU(0.3)]
        layers.append(keras.layers.MaxPooling2D())
    layers += [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=False, steps_per_execution=200)
    x, y = x_all.numpy()[:k * B], y_all.numpy()[:k * B]
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)
    return min(_timed(lambda: model.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False))
               for _ in range(2)) / k * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layouts", nargs="+")
    ap.add_argument("--widths", default="8,16")
    ap.add_argument("--seeds", default="1,4,8")
    ap.add_argument("--steps", type=int, default=20, help="K steps per timed call")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--data", default=os.environ.get("BNBENCH_DATA_DIR", "../shared/data") + "/mnist.npz")
    args = ap.parse_args()
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2, deterministic=False)
    import tensorflow as tf

    check_layouts()
    d = np.load(args.data)
    n = 11000
    x_all = tf.constant((d["x_train"][:n].reshape(n, -1) / 255).astype(np.float32))
    y_all = tf.constant(d["y_train"][:n].astype(np.int32))
    widths = tuple(int(w) for w in args.widths.split(","))
    print(f"widths {widths}; ms per training step per seed (batch {B}); load = 1-minute load average")
    for r in range(1, args.rounds + 1):
        for layout in args.layouts:
            for S in [1] if layout == "keras" else [int(s) for s in args.seeds.split(",")]:
                load = os.getloadavg()[0]
                try:
                    ms = keras_ms(widths, x_all, y_all, args.steps) if layout == "keras" else \
                        stacked_ms(layout, S, widths, x_all, y_all, args.steps)
                    print(f"| {r} | {layout} | {S} | {ms:.1f} | {load:.1f} |", flush=True)
                except Exception as e:  # a layout TensorFlow cannot run here: say so, go on
                    print(f"| {r} | {layout} | {S} | failed: {type(e).__name__} | {load:.1f} |", flush=True)


if __name__ == "__main__":
    main()
