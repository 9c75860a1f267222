"""Where a stacked training step's time goes: each GEMM of the notebook MLP alone, and whole steps.

    python tests/perf/measure_step_parts.py            # S=8, batch 32, 784-300-100-10, ~2 min quiet

Every variant is one ``tf.function(jit_compile=True)`` call running ``--steps`` iterations of
an XLA while-loop; each iteration gathers its own [S, B] rows of an 11,000-image MNIST slice
(as the engine does), so nothing can be hoisted out of the loop. Variants are interleaved,
``--repeats`` rounds, best time kept (interference only adds time); GFLOP/s counts 2 FLOP per
multiply-add of the GEMM(s) named. The 1-minute load is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def gemm_variants(lr: float):
    """name -> (body(h [S, B, 784], w [S, 784, 300], acc) -> acc, which start value acc takes).

    Each body is one product of layer 1 (2 S B 784 300 FLOP). ``acc`` is what the loop carries:
    the kernel itself where the variant updates it (``"w"``), else a small [S, B, out] sum of
    the products (cheap, and it keeps every product alive). The output gradient dz is a
    stand-in, the gathered rows' first 300 columns: the same shape and cost as the real one.
    """
    import tensorflow as tf

    def fwd(h, w, acc):  # layer 1's forward product
        return acc + tf.einsum("sbi,sio->sbo", h, w)

    def wgrad_update(h, w, acc):  # weight gradient of layer 1 and the SGD update, as the tape does
        return acc - tf.einsum("sbi,sbo->sio", h, h[:, :, :300]) * lr

    def wgrad_folded(h, w, acc):  # the same with -lr folded into the output gradient first
        return acc + tf.einsum("sbi,sbo->sio", h, h[:, :, :300] * -lr)

    def igrad(h, w, acc):  # layer 1's input gradient (after+input only)
        return acc + tf.einsum("sbo,sio->sbi", h[:, :, :300], w)

    def fwd_t(h, w, acc):  # the same product with a [S, out, in] kernel (w transposed)
        return acc + tf.einsum("sbi,soi->sbo", h, w)

    def fwd_out_t(h, w, acc):  # the transposed product [S, out, B] = w^T h^T, transposed back
        return acc + tf.transpose(tf.einsum("sio,sbi->sob", w, h), [0, 2, 1])

    def fwd_unstacked(h, w, acc):  # one plain GEMM per seed
        return acc + tf.stack([tf.matmul(h[s], w[s]) for s in range(h.shape[0])])

    def fwd_batch_major(h, w, acc):  # activations [B, S, in] (the gather transposes the rows)
        return acc + tf.einsum("bsi,sio->bso", tf.transpose(h, [1, 0, 2]), w)

    return {"L1 forward": (fwd, "small"), "L1 forward, kernel [S,O,I]": (fwd_t, "small_t"),
            "L1 forward, activations [B,S,I]": (fwd_batch_major, "small_bs"),
            "L1 forward, output [S,O,B]": (fwd_out_t, "small"),
            "L1 forward, one GEMM per seed": (fwd_unstacked, "small"), "L1 wgrad+update": (wgrad_update, "w"),
            "L1 wgrad+update folded": (wgrad_folded, "w"), "L1 input grad": (igrad, "input")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="8", help="seeds per program; several (8,16) time the steps at each")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--placements", default="none,after+input")
    ap.add_argument("--only", default="", help="time only the parts whose name contains this")
    args = ap.parse_args(argv)

    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2, deterministic=True)
    import numpy as np
    import tensorflow as tf

    from bench.datasets import load_dataset
    from bench.engines._xla_mlp import NetSpec, StackedMLP
    from throughput import train_flops_per_sample

    data = load_dataset("mnist", 5000, train_limit=11000)
    x_all, y_all = tf.constant(data.x_train), tf.constant(data.y_train.astype(np.int32))
    seed_counts = [int(s) for s in args.seeds.split(",")]
    S, B, K = seed_counts[0], args.batch, args.steps
    rng = np.random.default_rng(0)
    idx = tf.constant(rng.integers(0, len(data.x_train), (K, S, B)).astype(np.int32))

    calls = {}
    w0 = tf.constant(rng.standard_normal((S, 784, 300)).astype(np.float32) * 0.01)
    start = {"w": w0, "small": tf.zeros((S, B, 300)), "input": tf.zeros((S, B, 784)),
             "small_t": tf.zeros((S, B, 300)), "small_bs": tf.zeros((B, S, 300))}
    w0_t = tf.transpose(w0, [0, 2, 1])
    for name, (body, carried) in gemm_variants(1e-3).items():
        fn = tf.function(lambda w, acc, body=body: _loop(tf, body, w, acc, x_all, idx, K), jit_compile=True)
        calls[name] = (2 * S * B * 784 * 300 * K,
                       lambda fn=fn, acc=start[carried], w=w0_t if carried == "small_t" else w0:
                       fn(w, acc).numpy().ravel()[0])

    per_seed = {}
    for placement, n_seeds in ((p, n) for p in args.placements.split(",") for n in seed_counts):
        spec = NetSpec((784, 300, 100, 10), placement, "leaky_relu", "sgd", 1e-3, 0.99, 1e-3)
        net = StackedMLP(spec, list(range(n_seeds)), "glorot_uniform")
        rows = tf.constant(rng.integers(0, len(data.x_train), (K, n_seeds, B)).astype(np.int32))

        def steps(net=net, rows=rows):
            for i in tf.range(K):
                net.train_step(tf.gather(x_all, rows[i]), tf.gather(y_all, rows[i]))

        fn = tf.function(steps, jit_compile=True)
        flops = train_flops_per_sample(spec.sizes, placement) * n_seeds * B * K
        name = f"train step, {placement}" + (f", S={n_seeds}" if len(seed_counts) > 1 else "")
        per_seed[name] = n_seeds
        calls[name] = (flops, lambda fn=fn, net=net: (fn(), net.kernels[0][0, 0, 0].numpy()))

    calls = {n: c for n, c in calls.items() if args.only in n}
    for call in calls.values():  # compile and warm up
        call[1]()
    best = {name: float("inf") for name in calls}
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, (_, call) in calls.items():
            t0 = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - t0)
    load1 = os.getloadavg()[0]
    print(f"# S={S} B={B} steps={K} repeats={args.repeats} load {load0:.2f} -> {load1:.2f}")
    print("| part | ms / step | ms / step / seed | GFLOP/s |\n|---|---:|---:|---:|")
    for name, (flops, _) in calls.items():
        ms = 1e3 * best[name] / K
        seed_ms = f"{ms / per_seed[name]:.3f}" if name in per_seed else ""
        print(f"| {name} | {ms:.3f} | {seed_ms} | {flops / best[name] / 1e9:.1f} |")
    print(json.dumps({n: best[n] / K for n in best}))
    return 0


def _loop(tf, body, w, acc, x_all, idx, steps):
    for i in tf.range(steps):
        acc = body(tf.gather(x_all, idx[i]), w, acc)
    return acc


if __name__ == "__main__":
    sys.exit(main())
