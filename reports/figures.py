"""The report's figures as inline SVG strings (matplotlib's Agg backend, seaborn's look).

A grid of more than ``MAX_CELLS`` cells gets its learning curves and Kaplan–Meier curves as
one panel summarizing every cell (``figure_captions``) instead of a panel per cell: 300
panels could not be read, and the first 12 of them were an arbitrary sample that cost seconds
of matplotlib layout. The time-per-epoch strip plot shows the first ``MAX_CELLS`` cells and
says so (``figure_notes``).

Speed (docs/performance.md): every figure is laid out once, at margins computed from the
sizes of its known texts (``_text_inches``), instead of ``tight_layout`` or a cropping pass
(each measures every tick label again); the figures are drawn with matplotlib alone, the
aggregates computed with pandas (seaborn's categorical plots drew an artist per group and
searched for a legend spot); the look and the colours are seaborn's own (``sns.set_theme``,
``sns.color_palette``), set from ``reports.theme`` without importing seaborn (which imports
scipy.stats, ~1.3 s) and checked against seaborn by the tests.
"""

from __future__ import annotations

import functools
import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import cbook  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import text_to_path  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from reports import intervals, stats, theme  # noqa: E402
from reports.load import StoreData  # noqa: E402
from reports.metrics import METRICS  # noqa: E402

MAX_CELLS = 12
MAX_FOREST_ROWS = 40

theme.apply()  # seaborn's whitegrid look (reports.theme: without importing seaborn)
plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "bnbench", "figure.dpi": 80})


