"""CPU calibration kernels: fixed work whose time tracks how fast this machine is right now.

The pytest-benchmark suite records them next to every benchmark (``extra_info["calibration_s"]``),
so raw times from different runs can be read against how fast the machine was. The perf gate
does not use them: it times the reference code alongside instead (``gate.py``), which also
cancels what a calibration kernel cannot (another CPU's microarchitecture).
"""

from __future__ import annotations

import numpy as np

_A = np.random.default_rng(0).standard_normal((384, 384)).astype(np.float32)


def numpy_matmul(repeats: int = 60) -> float:
    """BLAS-bound: repeated float32 GEMMs (like the MLP's matmuls)."""
    x = _A
    for _ in range(repeats):
        x = np.tanh(x @ _A * 0.05)
    return float(x[0, 0])


_TF_LOOP = None


def tf_matmul_loop(steps: int = 300) -> float:
    """TensorFlow-bound: an XLA-compiled loop of small matmuls, the engine's own regime."""
    global _TF_LOOP
    import tensorflow as tf

    if _TF_LOOP is None:
        w = tf.constant(_A[:256, :256] * 0.05)

        @tf.function(jit_compile=True)
        def loop(x, n):
            for _ in tf.range(n):
                x = tf.tanh(tf.einsum("sbi,io->sbo", x, w))
            return x

        _TF_LOOP = loop
    x = tf.ones((8, 32, 256))
    return float(_TF_LOOP(x, tf.constant(steps))[0, 0, 0])


def local_calibration() -> float:
    """Seconds for one TF loop plus one NumPy GEMM chain (geometric mean), ~0.3 s in all.

    Timed right before each round of an engine benchmark, so that it sees the same machine
    load as that round: load here comes and goes within seconds, and a calibration taken at
    the start of the suite does not see what a benchmark two minutes later sees.
    """
    import math
    import time

    t0 = time.perf_counter()
    tf_matmul_loop(600)
    t1 = time.perf_counter()
    numpy_matmul(60)
    t2 = time.perf_counter()
    return math.sqrt((t1 - t0) * (t2 - t1))
