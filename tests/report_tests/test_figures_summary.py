"""Figures of a large grid: one summary panel instead of a panel per cell, and honest captions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_store import make_spec

from reports import figures, stats
from reports.load import load


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """13 cells (one more than ``MAX_CELLS``), 2 placements, 3 seeds."""
    from synthetic_store import build_store

    spec = make_spec(placements=["none", "after"], seeds=3, epochs=4,
                     factors={"learning_rate": [0.001 * (i + 1) for i in range(13)]})
    return load(build_store(tmp_path_factory.mktemp("big") / "big.sqlite", spec, through_store=False))


def test_large_grid_is_summarized(big):
    assert len(big.cells) == figures.MAX_CELLS + 1 and figures.summarized(big)
    for svg in (figures.learning_curves(big), figures.km_curves(big)):
        assert svg.count('id="axes_') == 1  # one panel, not 13
    caps = figures.figure_captions(big)
    assert set(caps) == {"learning_curves", "km"} and "13 cells" in caps["km"]
    assert figures.figure_notes(big, pd.DataFrame(columns=["metric", "diff"])) == {
        "time_per_epoch": f" Showing the first {figures.MAX_CELLS} of 13 cells."}


def test_strip_plot_is_the_same_each_render_and_leaves_the_global_rng_alone(big):
    """The strip plot's jitter comes from its own seeded generator (seaborn's drew from
    np.random): the same each render, the caller's stream untouched. (The SVG has no date
    and fixed ids either, so a figure is the same text in every render.)"""
    np.random.seed(12345)
    expected = np.random.random(3)
    np.random.seed(12345)
    first = figures.time_per_epoch(big)
    assert np.array_equal(np.random.random(3), expected)  # the caller's stream continues
    assert figures.time_per_epoch(big) == first


def test_summary_curve_is_median_over_cells_of_cell_medians(big, monkeypatch):
    drawn = {}
    real_plot = figures.plt.Axes.plot

    def spy(ax, x, y, *a, **kw):
        drawn[kw.get("label", "").split(" ")[0]] = (np.asarray(x, float), np.asarray(y, float))
        return real_plot(ax, x, y, *a, **kw)

    monkeypatch.setattr(figures.plt.Axes, "plot", spy)
    figures.learning_curves(big)
    ep = big.epochs[big.epochs["status"].isin(("ok", "diverged"))]
    for placement in big.arms:
        sub = ep[ep["arm"] == placement]
        x, y = drawn[placement]
        for epoch, got in zip(x, y):
            cells = sub[sub["epoch"] == epoch].groupby("cell")["val_acc"].median()
            assert got == pytest.approx(float(np.median(cells.to_numpy())), abs=1e-12)


def test_pooled_km_is_the_km_of_all_runs(big, monkeypatch):
    drawn = {}
    real_step = figures.plt.Axes.step

    def spy(ax, x, y, *a, **kw):
        drawn[kw["label"].split(" ")[0]] = np.asarray(y, float)
        return real_step(ax, x, y, *a, **kw)

    monkeypatch.setattr(figures.plt.Axes, "step", spy)
    figures.km_curves(big)
    runs = big.runs[big.runs["analysed"]]
    for placement in big.arms:
        sub = runs[runs["arm"] == placement]
        km = stats.kaplan_meier(sub["ett_duration"], sub["reached"])
        np.testing.assert_array_equal(drawn[placement][:-1], km["fraction"].to_numpy())


def test_small_grid_keeps_a_panel_per_cell(make_store):
    spec = make_spec(placements=["none", "after"], seeds=3, epochs=4,
                     factors={"learning_rate": [0.001, 0.002]})
    data = load(make_store(spec, through_store=False))
    assert not figures.summarized(data) and figures.figure_captions(data) == {}
    assert figures.learning_curves(data).count('id="axes_') == 2
    assert figures.km_curves(data).count('id="axes_') == 2


def test_markdown_report_does_not_import_matplotlib_or_scipy_stats(make_store):
    """The Markdown report draws nothing, so it skips matplotlib's ~1.5 s import; its statistics
    use scipy.special, so it skips scipy.stats' ~1.3 s too (so does the HTML report's main
    process: its figures' worker imports both). A store with diverged and failed runs, two
    factors and three placements, so that every test and interval of the report runs."""
    import subprocess
    import sys

    spec = make_spec(placements=["none", "before", "after"],
                     factors={"activation": ["relu", "tanh"], "learning_rate": [0.01, 0.1]}, seeds=6, epochs=4)
    store = make_store(spec, through_store=False, diverged=[("after", 3)], failed=[("before", 2)])
    code = ("import sys; from reports.render import render_report; "
            f"render_report({str(store)!r}, fmt='markdown'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'seaborn') "
            "or m.startswith('scipy.stats')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("n, want", [(1, [0]), (24, list(range(24))), (25, list(range(0, 25, 2))),
                                     (167, list(range(0, 167, 7)))])
def test_factor_axes_label_at_most_max_tick_labels(n, want):
    shown = figures._thinned(n)
    assert shown == want and len(shown) <= figures.MAX_TICK_LABELS


def test_many_arms_summary_puts_one_legend_beside(tmp_path):
    """Above 4 arms (normalizer x placement) the summary panels' legend leaves the panel."""
    from bench.spec import parse_spec
    from synthetic_store import build_store

    spec = parse_spec({"grid": {"name": "arms", "seeds": 3, "epochs": 4, "target_accuracy": 0.9},
                       "factors": {"placement": ["none", "before", "after"], "normalizer": ["batch", "layer"],
                                   "learning_rate": [0.001 * (i + 1) for i in range(13)]}})
    data = load(build_store(tmp_path / "arms.sqlite", spec, through_store=False))
    assert len(data.arms) > figures.INSIDE_LEGEND and figures.summarized(data)
    for svg in (figures.learning_curves(data), figures.km_curves(data)):
        assert svg.count('id="axes_') == 1 and svg.count('id="legend_') == 1
        assert all(arm in svg for arm in data.arms)
