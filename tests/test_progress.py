"""Per-epoch progress (bench.progress): epochs reported in-process and from pool workers."""

from __future__ import annotations

import time

import pytest
from joblib import Parallel, delayed

from bench import progress


def _worker(q, run_ids: list[str], epochs: int) -> int:
    """What a pool worker does: route epoch_done to the driver's queue, train (here: report)."""
    progress.report_to(q)
    for _ in range(epochs):
        progress.epoch_done(run_ids)
    return epochs


def test_in_process_epochs_and_early_stops_end_at_the_total():
    budgets = {"a": 4, "b": 4, "c": 4}
    with progress.EpochBar(budgets, "t", enabled=True) as bar:
        for _ in range(2):
            progress.epoch_done(["a", "b"])  # a stacked program reports its seeds together
        assert bar.bar.n == 4
        bar.stored("a", "ok")  # reported 2 of 4 (stopped early): completed at storage
        assert bar.bar.n == 6
        progress.epoch_done(["a", "b"])  # a late message for a stored run is not counted
        assert bar.bar.n == 7
        bar.stored("b", "diverged")
        bar.stored("c", "failed")  # never reported an epoch
        assert bar.bar.n == bar.bar.total == 12
    assert progress._sink is None  # the sink is removed with the bar


def test_pool_workers_report_through_the_queue():
    budgets = {f"r{i}": 3 for i in range(4)}
    with progress.EpochBar(budgets, "t", enabled=True, pool=True) as bar:
        q = progress.worker_queue()
        Parallel(n_jobs=2, backend="loky")(
            delayed(_worker)(q, [f"r{2 * i}", f"r{2 * i + 1}"], 3) for i in range(2))
        for _ in range(100):  # the drain thread polls every 0.5 s at most
            if bar.bar.n == 12:
                break
            time.sleep(0.1)
        assert bar.bar.n == 12
        for r in budgets:
            bar.stored(r, "ok")
        assert bar.bar.n == 12
    assert progress.worker_queue() is None


def test_disabled_bar_costs_nothing():
    with progress.EpochBar({"a": 2}, "t", enabled=False) as bar:
        progress.epoch_done(["a"])
        bar.stored("a", "ok")
    assert progress._sink is None and progress.worker_queue() is None


@pytest.mark.slow
def test_tensorflow_startup_notices_are_silenced_by_importing_bench():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("import os, bench, tensorflow as tf; print(os.environ['TF_CPP_MIN_LOG_LEVEL']); "
            "tf.function(lambda x: x @ x, jit_compile=True)(tf.ones((2, 2)))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert "I0000" not in out.stderr and "absl::InitializeLog" not in out.stderr, out.stderr
