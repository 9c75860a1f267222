"""How long ``bnbench report`` takes on large synthetic stores (no training involved).

Run with ``pytest tests/perf --benchmark-only``. The stores are built once per module,
outside the timed region, by inserting the same rows ``Store.write_result`` would write.
Measured, not gated (the speed gate is tests/perf/gate.py; its report benchmarks are in
ab_suite.py). Each round is preceded by an untimed calibration kernel whose minimum is kept in
``extra_info["calibration_s"]``: how fast the machine was at that moment.
"""

from __future__ import annotations

import pytest
from synthetic_store import build_store, make_spec

from reports.render import render_report

from . import calibration

#: name -> (extra factors, seeds): 3 placements x cells x seeds, 10 epochs per run.
SIZES = {
    # 3 placements x 20 cells x 10 seeds = 600 runs
    "600_runs": ({"activation": ["leaky_relu", "relu", "tanh", "sigmoid"],
                  "learning_rate": [0.001, 0.003, 0.01, 0.03, 0.1]}, 10),
    # 3 placements x 100 cells x 10 seeds = 3000 runs
    "3000_runs": ({"activation": ["leaky_relu", "relu", "tanh", "sigmoid"],
                   "learning_rate": [0.001, 0.003, 0.01, 0.03, 0.1],
                   "batch_size": [16, 32, 64, 128, 256]}, 10),
    # 3 placements x 334 cells x 10 seeds = 10,020 runs: issue 13's target (under 5 s on 2 cores)
    "10000_runs": ({"activation": ["relu", "tanh"],
                    "learning_rate": [round(0.001 * 1.03 ** i, 10) for i in range(167)]}, 10),
}


@pytest.fixture(scope="module", params=list(SIZES))
def large_store(request, tmp_path_factory):
    factors, seeds = SIZES[request.param]
    spec = make_spec(name=request.param, placements=["none", "before", "after"],
                     factors=factors, seeds=seeds, epochs=10)
    path = tmp_path_factory.mktemp("perf") / f"{request.param}.sqlite"
    n_runs = len(spec.expand())
    build_store(path, spec, through_store=False, diverged=[("after", 3)], failed=[("before", 2)])
    return path, n_runs


def _render(benchmark, large_store, **kwargs) -> str:
    """``render_report`` timed over 2 rounds, each after an untimed calibration."""
    path, n_runs = large_store
    calibrations: list[float] = []

    def setup():
        calibrations.append(calibration.local_calibration())
        return (path,), kwargs

    text = benchmark.pedantic(render_report, setup=setup, rounds=2)
    benchmark.extra_info["runs"] = n_runs
    benchmark.extra_info["calibration_s"] = min(calibrations)
    return text


def test_render_html_report(benchmark, large_store):
    html = _render(benchmark, large_store)
    assert html.count('<section id="') == 9


def test_render_markdown_report(benchmark, large_store):
    md = _render(benchmark, large_store, fmt="markdown")
    assert "## Findings" in md
