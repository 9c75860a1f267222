"""The figures drawn with matplotlib and without a layout pass: the same medians as seaborn's
point plot gave, boxes as seaborn drew them, nothing drawn outside the computed canvas, the same
SVG on every render."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.backends.backend_svg import RendererSVG
from synthetic_store import make_spec

from reports import figures
from reports.load import load
from reports.render import build_interactions
from reports.tables import build_tables



def _runs(seed: int = 3) -> pd.DataFrame:
    """Seeded runs: numeric and string factors, unequal groups, ties, NaN values and levels."""
    rng = np.random.default_rng(seed)
    n = 400
    runs = pd.DataFrame({
        "learning_rate": rng.choice([0.001, 0.01, 0.0123456789, 0.1], n),
        "activation": rng.choice(["tanh", "relu", "gelu"], n, p=[0.5, 0.3, 0.2]),
        "arm": rng.choice(["none", "before", "after"], n, p=[0.2, 0.3, 0.5]),
        "final_val_acc": np.round(rng.uniform(0.8, 0.95, n), 2),  # rounded: ties
    })
    runs.loc[rng.choice(n, 30, replace=False), "final_val_acc"] = np.nan
    runs.loc[rng.choice(n, 10, replace=False), "learning_rate"] = np.nan
    return runs


@pytest.mark.parametrize("factor", ["learning_rate", "activation"])
def test_level_medians_are_seaborns_pointplot_medians(factor):
    runs = _runs()
    arms = ["none", "before", "after"]
    got = figures.level_medians(runs, factor)
    fig, ax = plt.subplots()
    sns.pointplot(data=runs, x=factor, y="final_val_acc", hue="arm", hue_order=arms, estimator="median",
                  errorbar=None, order=list(got.index), ax=ax)
    lines = [ln for ln in ax.get_lines() if len(ln.get_ydata()) == len(got)]
    plt.close(fig)
    assert len(lines) == len(arms)
    for arm, line in zip(arms, lines):
        np.testing.assert_array_equal(np.asarray(line.get_ydata(), float), got[arm].to_numpy(float))
    # and pandas' own median of each group, by definition
    for (level, arm), g in runs.dropna(subset=[factor, "final_val_acc"]).groupby([factor, "arm"]):
        assert got.loc[level, arm] == np.median(g["final_val_acc"].to_numpy())


def test_boxes_are_quartiles_median_and_tukey_whiskers():
    rng = np.random.default_rng(7)
    samples = [rng.normal(3, 0.1, k) for k in (1, 2, 5, 10, 11)] + [np.array([1.0, 1, 1, 1, 9])]
    fig, ax = plt.subplots()
    figures._boxes(ax, np.arange(len(samples), dtype=float), samples, 0.4, "C0")
    bars = [p for p in ax.patches]
    vlines, caps, medians = ax.collections
    plt.close(fig)
    for i, s in enumerate(samples):
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        iqr = q3 - q1
        lo = s[s >= q1 - 1.5 * iqr].min()
        hi = s[s <= q3 + 1.5 * iqr].max()
        assert bars[i].get_y() == pytest.approx(q1, abs=1e-12)
        assert bars[i].get_y() + bars[i].get_height() == pytest.approx(q3, abs=1e-12)
        assert medians.get_segments()[i][:, 1] == pytest.approx([med, med], abs=1e-12)
        n = len(samples)
        assert vlines.get_segments()[i][:, 1] == pytest.approx([lo, q1], abs=1e-12)
        assert vlines.get_segments()[n + i][:, 1] == pytest.approx([q3, hi], abs=1e-12)


@pytest.fixture(scope="module")
def many_arms(tmp_path_factory):
    """7 arms (legends beside the panels), 2 cells."""
    from bench.spec import parse_spec
    from synthetic_store import build_store

    spec = parse_spec({"grid": {"name": "arms", "seeds": 4, "epochs": 4, "target_accuracy": 0.9},
                       "factors": {"placement": ["none", "before", "after"], "normalizer": ["batch", "layer", "rms"],
                                   "learning_rate": [0.01, 0.1]}})
    return build_store(tmp_path_factory.mktemp("arms") / "arms.sqlite", spec, through_store=False)


@pytest.fixture(scope="module")
def many_levels(tmp_path_factory):
    """30 learning rates (thinned, turned level labels; a time-per-epoch axis of 12 cells)."""
    from synthetic_store import build_store

    spec = make_spec(placements=["none", "after"], seeds=3, epochs=4,
                     factors={"learning_rate": [0.001 * 1.13 ** i for i in range(30)], "activation": ["relu", "tanh"]})
    return build_store(tmp_path_factory.mktemp("levels") / "levels.sqlite", spec, through_store=False)


def _figures(store) -> dict[str, str]:
    data = load(store)
    tables = build_tables(data, 100)
    figs = figures.all_figures(data, tables.comparisons)
    inter = build_interactions(data, n_permutations=50)
    if inter is not None:
        figs["effect_by_level"] = figures.effect_by_level(inter.effects, data.arms)
    return figs


@pytest.mark.parametrize("store", ["planted_store", "many_arms", "many_levels"])
def test_everything_drawn_lies_on_the_canvas(store, request, monkeypatch):
    """The margins are computed, not measured by a layout pass: check them with one, by the
    SVG renderer at 72 dpi as ``savefig(format="svg")`` draws. Every text, legend and panel
    of every figure lies within the figure (0.02 in of slack for rounding)."""
    store = request.getfixturevalue(store)
    checked = []
    real = figures.to_svg

    def check(fig, **kw):
        dpi, fig.dpi = fig.dpi, 72
        w, h = fig.get_size_inches()
        box = fig.get_tightbbox(RendererSVG(w * 72, h * 72, io.StringIO()))
        fig.dpi = dpi
        checked.append((box.x0, box.y0, box.x1, box.y1, w, h))
        assert box.x0 >= -0.02 and box.y0 >= -0.02, (box, w, h)
        assert box.x1 <= w + 0.02 and box.y1 <= h + 0.02, (box, w, h)
        return real(fig, **kw)

    monkeypatch.setattr(figures, "to_svg", check)
    figs = _figures(store)
    assert len(checked) == sum(bool(s) for s in figs.values()) >= 5


def test_every_figure_is_the_same_svg_each_render(many_levels):
    assert _figures(many_levels) == _figures(many_levels)
