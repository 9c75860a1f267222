"""Benchmarks: one MNIST-slice epoch per engine and placement, a smoke grid, calibration.

The perf gate (``gate.py``) times the same ``ENGINES`` under the same names, on a smaller
slice, against a reference commit (``ab_suite.py``). Engine benchmarks time one epoch on 11,000 images for S seeds and report per-run seconds
in ``extra_info``; compilation is excluded where the engine can exclude it (the stacked
engine's program is compiled by a warm-up call and cached; Keras builds and traces a new
model inside every ``fit``, so its benchmark includes that, as it does in real use).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import calibration
from bench.engines import keras_fit, stacked
from .perf_helpers import notebook_configs

PLACEMENTS = ["none", "after+input"]
ENGINES = {
    # name: (engine module, seeds, engine settings)
    "keras_fit": (keras_fit, 1, {"name": "keras", "jit_compile": False, "steps_per_execution": 1}),
    "keras_xla": (keras_fit, 1, {"name": "keras", "jit_compile": True, "steps_per_execution": 200,
                                 "deterministic": False}),
    "stacked_s1": (stacked, 1, {"seeds_per_program": 1}),
    "stacked_s8": (stacked, 8, {"seeds_per_program": 8}),
}


def test_calibration_numpy(benchmark):
    benchmark.pedantic(calibration.numpy_matmul, rounds=5, warmup_rounds=1)


def test_calibration_tf(benchmark):
    benchmark.pedantic(calibration.tf_matmul_loop, rounds=5, warmup_rounds=1)


def test_calibration_local(benchmark):
    benchmark.pedantic(calibration.local_calibration, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("engine", list(ENGINES))
def test_one_epoch(benchmark, mnist_slice, engine, placement):
    module, seeds, settings = ENGINES[engine]
    cfgs = notebook_configs(placement, seeds, epochs=1, **settings)
    if module is stacked:
        module.train_cell(cfgs, mnist_slice)  # compile and cache the program
    calibrations: list[float] = []

    def setup():  # not timed: how fast the machine is right before each round (calibration.py)
        calibrations.append(calibration.local_calibration())
        return (cfgs, mnist_slice), {}

    results = benchmark.pedantic(module.train_cell, setup=setup, rounds=3)
    # setup() already ran once per round, so there is one calibration per timed round.
    benchmark.extra_info["calibration_s"] = min(calibrations)
    benchmark.extra_info["seeds"] = seeds
    benchmark.extra_info["epoch_s_per_run"] = results[0].epochs[0].epoch_s
    assert all(r.status == "ok" for r in results)


def test_smoke_grid(benchmark, tmp_path):
    """The whole pipeline on ablations/smoke.toml (digits, 3 placements x 3 seeds x 4 epochs)."""
    from bench.runner import run_grid
    from bench.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "ablations" / "smoke.toml")
    stores = iter(range(100))
    calibrations: list[float] = []

    def setup():
        calibrations.append(calibration.local_calibration())
        return (spec, tmp_path / f"smoke{next(stores)}.sqlite"), {"progress": False}

    outcome = benchmark.pedantic(run_grid, setup=setup, rounds=2)
    benchmark.extra_info["calibration_s"] = min(calibrations)
    assert outcome.statuses.get("ok", 0) == len(spec.expand())
