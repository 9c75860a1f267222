"""The report's figures as inline SVG strings (matplotlib's Agg backend, seaborn styling).

A grid of more than ``MAX_CELLS`` cells gets its learning curves and Kaplan–Meier curves as
one panel summarizing every cell (``figure_captions``) instead of a panel per cell: 300
panels could not be read, and the first 12 of them were an arbitrary sample that cost seconds
of matplotlib layout. The time-per-epoch strip plot shows the first ``MAX_CELLS`` cells and
says so (``figure_notes``).
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from reports import intervals, stats  # noqa: E402
from reports.load import StoreData  # noqa: E402
from reports.metrics import METRICS  # noqa: E402

MAX_CELLS = 12
MAX_FOREST_ROWS = 40

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "bnbench", "figure.dpi": 80})
sns.set_theme(style="whitegrid", context="notebook")


def to_svg(fig: plt.Figure, *, crop: bool = True) -> str:
    """The figure as an ``<svg>`` element (XML prolog stripped so it can be inlined).

    ``crop``: shrink the canvas to what is drawn (one more layout pass: measuring every text);
    figures laid out already (``tight_layout``, ``_grid``'s fixed margins) skip it.
    """
    buf = io.StringIO()
    if not crop:  # ``tight_layout`` leaves a placeholder engine, for which savefig lays out twice
        fig.set_layout_engine(None)
    # No date and fixed element ids: the same store gives the same SVG in every render.
    with plt.rc_context({"svg.hashsalt": "bnbench"}):
        fig.savefig(buf, format="svg", bbox_inches="tight" if crop else None, metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


#: Up to this many arms a legend sits inside a panel (placements: at most 4); more would
#: cover the data, so they get one legend beside the figure (``_legend_beside``).
INSIDE_LEGEND = 4


def _legend_beside(fig: plt.Figure, ax: plt.Axes, title: str) -> None:
    """``ax``'s legend entries as one legend right of the figure, every panel's own removed;
    save with ``crop=True`` so that the canvas grows to hold it."""
    handles, labels = ax.get_legend_handles_labels()
    for a in fig.axes:
        if a.get_legend():
            a.get_legend().remove()
    fig.legend(handles, labels, title=title, loc="upper left", bbox_to_anchor=(1.0, 1.0),
               fontsize=8, title_fontsize=9, frameon=False)


def palette(arms: list[str]) -> dict[str, tuple]:
    """A colour per arm: the colour-blind palette, or tab20 beyond its 10 colours."""
    name = "colorblind" if len(arms) <= 10 else "tab20"
    return dict(zip(arms, sns.color_palette(name, max(len(arms), 1))))


#: Margins of ``_grid``'s panels in inches: left (y tick labels and axis label), right, top
#: (panel titles), bottom (x tick labels and axis label), and the gaps between panels.
GRID_MARGINS = {"left": 0.75, "right": 0.15, "top": 0.35, "bottom": 0.55, "wgap": 0.25, "hgap": 0.75}


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncols: int = 3):
    """Panels of one size at fixed margins (``GRID_MARGINS``) instead of ``tight_layout``, whose
    text measuring cost seconds per figure at 12 panels; y labels on the left column only,
    x labels on the bottom row of each column only (``_label_grid``)."""
    cols = min(ncols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    m = GRID_MARGINS
    fig_w = m["left"] + m["right"] + width * cols + m["wgap"] * (cols - 1)
    fig_h = m["top"] + m["bottom"] + height * rows + m["hgap"] * (rows - 1)
    fig, axes = plt.subplots(rows, cols, figsize=(fig_w, fig_h), squeeze=False, sharey=True,
                             gridspec_kw={"left": m["left"] / fig_w, "right": 1 - m["right"] / fig_w,
                                          "bottom": m["bottom"] / fig_h, "top": 1 - m["top"] / fig_h,
                                          "wspace": m["wgap"] / width, "hspace": m["hgap"] / height})
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def _label_grid(axes: np.ndarray, n: int, xlabel: str, ylabel: str, ncols: int = 3) -> None:
    """Axis labels on the outer panels of ``_grid``: y on the left column, x on the lowest
    panel of each column."""
    cols = min(ncols, max(n, 1))
    for i, ax in enumerate(axes[:n]):
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        if i + cols >= n:
            ax.set_xlabel(xlabel)


def _title(ax: plt.Axes, cell: str) -> None:
    # y given: matplotlib then skips measuring the tick labels to place the title (seconds at scale)
    ax.set_title(cell if len(cell) <= 48 else cell[:45] + "...", fontsize=10, y=1.0)


def median_band(matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-column (epoch) median with its 95% interval from ``reports.intervals``.

    With one seed, or one value left in a column, the band collapses onto the median line.
    """
    cols = [intervals.interval(matrix[:, j]) for j in range(matrix.shape[1])]
    med = np.array([c.point for c in cols])
    low = np.array([c.low if math.isfinite(c.low) else c.point for c in cols])
    high = np.array([c.high if math.isfinite(c.high) else c.point for c in cols])
    return med, low, high


def summarized(data: StoreData) -> bool:
    """Whether the per-cell figures summarize all cells in one panel (more than ``MAX_CELLS``)."""
    return len(data.cells) > MAX_CELLS


def learning_curves(data: StoreData) -> str:
    """Validation accuracy by epoch: median and its 95% order-statistic band per arm, per cell."""
    ep = data.epochs[data.epochs["status"].isin(("ok", "diverged"))]
    if ep.empty:
        return ""
    if summarized(data):
        return learning_curves_summary(data, ep)
    cells = data.cells[:MAX_CELLS]
    colors = palette(data.arms)
    target = float(data.runs["target_accuracy"].median())
    ep = ep[ep["cell"].isin(cells)]
    wide = ep.set_index(["cell", "arm", "run_id", "epoch"])["val_acc"].unstack("epoch")
    groups = {key: g for key, g in wide.groupby(level=["cell", "arm"], sort=False)}
    fig, axes = _grid(len(cells))
    for ax, cell in zip(axes, cells):
        for arm in data.arms:
            m = groups.get((cell, arm))
            if m is None or m.empty:
                continue
            med, low, high = median_band(m.to_numpy(dtype=float))
            x = m.columns.to_numpy()
            ax.plot(x, med, color=colors[arm], label=arm, marker="o", ms=3)
            ax.fill_between(x, low, high, color=colors[arm], alpha=0.2, lw=0)
        ax.axhline(target, color="grey", ls="--", lw=1)
        _title(ax, cell)
    _label_grid(axes, len(cells), "epoch", "validation accuracy")
    if len(data.arms) > INSIDE_LEGEND:
        _legend_beside(fig, axes[0], data.arm_word)
        return to_svg(fig)
    axes[0].legend(title=data.arm_word, fontsize=8, loc="lower right")
    return to_svg(fig, crop=False)


def learning_curves_summary(data: StoreData, ep: pd.DataFrame) -> str:
    """One panel for all cells: per arm and epoch, the median over cells of each cell's
    median over seeds, with the 10–90% range over cells (a spread, not a confidence interval)."""
    colors = palette(data.arms)
    per_cell = ep.groupby(["arm", "epoch", "cell"], sort=True)["val_acc"].median()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm in data.arms:
        if arm not in per_cell.index.get_level_values(0):
            continue
        by_epoch = per_cell.loc[arm].groupby(level="epoch")
        q = by_epoch.quantile([0.1, 0.5, 0.9]).unstack()
        x = q.index.to_numpy(float)
        n = int(by_epoch.size().max())
        ax.plot(x, q[0.5], color=colors[arm], marker="o", ms=3, label=f"{arm} ({n} cells)")
        ax.fill_between(x, q[0.1], q[0.9], color=colors[arm], alpha=0.2, lw=0)
    ax.axhline(float(data.runs["target_accuracy"].median()), color="grey", ls="--", lw=1)
    ax.set_title(f"all {len(data.cells)} cells", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    if len(data.arms) > INSIDE_LEGEND:
        _legend_beside(fig, ax, data.arm_word)
    else:
        ax.legend(title=data.arm_word, fontsize=8, loc="lower right")
    return to_svg(fig)


def km_curves(data: StoreData) -> str:
    """Kaplan–Meier step curves: fraction of seeds at target by epoch (censoring-aware)."""
    runs = data.runs[data.runs["analysed"]]
    if runs.empty:
        return ""
    if summarized(data):
        return km_curves_summary(data, runs)
    cells = data.cells[:MAX_CELLS]
    colors = palette(data.arms)
    many = len(data.arms) > INSIDE_LEGEND
    fig, axes = _grid(len(cells))
    for ax, cell in zip(axes, cells):
        for arm in data.arms:
            sub = runs[(runs["cell"] == cell) & (runs["arm"] == arm)]
            if sub.empty:
                continue
            _km_step(ax, sub, colors[arm], arm)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
        _title(ax, cell)
        if not many:
            ax.legend(fontsize=7, loc="lower right")
    _label_grid(axes, len(cells), "epoch", "fraction of seeds at target")
    if many:  # the seeds per arm are in the summary table
        for line in axes[0].get_lines():
            line.set_label(line.get_label().split(" (n=")[0])
        _legend_beside(fig, axes[0], data.arm_word)
        return to_svg(fig)
    return to_svg(fig, crop=False)


def _km_step(ax, runs: pd.DataFrame, color, arm: str) -> None:
    """One arm's Kaplan–Meier step curve of ``runs``, held flat to the epoch budget."""
    km = stats.kaplan_meier(runs["ett_duration"], runs["reached"])
    x = np.append(km["epoch"].to_numpy(), float(runs["epochs_budget"].max()))
    y = np.append(km["fraction"].to_numpy(), km["fraction"].iloc[-1])
    ax.step(x, y, where="post", color=color, label=f"{arm} (n={len(runs)})")


def km_curves_summary(data: StoreData, runs: pd.DataFrame) -> str:
    """One panel for all cells: the Kaplan–Meier curve of each arm's runs of every cell
    pooled (fraction of all its runs at the target by epoch; cells weigh by their runs)."""
    colors = palette(data.arms)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm in data.arms:
        sub = runs[runs["arm"] == arm]
        if sub.empty:
            continue
        _km_step(ax, sub, colors[arm], arm)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"all {len(data.cells)} cells, runs pooled", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("fraction of runs at target")
    if len(data.arms) > INSIDE_LEGEND:
        _legend_beside(fig, ax, data.arm_word)
    else:
        ax.legend(fontsize=7, loc="lower right")
    return to_svg(fig)


def figure_captions(data: StoreData) -> dict[str, str]:
    """Captions replacing the template's for the figures drawn as one summary panel."""
    if not summarized(data):
        return {}
    n = len(data.cells)
    return {
        "learning_curves": f"Validation accuracy by epoch, all {n} cells in one panel: the median over "
                           "cells of each cell's median over seeds; band: 10–90% of cells (the spread "
                           "between cells, not a confidence interval); dashed line: target.",
        "km": f"Kaplan–Meier over the runs of all {n} cells pooled: fraction of runs at the target by "
              "epoch; runs that never reached it are censored at the budget. Dotted line: the median.",
    }


def figure_notes(data: StoreData, comparisons: pd.DataFrame) -> dict[str, str]:
    """What each capped figure leaves out, appended to its caption."""
    n = len(data.cells)
    notes = {}
    if n > MAX_CELLS:
        notes["time_per_epoch"] = f" Showing the first {MAX_CELLS} of {n} cells."
    comps = _forest_rows(comparisons)
    rows = int(comps.groupby("metric").size().max()) if len(comps) else 0
    if rows > MAX_FOREST_ROWS:
        notes["forest"] = f" Showing the first {MAX_FOREST_ROWS} of {rows} comparisons per metric."
    return notes


@contextlib.contextmanager
def _seeded_global_rng(seed: int = 0):
    """numpy's global generator seeded for the block, its state restored after.

    seaborn's strip-plot jitter draws from ``np.random`` (no generator argument), so the same
    store gave a different SVG each render; the caller's random state is left as it was.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def time_per_epoch(data: StoreData) -> str:
    """Per-run median epoch time: box plus every run as a point."""
    runs = data.runs[data.runs["analysed"] & data.runs["epoch_s_median"].notna()]
    runs = runs[runs["cell"].isin(data.cells[:MAX_CELLS])]
    if runs.empty:
        return ""
    many = runs["cell"].nunique() > 1
    x = "cell" if many else "arm"
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * runs[x].nunique() + 2), 3.8))
    kw = dict(data=runs, x=x, y="epoch_s_median", hue="arm", hue_order=data.arms,
              palette=palette(data.arms), ax=ax)
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated ``vert``
        warnings.simplefilter("ignore", DeprecationWarning)
        sns.boxplot(**kw, showfliers=False, boxprops={"alpha": 0.5}, legend=False)
    with _seeded_global_rng():
        sns.stripplot(**kw, dodge=many, size=3, jitter=0.2, legend=many)
    if many:  # beside the panel: "best" would test every point against the legend box
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=data.arm_word)
    ax.set_ylabel("time per epoch (s)")
    ax.set_xlabel("" if many else data.arm_word)
    if not many and runs[x].nunique() > 4:
        ax.tick_params(axis="x", rotation=30)
    if many:
        ax.tick_params(axis="x", rotation=20)
    return to_svg(fig)


def _forest_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The comparisons the forest plot can draw: its metrics, a finite difference."""
    keep = comparisons["metric"].isin(["final_val_acc", "epochs_to_target", "epoch_s"])
    return comparisons[keep & np.isfinite(comparisons["diff"].to_numpy(float))]


def forest(comparisons: pd.DataFrame) -> str:
    """Median paired differences with 95% CIs, one panel per metric."""
    comps = _forest_rows(comparisons)
    if comps.empty:
        return ""
    metrics = list(dict.fromkeys(comps["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 0.9 + 0.32 * min(
        MAX_FOREST_ROWS, comps.groupby("metric").size().max())), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sub = comps[comps["metric"] == metric].head(MAX_FOREST_ROWS)
        scale = 100.0 if metric == "final_val_acc" else 1.0
        y = np.arange(len(sub))[::-1]
        d = sub["diff"].to_numpy(float) * scale
        lo = sub["diff_low"].to_numpy(float) * scale
        hi = sub["diff_high"].to_numpy(float) * scale
        # an unbounded end (the data only say "at least") is drawn without a whisker
        err = np.vstack([np.nan_to_num(d - lo, posinf=0.0), np.nan_to_num(hi - d, posinf=0.0)]).clip(min=0.0)
        sig = sub["p_holm"].to_numpy(float) < 0.05
        ax.errorbar(d, y, xerr=err, fmt="none", ecolor="0.4", capsize=2)
        ax.scatter(d[sig], y[sig], color="C3", zorder=3, label="Holm p < 0.05")
        ax.scatter(d[~sig], y[~sig], color="0.5", zorder=3, label="not significant")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{c[:30]} · {p} vs {r}" for c, p, r in
                            zip(sub["cell"], sub["arm"], sub["reference"])], fontsize=8)
        unit = {"final_val_acc": "pp", "epochs_to_target": "epochs", "epoch_s": "s"}.get(metric, "")
        ax.set_xlabel(f"{sub['label'].iloc[0]} difference ({unit})")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return to_svg(fig)  # cropped: tight_layout leaves the last panel's x label at the edge


#: At most this many level labels on a factor axis; beyond, every k-th level is labelled. A
#: factor of 167 learning rates had 167 labels no one could read, and measuring them for
#: the layout took most of the figures' time in a 10,000-run report.
MAX_TICK_LABELS = 24


def _thinned(n: int) -> list[int]:
    """Positions of the levels to label among ``n``: all up to ``MAX_TICK_LABELS``, else
    every k-th from the first (the points of every level are still drawn)."""
    return list(range(0, n, math.ceil(n / MAX_TICK_LABELS) if n > MAX_TICK_LABELS else 1))


def interaction(data: StoreData) -> str:
    """Median final accuracy by each cell factor's level, one line per arm."""
    factors = data.cell_factors[:3]
    runs = data.runs[data.runs["analysed"] & data.runs["final_val_acc"].notna()]
    if not factors or runs.empty or len(data.arms) < 2:
        return ""
    fig, axes = plt.subplots(1, len(factors), figsize=(4.4 * len(factors), 3.4), squeeze=False,
                             sharey=True)
    for ax, factor in zip(axes[0], factors):
        sns.pointplot(data=runs, x=factor, y="final_val_acc", hue="arm",
                      hue_order=data.arms, palette=palette(data.arms),
                      estimator="median", errorbar=None, dodge=0.2, ax=ax)
        ax.set_ylabel("median final validation accuracy")
        ticks, labels = np.asarray(ax.get_xticks()), [t.get_text() for t in ax.get_xticklabels()]
        shown = _thinned(len(ticks))
        ax.set_xticks(ticks[shown], [labels[k] for k in shown])
        ax.tick_params(axis="x", rotation=20)
        if ax is not axes[0][0] and ax.get_legend():
            ax.get_legend().remove()
        elif ax.get_legend():
            ax.get_legend().set_title(data.arm_word)
    if len(data.arms) > INSIDE_LEGEND:
        _legend_beside(fig, axes[0][0], data.arm_word)
    return to_svg(fig)


#: (label, unit, scale) of the effect panels' metrics, read from ``reports.metrics``.
EFFECT_METRICS = {k: (METRICS[k].label, METRICS[k].unit, METRICS[k].scale) for k in ("final_val_acc", "epochs_to_target")}
MAX_FACTORS = 3


def _level(v: object) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def effect_by_level(effects: pd.DataFrame, arms: list[str]) -> str:
    """Paired effect of each arm vs the reference by factor level, with 95% CI bars.

    One row of panels per metric, one column per factor (the first ``MAX_FACTORS``).
    """
    e = effects[np.isfinite(effects["diff"].to_numpy(float))]
    if e.empty:
        return ""
    factors = list(dict.fromkeys(e["factor"]))[:MAX_FACTORS]
    metrics = [m for m in EFFECT_METRICS if m in set(e["metric"])]
    others = [p for p in arms if p in set(e["arm"])]
    colors = palette(arms)
    fig, axes = plt.subplots(len(metrics), len(factors), squeeze=False, sharey="row",
                             figsize=(max(4.8 * len(factors), 6.0), 3.2 * len(metrics)))
    width = 0.3 / max(len(others), 1)
    for i, metric in enumerate(metrics):
        label, unit, scale = EFFECT_METRICS[metric]
        for j, factor in enumerate(factors):
            ax = axes[i][j]
            sub = e[(e["metric"] == metric) & (e["factor"] == factor)]
            levels = sorted(set(effects.loc[effects["factor"] == factor, "level"]))
            pos = {lv: k for k, lv in enumerate(levels)}
            for k, arm in enumerate(others):
                s = sub[sub["arm"] == arm]
                if s.empty:
                    continue
                x = np.array([pos[lv] for lv in s["level"]], float) + (k - (len(others) - 1) / 2) * width
                d = s["diff"].to_numpy(float) * scale
                lo = s["diff_low"].to_numpy(float) * scale
                hi = s["diff_high"].to_numpy(float) * scale
                err = np.vstack([np.nan_to_num(d - lo), np.nan_to_num(hi - d)])
                ax.errorbar(x, d, yerr=err, fmt="o-", color=colors[arm], capsize=3, ms=5,
                            lw=1.2, label=f"{arm} − {s['reference'].iloc[0]}")
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xlim(-0.5, len(levels) - 0.5)
            shown = _thinned(len(levels))
            ax.set_xticks(shown, [_level(levels[k]) for k in shown], rotation=20 if len(levels) > 4 else 0)
            ax.set_xlabel(factor)
            if j == 0:
                ax.set_ylabel(f"{label}\ndifference ({unit})")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(others) > INSIDE_LEGEND:  # one row of labels would be wider than the figure
        fig.tight_layout()
        _legend_beside(fig, axes[0][0], "")
        return to_svg(fig)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if len(metrics) == 1 else 0.96))
    fig.legend(handles, labels, loc="upper center", ncol=max(len(labels), 1), fontsize=9,
               frameon=False)
    return to_svg(fig, crop=False)


def all_figures(data: StoreData, comparisons: pd.DataFrame) -> dict[str, str]:
    return {
        "learning_curves": learning_curves(data),
        "km": km_curves(data),
        "time_per_epoch": time_per_epoch(data),
        "forest": forest(comparisons),
        "interaction": interaction(data),
    }
