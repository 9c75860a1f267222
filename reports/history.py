"""What ``bnbench history`` records per commit, and the steps it finds over commits.

A gate run's store is summarized per grid, cell and arm (the placement, or e.g. "layer
after"): median final validation accuracy and median time per epoch (95% bootstrap intervals over runs, as in the report;
seeds trained in one program are one timing, so a single program has no timing interval),
and the Kaplan-Meier median epochs to target (interval resampling seeds). A
pytest-benchmark JSON is summarized per benchmark: median seconds per round with its 95%
interval. Each summary carries the machine fingerprint of the runs (bench.host), so a
history holds one series per machine.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import UsageError
from reports import stats
from reports.intervals import Interval
from reports.changepoints import detect_steps
from reports.compare import timing_units
from reports.load import load

#: Metrics that change by factors: analysed on the log scale, steps shown as ratios.
RATIO_METRICS = {"epoch_s", "median_s"}
METRIC_LABELS = {
    "final_val_acc": "final validation accuracy (median)",
    "epoch_s": "time per epoch, s (median)",
    "epochs_to_target": "epochs to target (KM median)",
    "median_s": "seconds per round (median)",
}
_Z = 1.959963984540054  # standard normal 97.5% quantile: interval half-width / SE


def _summary(series: str, metric: str, est: Interval, fingerprint: str, source: str) -> dict[str, Any]:
    finite = lambda v: v if v is not None and math.isfinite(v) else None  # noqa: E731
    return {"fingerprint": fingerprint, "source": source, "series": series, "metric": metric,
            "value": est.point, "low": finite(est.low), "high": finite(est.high), "n": est.n}


def summarize_store(path: str | Path, grid: str | None = None) -> list[dict[str, Any]]:
    """Per grid / cell / arm summaries of a results store (one list entry per metric)."""
    data = load(path, grid)
    runs = data.runs[data.runs["analysed"]] if len(data.runs) else data.runs
    if not len(runs):
        raise UsageError(f"{path}: no finished runs to summarize")
    out = []
    keys = ["machine_fingerprint", "grid", "cell", "arm"]
    for (fp, g, cell, arm), r in runs.groupby(keys, sort=True):
        series = f"{g} / {cell} / {arm}"
        out.append(_summary(series, "final_val_acc", stats.bootstrap_ci(r["final_val_acc"]), fp, "gate"))
        # Seeds trained in one program share one timing: one value per program, as compare does.
        units = timing_units(r)["epoch_s_median"]
        out.append(_summary(series, "epoch_s", stats.bootstrap_ci(units), fp, "gate"))
        km = stats.km_median_ci(r["ett_duration"].to_numpy(), r["reached"].to_numpy())
        if math.isfinite(km.point):
            out.append(_summary(series, "epochs_to_target", km, fp, "gate"))
    return out


def summarize_benchmarks(path: str | Path, fingerprint: str) -> list[dict[str, Any]]:
    """Per benchmark of a pytest-benchmark JSON: median seconds per round and its 95% interval.

    With the raw rounds (``--benchmark-save-data``) the interval is a bootstrap; otherwise
    McGill's notch, median +/- 1.57 IQR / sqrt(rounds), from the stored quartiles.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        benches = [(b["name"], b["stats"]) for b in doc["benchmarks"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--perf: {path} is not a pytest-benchmark JSON ({exc})") from None
    out = []
    for name, s in benches:
        if s.get("data"):
            est = stats.bootstrap_ci(s["data"])
        else:
            half = 1.57 * float(s["iqr"]) / math.sqrt(int(s["rounds"]))
            est = Interval(float(s["median"]), float(s["median"]) - half,
                                 float(s["median"]) + half, n=int(s["rounds"]))
        out.append(_summary(name, "median_s", est, fingerprint, "perf"))
    return out


SERIES_KEYS = ["fingerprint", "source", "series", "metric"]


def find_steps(points: pd.DataFrame) -> pd.DataFrame:
    """Every step in every series: where, how big (with interval) and the commit range."""
    rows = []
    for key, s in points.groupby(SERIES_KEYS, sort=True):
        s = s[np.isfinite(s["value"].astype(float))].reset_index(drop=True)
        if not len(s):
            continue
        se = ((s["high"] - s["low"]).astype(float) / (2 * _Z)).to_numpy()
        ratio = key[3] in RATIO_METRICS
        for st in detect_steps(s["value"].to_numpy(dtype=float), se, ratio=ratio):
            rows.append({
                **dict(zip(SERIES_KEYS, key)),
                "index": st.index,
                "from_commit": s.loc[st.index - 1, "commit_id"],
                "to_commit": s.loc[st.index, "commit_id"],
                "to_date": s.loc[st.index, "commit_date"],
                "before": st.before, "after": st.after,
                "change": st.change, "low": st.low, "high": st.high, "ratio": ratio,
            })
    cols = [*SERIES_KEYS, "index", "from_commit", "to_commit", "to_date", "before", "after",
            "change", "low", "high", "ratio"]
    return pd.DataFrame(rows, columns=cols)
