"""``bnbench history report``: each metric over commits, its interval band and its steps.

One self-contained HTML page (figures are inline SVG, no scripts, no network) or a Markdown
summary for CI logs. Series are kept apart per machine fingerprint: timings from two
machines are never drawn as one line.
"""

from __future__ import annotations

import html
import math
import os
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from reports import theme
from reports.figures import plt, to_svg
from reports.history import METRIC_LABELS, SERIES_KEYS, find_steps

#: At most this many series per figure (one panel each); the rest are listed in the tables.
MAX_PANELS = 12


def compare_url_template(explicit: str | None = None) -> str | None:
    """URL for a commit range, with ``{from}`` and ``{to}``: the option, else the CI's own."""
    if explicit:
        return explicit
    gh, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if gh and repo:
        return f"{gh}/{repo}/compare/{{from}}...{{to}}"
    if os.environ.get("CI_PROJECT_URL"):
        return os.environ["CI_PROJECT_URL"] + "/-/compare/{from}...{to}"
    return None


def _short(commit: str) -> str:
    return commit[:10]


def format_change(step: pd.Series | dict) -> str:
    """A step's size with its interval: ``+15.2% [+12.9%, +17.6%]`` or ``-1.02 pp [...]``."""
    if step["ratio"]:
        f = lambda r: f"{(r - 1) * 100:+.1f}%"  # noqa: E731
    elif step["metric"] == "final_val_acc":
        f = lambda d: f"{d * 100:+.2f} pp"  # noqa: E731
    else:
        f = lambda d: f"{d:+.3g}"  # noqa: E731
    ci = f" [{f(step['low'])}, {f(step['high'])}]" if math.isfinite(step["low"]) else ""
    return f(step["change"]) + ci


def _fmt_value(metric: str, v: float) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.2%}" if metric == "final_val_acc" else f"{v:.4g}"


def _range_html(step: dict, template: str | None) -> str:
    text = f"{_short(step['from_commit'])}..{_short(step['to_commit'])}"
    if not template:
        return f"<code>{html.escape(text)}</code>"
    url = template.replace("{from}", step["from_commit"]).replace("{to}", step["to_commit"])
    return f'<a href="{html.escape(url)}"><code>{html.escape(text)}</code></a>'


def metric_figure(points: pd.DataFrame, steps: pd.DataFrame, metric: str) -> str:
    """One panel per series: value per commit, its 95% band, the fitted levels and steps."""
    names = list(dict.fromkeys(points["series"]))[:MAX_PANELS]
    ncols = min(2, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 2.9 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        s = points[points["series"] == name].reset_index(drop=True)
        x = np.arange(len(s))
        y = s["value"].to_numpy(dtype=float)
        ax.fill_between(x, s["low"].to_numpy(dtype=float), s["high"].to_numpy(dtype=float),
                        alpha=0.25, color=theme.colors("colorblind", 1)[0], linewidth=0,
                        label="95% interval")
        ax.plot(x, y, marker="o", markersize=2.5, linewidth=1, label="value")
        st = steps[steps["series"] == name]
        edges = [0, *st["index"].tolist(), len(s)]
        for a, b in zip(edges[:-1], edges[1:]):
            seg = y[a:b]
            level = math.exp(np.mean(np.log(seg))) if metric in ("epoch_s", "median_s") else seg.mean()
            ax.hlines(level, a, b - 1, colors="black", linewidth=1.3)
        for _, row in st.iterrows():
            ax.axvline(row["index"] - 0.5, color="crimson", linestyle="--", linewidth=1.2)
            ax.annotate(format_change(row).split(" [")[0], (row["index"] - 0.5, 1.0),
                        xycoords=("data", "axes fraction"), color="crimson", fontsize=8,
                        ha="left", va="top", xytext=(3, -2), textcoords="offset points")
        ticks = x[:: max(1, len(x) // 8)]
        ax.set_xticks(ticks, [_short(c)[:7] for c in s["commit_id"].iloc[ticks]], rotation=30, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("commit (oldest first)", fontsize=8)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=8)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return to_svg(fig, crop=True)  # the step labels may reach past the panels


def _sections(points: pd.DataFrame, steps: pd.DataFrame, template: str | None) -> list[dict[str, Any]]:
    out = []
    for (fp, source, metric), p in points.groupby(["fingerprint", "source", "metric"], sort=True):
        st = steps[(steps["fingerprint"] == fp) & (steps["source"] == source) & (steps["metric"] == metric)]
        rows = [{"series": r["series"], "commits": _range_html(r, template),
                 "before → after": f"{_fmt_value(metric, r['before'])} → {_fmt_value(metric, r['after'])}",
                 "step [95% CI]": html.escape(format_change(r))}
                for r in st.to_dict("records")]
        out.append({"fingerprint": fp, "source": source, "metric": metric,
                    "label": METRIC_LABELS.get(metric, metric),
                    "n_series": p["series"].nunique(), "n_commits": p["commit_id"].nunique(),
                    "figure": metric_figure(p, st, metric), "steps": rows})
    return out


def build(points: pd.DataFrame, compare_url: str | None = None) -> dict[str, Any]:
    """Everything the page and the Markdown need: points, steps, sections."""
    points = points.copy()
    points["value"] = points["value"].astype(float)
    steps = find_steps(points)
    return {"points": points, "steps": steps, "template": compare_url_template(compare_url)}


def render_html(built: dict[str, Any], title: str = "bnbench history") -> str:
    points, steps = built["points"], built["steps"]
    env = jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    machines = (points.groupby("fingerprint")
                .agg(commits=("commit_id", "nunique"), first=("commit_date", "min"), last=("commit_date", "max"))
                .reset_index().to_dict("records"))
    return env.get_template("history.html.j2").render(
        title=title, sections=_sections(points, steps, built["template"]), machines=machines,
        n_steps=len(steps), n_commits=points["commit_id"].nunique(),
    )


def render_markdown(built: dict[str, Any]) -> str:
    """A short summary for CI logs: the latest value of each series and every step found."""
    points, steps = built["points"], built["steps"]
    lines = [f"## bnbench history: {points['commit_id'].nunique()} commits, {len(steps)} step(s) found", ""]
    lines += ["| machine | series | metric | commits | latest [95% CI] | steps |", "|---|---|---|---|---|---|"]
    for key, s in points.groupby(SERIES_KEYS, sort=True):
        fp, _, series, metric = key
        last = s.iloc[-1]
        ci = "" if pd.isna(last["low"]) else \
            f" [{_fmt_value(metric, last['low'])}, {_fmt_value(metric, last['high'])}]"
        mine = steps[(steps[SERIES_KEYS] == pd.Series(dict(zip(SERIES_KEYS, key)))).all(axis=1)]
        found = "; ".join(f"{format_change(r)} at {_short(r['from_commit'])}..{_short(r['to_commit'])}"
                          for r in mine.to_dict("records")) or "none"
        lines.append(f"| {fp} | {series.replace('|', '/')} | {metric} | {len(s)} | "
                     f"{_fmt_value(metric, last['value'])}{ci} | {found} |")
    return "\n".join(lines) + "\n"
