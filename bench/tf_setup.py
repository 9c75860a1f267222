"""Configure TensorFlow once per process: pinned thread counts and op determinism.

Must run before TensorFlow executes its first op; joblib/Dask workers call it at the start
of every task (it is idempotent). Without pinning, two workers on two cores each start a
thread pool as large as the machine and the wall times mean nothing.
"""

from __future__ import annotations

import os

from bench.device import use_device
from bench.host import cores

_configured_threads: int | None = None


def threads_per_worker(jobs: int, requested: int = 0) -> int:
    """Threads each worker may use so that workers x threads <= cores."""
    if requested:
        return requested
    return max(1, cores() // max(1, jobs))


def configure_tensorflow(threads: int, deterministic: bool = True, slot: int = 0) -> int:
    """Pin TensorFlow's intra- and inter-op pools, pick the device, turn on op determinism.

    On a GPU machine worker ``slot`` trains on GPU ``slot`` mod #GPUs and sees only that one
    (``bench.device.use_device``); without a GPU it trains on the CPU as before.

    Keras declines ``jit_compile=True`` while op determinism is on (not every op has a
    deterministic XLA kernel), so a spec that wants Keras with XLA sets
    ``engine.deterministic = false``.

    Returns the thread count actually in force (the first call in a process wins, because
    TensorFlow cannot change its pools once it has started).
    """
    global _configured_threads
    if _configured_threads is not None:
        return _configured_threads
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        _configured_threads = threads
    except RuntimeError:  # TensorFlow already initialized in this process
        _configured_threads = tf.config.threading.get_intra_op_parallelism_threads() or threads
    if use_device(slot).kind == "gpu":
        # Ampere and later GPUs run float32 matmuls in TF32 (10-bit mantissa) by default:
        # results would then differ from the CPU's far beyond float noise.
        tf.config.experimental.enable_tensor_float_32_execution(False)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return _configured_threads