def to_svg(fig: plt.Figure, *, crop: bool = False) -> str:
    """The figure as an ``<svg>`` element (XML prolog stripped so it can be inlined).

    ``crop``: shrink the canvas to what is drawn (a second layout pass measuring every text);
    the report's figures are laid out at computed margins and skip it.
    """
    buf = io.StringIO()
    # No date and fixed element ids: the same store gives the same SVG in every render.
    with plt.rc_context({"svg.hashsalt": "bnbench"}):
        fig.savefig(buf, format="svg", bbox_inches="tight" if crop else None, metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


@functools.lru_cache(maxsize=8192)
def _text_inches(text: str, size: float) -> tuple[float, float]:
    """Width and height of one line of ``text`` at ``size`` points, in inches, from the font's
    metrics (no figure, no renderer: what the layout needs of a label known in advance)."""
    w, h, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return w / 72.0, h / 72.0


def _widest(texts, size: float) -> float:
    return max((_text_inches(str(t), size)[0] for t in texts), default=0.0)


def _rotated_height(texts, size: float, degrees: float) -> float:
    """Vertical extent in inches of the tallest of ``texts`` turned by ``degrees``."""
    a = math.radians(degrees)
    sizes = [_text_inches(str(t), size) for t in texts] or [(0.0, 0.0)]
    return max(w * math.sin(a) + h * math.cos(a) for w, h in sizes)


def _tick_labels(axis) -> list[str]:
    """The labels ``axis`` will draw at its current limits (its locator and formatter), so a
    margin can fit numeric tick labels without drawing them."""
    lo, hi = sorted(axis.get_view_interval())
    locs = [v for v in axis.get_major_locator()() if lo - 1e-9 * abs(hi - lo) <= v <= hi + 1e-9 * abs(hi - lo)]
    return axis.get_major_formatter().format_ticks(locs)


def _ytick_width(ax: plt.Axes) -> float:
    return _widest(_tick_labels(ax.yaxis), plt.rcParams["ytick.labelsize"])


#: Space in inches taken by one axis label line (12 pt) with its pad, and by the pad
#: between tick labels and the axes (tick length 6 pt plus pad 3.5 pt).
LABEL_LINE = 0.28
TICK_PAD = 0.16


def _place(fig: plt.Figure, rows: int, cols: int, width: float, height: float, m: dict) -> None:
    """Size ``fig`` to hold ``rows`` x ``cols`` panels of ``width`` x ``height`` inches at the
    margins and gaps of ``m`` (inches: left, right, top, bottom, wgap, hgap)."""
    fig_w = m["left"] + m["right"] + width * cols + m["wgap"] * (cols - 1)
    fig_h = m["top"] + m["bottom"] + height * rows + m["hgap"] * (rows - 1)
    fig.set_size_inches(fig_w, fig_h)
    fig.subplots_adjust(left=m["left"] / fig_w, right=1 - m["right"] / fig_w,
                        bottom=m["bottom"] / fig_h, top=1 - m["top"] / fig_h,
                        wspace=m["wgap"] / width, hspace=m["hgap"] / height)


def _panels(rows: int, cols: int, width: float, height: float, m: dict, sharey=True):
    """A figure of ``rows`` x ``cols`` panels placed by ``_place`` (a 2-D array of axes)."""
    fig, axes = plt.subplots(rows, cols, squeeze=False, sharey=sharey)
    _place(fig, rows, cols, width, height, m)
    return fig, axes


#: Up to this many arms a legend sits inside a panel or in a row above the panels
#: (placements: at most 4); more would cover the data or outgrow the figure, so they get one
#: legend beside the figure (``_legend_beside``).
INSIDE_LEGEND = 4


def _legend_width(fig: plt.Figure, legend) -> float:
    """Width of ``legend`` in inches (measures its few texts only)."""
    return legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi


def _grow_right(fig: plt.Figure, inches: float) -> None:
    """Widen ``fig`` so that its right margin is at least ``inches``; the panels keep their size."""
    w, h = fig.get_size_inches()
    p = fig.subplotpars
    left, right = p.left * w, (1 - p.right) * w
    new_w = w + max(0.0, inches - right)
    fig.set_size_inches(new_w, h)
    fig.subplots_adjust(left=left / new_w, right=1 - max(right, inches) / new_w)


def _legend_beside(fig: plt.Figure, ax: plt.Axes, title: str) -> None:
    """``ax``'s legend entries as one legend right of the panels, every panel's own removed;
    the figure widens to hold it (its width measured: a few texts, not a layout pass)."""
    handles, labels = ax.get_legend_handles_labels()
    for a in fig.axes:
        if a.get_legend():
            a.get_legend().remove()
    leg = fig.legend(handles, labels, title=title, loc="upper left", fontsize=8, title_fontsize=9,
                     frameon=False)
    _grow_right(fig, _legend_width(fig, leg) + 0.2)
    p = fig.subplotpars
    leg.set_bbox_to_anchor((p.right + 0.1 / fig.get_size_inches()[0], p.top), transform=fig.transFigure)


def _legend_above(fig: plt.Figure, handles, labels, title: str = "") -> None:
    """One row of legend entries above the panels (the top margin holds it: ``LEGEND_ROW``)."""
    fig.legend(handles, labels, title=title or None, loc="upper center", ncol=max(len(labels), 1),
               fontsize=9, title_fontsize=9, frameon=False, bbox_to_anchor=(0.5, 1.0))


#: Top margin (inches) holding ``_legend_above``'s row, without and with a title line.
LEGEND_ROW = 0.45
TITLED_LEGEND_ROW = 0.75


def palette(arms: list[str]) -> dict[str, tuple]:
    """A colour per arm: the colour-blind palette, or tab20 beyond its 10 colours."""
    name = "colorblind" if len(arms) <= 10 else "tab20"
    return dict(zip(arms, theme.colors(name, max(len(arms), 1))))


#: Margins of ``_grid``'s panels in inches: left (y tick labels and axis label), right, top
#: (panel titles), bottom (x tick labels and axis label), and the gaps between panels.
GRID_MARGINS = {"left": 0.75, "right": 0.15, "top": 0.35, "bottom": 0.55, "wgap": 0.25, "hgap": 0.75}


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncols: int = 3):
    """Panels of one size at fixed margins (``GRID_MARGINS``) instead of ``tight_layout``, whose
    text measuring cost seconds per figure at 12 panels; y labels on the left column only,
    x labels on the bottom row of each column only (``_label_grid``)."""
    cols = min(ncols, max(n, 1))
    rows = math.ceil(max(n, 1) / cols)
    fig, axes = _panels(rows, cols, width, height, GRID_MARGINS)
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


def _short(cell: str, most: int = 48) -> str:
    """A cell's name cut to ``most`` characters (ending in "...")."""
    return cell if len(cell) <= most else cell[:most - 3] + "..."


def _title(ax: plt.Axes, cell: str) -> None:
    # y given: matplotlib then skips measuring the tick labels to place the title (seconds at scale)
    ax.set_title(_short(cell), fontsize=10, y=1.0)


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
    else:
        axes[0].legend(title=data.arm_word, fontsize=8, loc="lower right")
    return to_svg(fig)


#: The one panel of a summary figure (inches) and its margins; the left margin grows to fit
#: the y tick labels (``_fit_left``).
SUMMARY_PANEL = (5.2, 3.2)
SUMMARY_MARGINS = {"left": 0.85, "right": 0.2, "top": 0.35, "bottom": 0.6, "wgap": 0.0, "hgap": 0.0}


