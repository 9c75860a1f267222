"""The stacked engine: stacking is invisible, chunking is invisible, divergence stays per seed.

Exactness findings (measured on this machine, TF 2.21 XLA CPU):

- A seed trained inside an S-seed program vs the same seed alone: NOT bit-identical. XLA
  emits different code for a batched dot with S=3 than for S=1 (with or without the S=1
  GEMM shortcut), so kernels differ by ~1 ulp (3e-8) after one epoch, 6e-8 after two, and
  per-epoch metrics by <= 2.4e-7. We assert <= 1e-5 over two epochs: three orders of
  magnitude of headroom, still far below any difference that matters to the study.
- Same program, same inputs: bit-identical (determinism, chunking tests assert ==).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import bench.engines._xla_mlp as xla_mlp
from bench.engines import stacked
from .engine_helpers import make_configs, max_abs_diff, metric_rows, with_engine

#: Tests of bookkeeping (chunking, envelope, partial batch) run the same code as a plain
#: tf.function: XLA compilation (~1-2 s per program) would dominate the folder's run time.
#: Numerics under XLA are covered by the equality tests and tests/engines/test_stacked_vs_keras.py.
NO_XLA = False


@pytest.mark.parametrize("placement", ["none", "after+input"])
def test_stacked_seeds_equal_seeds_trained_alone(digits, placement):
    cfgs = make_configs([0, 1, 2], placement=placement, engine_opts={"seeds_per_program": 3})
    together = stacked.train_cell(cfgs, digits)
    alone = [stacked.train_cell([c], digits)[0] for c in with_engine(cfgs, seeds_per_program=1)]
    for t, a in zip(together, alone):
        assert t.seeds_in_program == 3 and a.seeds_in_program == 1
        assert max_abs_diff(t, a) <= 1e-5


def test_seeds_per_program_chunks_the_seeds(digits):
    cfgs = make_configs(5, placement="after", epochs=1,
                        engine_opts={"seeds_per_program": 2, "jit_compile": NO_XLA})
    results = stacked.train_cell(cfgs, digits)
    assert [r.config.seed for r in results] == [0, 1, 2, 3, 4]
    assert [r.seeds_in_program for r in results] == [2, 2, 2, 2, 1]
    assert len({r.epochs[-1].val_acc for r in results}) > 1  # different seeds, different runs


def test_same_config_twice_is_identical(digits):
    cfgs = make_configs(2, epochs=1, placement="after")
    first = stacked.train_cell(cfgs, digits)
    stacked._CACHE.clear()  # trace and compile again: determinism across compilations
    second = stacked.train_cell(cfgs, digits)
    for a, b in zip(first, second):
        assert metric_rows(a) == metric_rows(b)


def test_chunking_of_steps_does_not_change_results(digits):
    """1200 examples, batch 32: 37 full steps + a partial one of 16. K=7 leaves a 2-step
    remainder chunk (run by the K-step program with a smaller loop count); K=37 runs all full
    steps in one call. Both must give the same numbers."""
    base = make_configs(2, placement="after+input", optimizer="momentum", learning_rate=0.01)
    runs = [stacked.train_cell(with_engine(base, steps_per_execution=k), digits) for k in (7, 37)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert metric_rows(a) == metric_rows(b)


def test_step_count_is_not_compiled_in(digits):
    """One XLA program for every step count: n_steps stays a runtime argument of the loop.

    With ``for i in tf.range(n_steps)`` AutoGraph made n_steps the loop's maximum_iterations,
    a compile-time constant: the HLO differed per count, and each new count (an epoch's
    remainder chunk) compiled a new executable inside the timed epoch (docs/performance.md).
    """
    import tensorflow as tf

    tf.random.set_seed(0)  # lowering asks for a seed under op determinism
    cfgs = make_configs(2, engine_opts={"seeds_per_program": 2})
    prog = stacked._Program(cfgs, digits)
    idx = tf.constant(np.zeros((4, 2, 32), np.int32))
    hlo = [prog.train_fn.experimental_get_compiler_ir(prog.x_train, prog.y_train, idx,
                                                      tf.constant(n, tf.int32))(stage="hlo")
           for n in (3, 4)]
    assert hlo[0] == hlo[1]


def test_partial_last_batch_is_trained(digits):
    """Dropping the 16-example last batch would change the epoch's sample count and metrics."""
    assert len(digits.x_train) % 32 == 16
    cfg = make_configs(1, placement="after", epochs=1, engine_opts={"jit_compile": NO_XLA})[0]
    result = stacked.train_cell([cfg], digits)[0]
    prog = stacked._Program([cfg], digits)
    prog.compile(37, 32)
    prog.net.reset([cfg.seed], cfg.initializer)  # the warm-up step trained: undo it
    orders = np.arange(len(digits.x_train), dtype=np.int32)[None]
    prog.train(stacked._batches(orders, 0, 37, 32, 37), 37)
    assert prog.net.count.numpy() == 37 * 32
    prog.train(orders[:, 37 * 32:][None], 1)
    assert prog.net.count.numpy() == len(digits.x_train)
    assert result.status == "ok" and len(result.epochs) == 1


