"""How long ``bnbench report`` takes on large synthetic stores (no training involved).

Run with ``pytest tests/perf --benchmark-only``. The stores are built once per module,
outside the timed region, by inserting the same rows ``Store.write_result`` would write.
"""

from __future__ import annotations

import pytest
from synthetic_store import build_store, make_spec

from reports.render import render_report

#: name -> (extra factors, seeds): 3 placements x cells x seeds, 10 epochs per run.
SIZES = {
    # 3 placements x 20 cells x 10 seeds = 600 runs
    "600_runs": ({"activation": ["leaky_relu", "relu", "tanh", "sigmoid"],
                  "learning_rate": [0.001, 0.003, 0.01, 0.03, 0.1]}, 10),
    # 3 placements x 100 cells x 10 seeds = 3000 runs
    "3000_runs": ({"activation": ["leaky_relu", "relu", "tanh", "sigmoid"],
                   "learning_rate": [0.001, 0.003, 0.01, 0.03, 0.1],
                   "batch_size": [16, 32, 64, 128, 256]}, 10),
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


def test_render_html_report(benchmark, large_store):
    path, n_runs = large_store
    benchmark.extra_info["runs"] = n_runs
    html = benchmark.pedantic(render_report, args=(path,), rounds=2, iterations=1)
    assert html.count('<section id="') == 9


def test_render_markdown_report(benchmark, large_store):
    path, n_runs = large_store
    benchmark.extra_info["runs"] = n_runs
    md = benchmark.pedantic(render_report, args=(path,), kwargs={"fmt": "markdown"},
                            rounds=2, iterations=1)
    assert "## Findings" in md