def _summary_panel():
    fig, axes = _panels(1, 1, *SUMMARY_PANEL, SUMMARY_MARGINS)
    return fig, axes[0][0]


def _fit_left(fig: plt.Figure, ax: plt.Axes, rows: int, cols: int, width: float, height: float,
              m: dict) -> dict:
    """``m`` with a left margin that holds ``ax``'s y tick labels and its y axis label (lines
    of the label counted), the figure placed again at it; returns the margins used."""
    lines = ax.get_ylabel().count("\n") + 1 if ax.get_ylabel() else 0
    need = 0.1 + LABEL_LINE * lines * 1.1 + _ytick_width(ax) + TICK_PAD
    m = {**m, "left": max(m["left"], need)}
    _place(fig, rows, cols, width, height, m)
    return m


def learning_curves_summary(data: StoreData, ep: pd.DataFrame) -> str:
    """One panel for all cells: per arm and epoch, the median over cells of each cell's
    median over seeds, with the 10–90% range over cells (a spread, not a confidence interval)."""
    colors = palette(data.arms)
    per_cell = ep.groupby(["arm", "epoch", "cell"], sort=True)["val_acc"].median()
    fig, ax = _summary_panel()
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
    ax.set_title(f"all {len(data.cells)} cells", fontsize=10, y=1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    _fit_left(fig, ax, 1, 1, *SUMMARY_PANEL, SUMMARY_MARGINS)
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
    fig, ax = _summary_panel()
    for arm in data.arms:
        sub = runs[runs["arm"] == arm]
        if sub.empty:
            continue
        _km_step(ax, sub, colors[arm], arm)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"all {len(data.cells)} cells, runs pooled", fontsize=10, y=1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("fraction of runs at target")
    _fit_left(fig, ax, 1, 1, *SUMMARY_PANEL, SUMMARY_MARGINS)
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


#: Seed of the strip plot's horizontal jitter: the same store gives the same SVG every render
#: (its own generator: numpy's global state is left alone).
JITTER_SEED = 0
#: Edge colour of the boxes, whiskers and medians (seaborn drew them in a dark grey).
BOX_EDGE = "0.3"


def _boxes(ax: plt.Axes, x: np.ndarray, samples: list[np.ndarray], width: float, color) -> None:
    """Box plots of ``samples`` at positions ``x``: quartile box, median line, whiskers to the
    furthest point within 1.5 IQR (matplotlib's ``boxplot_stats``, as seaborn's boxplot), as a
    few collections instead of six artists per box."""
    st = cbook.boxplot_stats(samples, whis=1.5)
    q1, q3, med = (np.array([s[k] for s in st]) for k in ("q1", "q3", "med"))
    lo, hi = np.array([s["whislo"] for s in st]), np.array([s["whishi"] for s in st])
    ax.bar(x, q3 - q1, width=width, bottom=q1, color=color, alpha=0.5, edgecolor=BOX_EDGE, linewidth=1.0,
           zorder=2)
    ax.vlines(np.concatenate([x, x]), np.concatenate([lo, q3]), np.concatenate([q1, hi]), colors=BOX_EDGE,
              linewidth=1.0, zorder=2)
    ends = np.concatenate([lo, hi])
    xx = np.concatenate([x, x])
    ax.hlines(ends, xx - width / 4, xx + width / 4, colors=BOX_EDGE, linewidth=1.0, zorder=2)
    ax.hlines(med, x - width / 2, x + width / 2, colors=BOX_EDGE, linewidth=1.5, zorder=2.5)


def time_per_epoch(data: StoreData) -> str:
    """Per-run median epoch time: box per (cell, arm) plus every run as a jittered point."""
    runs = data.runs[data.runs["analysed"] & data.runs["epoch_s_median"].notna()]
    runs = runs[runs["cell"].isin(data.cells[:MAX_CELLS])]
    if runs.empty:
        return ""
    present = set(runs["cell"])
    cells = [c for c in data.cells if c in present]
    many = len(cells) > 1
    arms = [a for a in data.arms if a in set(runs["arm"])]
    colors = palette(data.arms)
    groups = list(cells) if many else arms
    rng = np.random.default_rng(JITTER_SEED)
    n_hue = len(arms) if many else 1
    width = 0.8 / n_hue
    by = {key: g["epoch_s_median"].to_numpy(float) for key, g in runs.groupby(["cell", "arm"], sort=False)}
    panel_w = max(5.0, 1.6 * len(groups) + 2) - 1.2
    m = {"left": 0.9, "right": 0.2, "top": 0.2, "bottom": 0.6, "wgap": 0.0, "hgap": 0.0}
    fig, axes = _panels(1, 1, panel_w, 2.9, m)
    ax = axes[0][0]
    for k, arm in enumerate(arms):
        keys = [(c, arm) for c in cells if (c, arm) in by] if many else [(cells[0], arm)]
        if not keys:
            continue
        pos = np.array([groups.index(c if many else a) for c, a in keys], float)
        if many:
            pos = pos + (k - (n_hue - 1) / 2) * width
        samples = [by[key] for key in keys]
        _boxes(ax, pos, samples, width * 0.8, colors[arm])
        xs = np.concatenate([np.full(len(s), p) for p, s in zip(pos, samples)])
        xs = xs + rng.uniform(-0.2 * width / 0.8, 0.2 * width / 0.8, len(xs))
        ax.scatter(xs, np.concatenate(samples), s=9, color=colors[arm], edgecolor="none", zorder=3, label=arm)
    rotation = 20 if many else (30 if len(groups) > 4 else 0)
    ax.set_xticks(range(len(groups)), groups, rotation=rotation, ha="right" if rotation else "center",
                  rotation_mode="anchor")
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel("time per epoch (s)")
    ax.set_xlabel("" if many else data.arm_word)
    size = plt.rcParams["xtick.labelsize"]
    first = _text_inches(str(groups[0]), size)[0] * math.cos(math.radians(rotation)) if rotation else 0.0
    m = {**m, "bottom": 0.15 + TICK_PAD + _rotated_height(groups, size, rotation) + (0 if many else LABEL_LINE)}
    m = _fit_left(fig, ax, 1, 1, panel_w, 2.9, m)
    unit = panel_w / len(groups)  # inches per category
    if first - 0.5 * unit > m["left"] - 0.1:
        _place(fig, 1, 1, panel_w, 2.9, {**m, "left": first - 0.5 * unit + 0.1})
    if many:
        _legend_beside(fig, ax, data.arm_word)
    return to_svg(fig)


def _forest_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The comparisons the forest plot can draw: its metrics, a finite difference."""
    keep = comparisons["metric"].isin(["final_val_acc", "epochs_to_target", "epoch_s"])
    return comparisons[keep & np.isfinite(comparisons["diff"].to_numpy(float))]


#: Height per comparison row and width per panel of the forest plot, in inches.
FOREST_ROW = 0.28
FOREST_PANEL = 2.6
FOREST_LABEL_SIZE = 8


def _row_labels(ax: plt.Axes, y: np.ndarray, labels: list[str], size: float) -> None:
    """Label the rows ``y`` of ``ax`` left of it, each with its grid line: what ``set_yticks``
    draws, as one text per row and one line collection (a matplotlib tick is five artists,
    and 120 of them were a third of the forest plot's time)."""
    ax.set_yticks([])
    ax.hlines(y, 0, 1, transform=ax.get_yaxis_transform(), colors=plt.rcParams["grid.color"],
              linewidth=plt.rcParams["grid.linewidth"], zorder=0.5)
    to_left = offset_copy(ax.get_yaxis_transform(), fig=ax.figure, x=-TICK_PAD * 72, units="points")
    for yy, text in zip(y, labels):
        ax.text(0, yy, text, transform=to_left, ha="right", va="center", fontsize=size,
                color=plt.rcParams["ytick.color"])


def forest(comparisons: pd.DataFrame) -> str:
    """Median paired differences with 95% CIs, one panel per metric."""
    comps = _forest_rows(comparisons)
    if comps.empty:
        return ""
    metrics = list(dict.fromkeys(comps["metric"]))
    subs = [comps[comps["metric"] == metric].head(MAX_FOREST_ROWS) for metric in metrics]
    # whole cell names up to 48 characters: cut at 30, the cells of a learning-rate sweep
    # all read "activation=relu, learning_rate"
    labels = [[f"{_short(c)} · {p} vs {r}" for c, p, r in zip(s["cell"], s["arm"], s["reference"])] for s in subs]
    rows = max(len(s) for s in subs)
    label_w = max(_widest(lab, FOREST_LABEL_SIZE) for lab in labels) + TICK_PAD
    m = {"left": label_w + 0.1, "right": 0.25, "top": LEGEND_ROW, "bottom": 0.3 + TICK_PAD + LABEL_LINE,
         "wgap": label_w + 0.3, "hgap": 0.0}
    height = FOREST_ROW * (rows + 0.5)
    fig, axes = _panels(1, len(metrics), FOREST_PANEL, height, m, sharey=False)
    for ax, metric, sub, lab in zip(axes[0], metrics, subs, labels):
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
        ax.set_ylim(-0.75, rows - 0.25)
        _row_labels(ax, y, lab, FOREST_LABEL_SIZE)
        unit = {"final_val_acc": "pp", "epochs_to_target": "epochs", "epoch_s": "s"}.get(metric, "")
        ax.set_xlabel(f"{sub['label'].iloc[0]} difference ({unit})")
    _legend_above(fig, *axes[0][0].get_legend_handles_labels())
    return to_svg(fig)


#: At most this many level labels on a factor axis; beyond, every k-th level is labelled. A
#: factor of 167 learning rates had 167 labels no one could read, and measuring them for
#: the layout took most of the figures' time in a 10,000-run report.
MAX_TICK_LABELS = 24


def _thinned(n: int, most: int = MAX_TICK_LABELS) -> list[int]:
    """Positions of the levels to label among ``n``: all up to ``most``, else every k-th
    from the first (the points of every level are still drawn)."""
    most = max(most, 1)
    return list(range(0, n, math.ceil(n / most) if n > most else 1))


def _level(v: object) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def level_medians(runs: pd.DataFrame, factor: str, value: str = "final_val_acc") -> pd.DataFrame:
    """Median of ``value`` per level of ``factor`` (rows, sorted) and arm (columns): the
    points of the interaction figure, as seaborn's ``pointplot(estimator="median")`` gave
    them (NaN values and levels left out)."""
    return runs.dropna(subset=[factor, value]).groupby([factor, "arm"])[value].median().unstack("arm")


#: Width and height in inches of one panel of the factor figures (interaction, effect by level).
FACTOR_PANEL = (4.0, 2.6)


#: Turn of the level labels of a factor with more than 4 levels (degrees).
FACTOR_ROTATION = 30


def _fitting_labels(width: float, rotation: float) -> int:
    """How many labels turned by ``rotation`` fit side by side on ``width`` inches without
    overlapping (parallel lines of text need ``line height / sin(rotation)`` apart), at most
    ``MAX_TICK_LABELS``; unturned labels are not thinned here."""
    if not rotation:
        return MAX_TICK_LABELS
    line = 1.2 * _text_inches("0.1", plt.rcParams["xtick.labelsize"])[1]
    return min(MAX_TICK_LABELS, int(width * math.sin(math.radians(rotation)) / line))


def _factor_axis(ax: plt.Axes, levels: list, factor: str) -> list[str]:
    """Label a categorical x axis with (at most ``MAX_TICK_LABELS``) of its levels; returns the
    labels shown, for the margin below."""
    rotation = FACTOR_ROTATION if len(levels) > 4 else 0
    shown = _thinned(len(levels), _fitting_labels(FACTOR_PANEL[0], rotation))
    labels = [_level(levels[k]) for k in shown]
    ax.set_xticks(shown, labels, rotation=rotation, ha="right" if rotation else "center", rotation_mode="anchor")
    ax.set_xlim(-0.5, len(levels) - 0.5)
    ax.set_xlabel(factor)
    return labels


def _factor_bottom(all_labels: list[list[str]], n_levels: list[int]) -> float:
    """Inches below a row of factor panels: rotated level labels and the factor's name."""
    size = plt.rcParams["xtick.labelsize"]
    tall = max(_rotated_height(lab, size, FACTOR_ROTATION if n > 4 else 0) for lab, n in zip(all_labels, n_levels))
    return 0.1 + TICK_PAD + tall + LABEL_LINE


def interaction(data: StoreData) -> str:
    """Median final accuracy by each cell factor's level, one line per arm."""
    factors = data.cell_factors[:3]
    runs = data.runs[data.runs["analysed"] & data.runs["final_val_acc"].notna()]
    if not factors or runs.empty or len(data.arms) < 2:
        return ""
    colors = palette(data.arms)
    arms = [a for a in data.arms if a in set(runs["arm"])]
    offsets = np.linspace(-0.1, 0.1, len(arms)) if len(arms) > 1 else np.zeros(1)
    m = {"left": 0.9, "right": 0.2, "top": TITLED_LEGEND_ROW, "bottom": 0.9, "wgap": 0.3, "hgap": 0.0}
    fig, axes = _panels(1, len(factors), *FACTOR_PANEL, m)
    shown, n_levels = [], []
    for ax, factor in zip(axes[0], factors):
        med = level_medians(runs, factor)
        levels = list(med.index)
        for k, arm in enumerate(arms):
            if arm not in med:
                continue
            y = med[arm].to_numpy(float)
            ax.plot(np.arange(len(levels)) + offsets[k], y, color=colors[arm], marker="o", ms=4,
                    lw=1.5, label=arm)
        shown.append(_factor_axis(ax, levels, factor))
        n_levels.append(len(levels))
    axes[0][0].set_ylabel("median final validation accuracy")
    m = {**m, "bottom": _factor_bottom(shown, n_levels)}
    m = _fit_left(fig, axes[0][0], 1, len(factors), *FACTOR_PANEL, m)
    if len(arms) > INSIDE_LEGEND:
        _place(fig, 1, len(factors), *FACTOR_PANEL, {**m, "top": 0.2})
        _legend_beside(fig, axes[0][0], data.arm_word)
    else:
        _legend_above(fig, *axes[0][0].get_legend_handles_labels(), title=data.arm_word)
    return to_svg(fig)


#: (label, unit, scale) of the effect panels' metrics, read from ``reports.metrics``.
EFFECT_METRICS = {k: (METRICS[k].label, METRICS[k].unit, METRICS[k].scale) for k in ("final_val_acc", "epochs_to_target")}
MAX_FACTORS = 3


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
    m = {"left": 1.0, "right": 0.2, "top": LEGEND_ROW, "bottom": 0.9, "wgap": 0.3, "hgap": 0.9}
    fig, axes = _panels(len(metrics), len(factors), *FACTOR_PANEL, m, sharey="row")
    width = 0.3 / max(len(others), 1)
    shown, n_levels = [], []
    for i, metric in enumerate(metrics):
        label, unit, scale = EFFECT_METRICS[metric]
        for j, factor in enumerate(factors):
            ax = axes[i][j]
            sub = e[(e["metric"] == metric) & (e["factor"] == factor)]
            levels = sorted(set(effects.loc[effects["factor"] == factor, "level"]))
            pos = {lv: k for k, lv in enumerate(levels)}
            # caps on a crowded axis overlap into a bar (and were most of its SVG elements)
            caps = 3 if len(levels) <= MAX_TICK_LABELS else 0
            for k, arm in enumerate(others):
                s = sub[sub["arm"] == arm]
                if s.empty:
                    continue
                x = np.array([pos[lv] for lv in s["level"]], float) + (k - (len(others) - 1) / 2) * width
                d = s["diff"].to_numpy(float) * scale
                lo = s["diff_low"].to_numpy(float) * scale
                hi = s["diff_high"].to_numpy(float) * scale
                err = np.vstack([np.nan_to_num(d - lo), np.nan_to_num(hi - d)])
                ax.errorbar(x, d, yerr=err, fmt="o-", color=colors[arm], capsize=caps, ms=5,
                            lw=1.2, label=f"{arm} − {s['reference'].iloc[0]}")
            ax.axhline(0, color="black", lw=0.8)
            shown.append(_factor_axis(ax, levels, factor))
            n_levels.append(len(levels))
            if j == 0:
                ax.set_ylabel(f"{label}\ndifference ({unit})")
    bottom = _factor_bottom(shown, n_levels)
    m = {**m, "bottom": bottom, "hgap": bottom + 0.15}
    need = max(0.1 + LABEL_LINE * 2.2 + _ytick_width(axes[i][0]) + TICK_PAD for i in range(len(metrics)))
    m = {**m, "left": max(m["left"], need)}
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(others) > INSIDE_LEGEND:  # one row of labels would be wider than the figure
        _place(fig, len(metrics), len(factors), *FACTOR_PANEL, {**m, "top": 0.2})
        _legend_beside(fig, axes[0][0], "")
    else:
        _place(fig, len(metrics), len(factors), *FACTOR_PANEL, m)
        _legend_above(fig, handles, labels)
    return to_svg(fig)


def all_figures(data: StoreData, comparisons: pd.DataFrame) -> dict[str, str]:
    return {
        "learning_curves": learning_curves(data),
        "km": km_curves(data),
        "time_per_epoch": time_per_epoch(data),
        "forest": forest(comparisons),
        "interaction": interaction(data),
    }