def test_no_partial_batch_when_it_divides(digits):
    from bench.datasets import Dataset
    from dataclasses import replace

    even = replace(digits, x_train=digits.x_train[:1184], y_train=digits.y_train[:1184])
    assert isinstance(even, Dataset) and len(even.x_train) % 32 == 0
    cfgs = make_configs(2, placement="none", engine_opts={"jit_compile": NO_XLA})
    results = stacked.train_cell(cfgs, even)
    assert all(r.status == "ok" and len(r.epochs) == 2 for r in results)


def test_huge_learning_rate_diverges(digits):
    cfgs = make_configs(2, epochs=3, activation="leaky_relu", placement="none", learning_rate=1e4,
                        engine_opts={"jit_compile": NO_XLA})
    for r in stacked.train_cell(cfgs, digits):
        assert r.status == "diverged", r.epochs
        assert "loss not finite in epoch 1" in r.error and r.diverged_epoch == 1
        assert len(r.epochs) == 1 and not math.isfinite(r.epochs[-1].train_loss)


def test_one_diverging_seed_leaves_the_others_untouched(digits, monkeypatch):
    """Seed 1 starts from absurd weights and blows up; seeds 0 and 2 in the same program
    must be bit-identical to a clean run."""
    cfgs = make_configs([0, 1, 2], epochs=3, placement="none", activation="relu")
    clean = stacked.train_cell(cfgs, digits)
    real = xla_mlp.initial_weights

    def poisoned(seed, sizes, initializer):
        layers = real(seed, sizes, initializer)
        if seed == 1:
            layers = [(k * np.float32(1e30), b) for k, b in layers]
        return layers

    monkeypatch.setattr(xla_mlp, "initial_weights", poisoned)
    mixed = stacked.train_cell(cfgs, digits)
    assert mixed[1].status == "diverged" and len(mixed[1].epochs) == 1
    for s in (0, 2):
        assert mixed[s].status == "ok"
        assert metric_rows(mixed[s]) == metric_rows(clean[s])


def test_result_envelope(digits):
    results = stacked.train_cell(make_configs(2, engine_opts={"jit_compile": NO_XLA}), digits)
    for r in results:
        assert r.compile_s > 0 and r.total_s > 0 and r.threads >= 1
        assert [e.epoch for e in r.epochs] == [1, 2]
        assert all(e.epoch_s > 0 for e in r.epochs)
        assert r.epochs[0].epoch_s == results[0].epochs[0].epoch_s  # amortized program time


def test_rejects_configs_of_two_programs(digits):
    cfgs = make_configs(1, placement="none") + make_configs(1, placement="after")
    with pytest.raises(ValueError, match="differ only by seed"):
        stacked.train_cell(cfgs, digits)


def test_auto_seeds_per_program_follows_the_device_and_is_recorded(digits, monkeypatch):
    """On a simulated 1-core CPU the limit is 4 seeds: 5 seeds train as 3 + 2, exactly as
    an explicit ``seeds_per_program = 3`` does (same programs), and each run says why."""
    from bench import device

    monkeypatch.setattr(device, "_ACTIVE", device.Device("cpu", "Simulated 1-core CPU", 8 << 30, cores=1))
    cfgs = make_configs(5, placement="after", epochs=1,
                        engine_opts={"seeds_per_program": "auto", "jit_compile": NO_XLA})
    auto = stacked.train_cell(cfgs, digits)
    assert [r.seeds_in_program for r in auto] == [3, 3, 3, 2, 2]
    explicit = stacked.train_cell(with_engine(cfgs, seeds_per_program=3), digits)
    for a, e in zip(auto, explicit):
        assert metric_rows(a) == metric_rows(e)
        assert a.host["device"]["name"] == "Simulated 1-core CPU"
        assert a.host["seeds_auto"]["seeds"] == 3 and a.host["seeds_auto"]["limit"] == 4
    assert "seeds_auto" not in explicit[0].host


def test_test_split_scored_with_final_and_with_kept_best_weights(digits, monkeypatch):
    """The test score "at best" is that of the weights of the best-validation epoch.

    Validation accuracy is planted to peak in epoch 2 of 4 (the real evaluation still runs),
    so the kept copy must be epoch 2's weights. The same seeds trained for exactly 2 epochs
    (same batches, same cached program: bit-identical weights) end with those weights, so
    their *final* test scores must equal the 4-epoch run's scores "at best" exactly.
    """
    planted = iter([None, 0.5, 0.9, 0.6, 0.7])  # None: the warm-up call before training
    real = stacked._Program.evaluate

    def evaluate(self, split="val"):
        loss, acc = real(self, split)
        value = next(planted) if split == "val" else None
        return loss, acc if value is None else np.full_like(acc, value)

    monkeypatch.setattr(stacked._Program, "evaluate", evaluate)
    cfgs = make_configs([0, 1], epochs=4, placement="after", engine_opts={"seeds_per_program": 2})
    results = stacked.train_cell(cfgs, digits)
    monkeypatch.setattr(stacked._Program, "evaluate", real)
    again = stacked.train_cell([replace(c, epochs=2) for c in cfgs], digits)
    for r, short in zip(results, again):
        assert r.status == "ok" and r.best_val_epoch == 2 and r.test.size == len(digits.y_test) == 297
        assert (short.test.final_loss, short.test.final_acc) == (r.test.best_loss, r.test.best_acc)
        assert r.test.final_loss != r.test.best_loss  # two epochs later the weights differ
