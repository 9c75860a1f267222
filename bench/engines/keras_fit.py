"""The reference engine: Keras ``model.fit``, one seed at a time.

This is the notebook's way of training, with its speed knobs (``jit_compile``,
``steps_per_execution``) taken from the spec. Each epoch is one ``fit`` call on the
seed's own permutation of the data (shuffle=False), so data order is paired across
placements and identical to the stacked engine's.

XLA: Keras declines ``jit_compile`` while TensorFlow op determinism is on, so with
``engine.deterministic = true`` (the default) this engine asks for no XLA rather than
have Keras warn and fall back; set ``deterministic = false`` to measure Keras with XLA.

Test split: whenever validation accuracy strictly improves, a copy of every weight (BN
moving statistics included) is kept; after training the test split is evaluated with the
final weights and with that copy, each once.

Evaluation batches: validation and test examples are scored ``EVAL_BATCH_SIZE`` at a time,
not at the training batch size. In inference mode no normalizer depends on the batch
(batch normalization uses its moving statistics), so this changes only speed and the float
summation order of the mean loss; at batch size 2 it was most of a run's time (5,000
evaluation steps per pass over the 10,000 test images). The stacked engine evaluates in
large slices too.

Compile time: Keras compiles inside the first ``fit`` call, so it cannot be timed apart
exactly. It is estimated as the first epoch's excess over the median of the later ones,
and that excess is removed from the first epoch's time. With one epoch it is 0.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.datasets import Dataset
from bench.engines.common import diverged, make_result, now_iso
from bench.pairing import epoch_order
from bench.progress import epoch_done
from bench.results import EpochMetrics, RunResult, TestScores
from bench.spec import RunConfig

#: Examples per evaluation step (validation and test); at least the training batch size.
EVAL_BATCH_SIZE = 1024


def train_one(cfg: RunConfig, data: Dataset) -> RunResult:
    import keras

    from bench.cnn import build_cnn_model, spec_of
    from bench.model import build_model, make_optimizer

    started_at, t_start = now_iso(), time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    cnn = spec_of(cfg, data.name, data.n_classes)
    if cnn is None:
        model = build_model(cfg, data.n_features, data.n_classes)
    else:
        model = build_cnn_model(cnn, cfg.seed, cfg.initializer)
    model.compile(
        optimizer=make_optimizer(cfg),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=cfg.engine.jit_compile and not cfg.engine.deterministic,
        steps_per_execution=cfg.engine.steps_per_execution,
    )
    epochs: list[EpochMetrics] = []
    raw_s: list[float] = []
    best_acc, best_weights = -np.inf, None
    for epoch in range(1, cfg.epochs + 1):
        order = epoch_order(cfg.seed, epoch, len(data.x_train))
        x, y = data.x_train[order], data.y_train[order]
        t0 = time.perf_counter()
        hist = model.fit(
            x, y, batch_size=cfg.batch_size, epochs=1, shuffle=False, verbose=0,
            validation_data=(data.x_val, data.y_val),
            validation_batch_size=max(cfg.batch_size, EVAL_BATCH_SIZE),
        ).history
        raw_s.append(time.perf_counter() - t0)
        m = EpochMetrics(
            epoch=epoch,
            train_loss=float(hist["loss"][-1]),
            train_acc=float(hist["accuracy"][-1]),
            val_loss=float(hist["val_loss"][-1]),
            val_acc=float(hist["val_accuracy"][-1]),
            epoch_s=raw_s[-1],
        )
        epochs.append(m)
        epoch_done([cfg.run_id])
        if np.isfinite(m.val_acc) and m.val_acc > best_acc:
            best_acc, best_weights = m.val_acc, model.get_weights()
        if diverged(m):
            break
    test = _evaluate_test(model, data, cfg.batch_size, best_weights)
    compile_s = 0.0
    if len(raw_s) > 1:
        compile_s = max(0.0, raw_s[0] - statistics.median(raw_s[1:]))
        epochs[0].epoch_s = raw_s[0] - compile_s
    return make_result(
        cfg, epochs, compile_s=compile_s, total_s=time.perf_counter() - t_start,
        started_at=started_at, seeds_in_program=1,
        threads=_tensorflow_threads(keras.backend.backend()),
        test=test, data_fingerprint=data.fingerprint,
    )


def _tensorflow_threads(backend: str) -> int:
    """TensorFlow's intra-op threads; 0 under another Keras backend (JAX: the GPU device check,
    tests/perf/keras_device_check.py, where the device machines have no TensorFlow)."""
    if backend != "tensorflow":
        return 0
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def _evaluate_test(model, data: Dataset, batch_size: int, best_weights: list | None) -> TestScores:
    """Test loss and accuracy of the final weights, then of the kept best-validation weights."""
    def score() -> tuple[float, float]:
        r = model.evaluate(data.x_test, data.y_test, batch_size=max(batch_size, EVAL_BATCH_SIZE),
                           verbose=0, return_dict=True)
        return float(r["loss"]), float(r["accuracy"])

    final = score()
    best: tuple[float | None, float | None] = (None, None)
    if best_weights is not None:
        model.set_weights(best_weights)
        best = score()
    return TestScores(len(data.y_test), *final, *best)


def train_cell(configs: list[RunConfig], data: Dataset) -> list[RunResult]:
    return [train_one(cfg, data) for cfg in configs]
