"""Assemble the report: plain-word findings, tables, figures, methods, failures, raw runs.

One context dict feeds two renderers: a self-contained HTML page (inline SVG, inline CSS,
no scripts, nothing fetched) and Markdown for CI logs (tables only).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from datetime import datetime, timezone
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from bench.cells import Arms, varying_settings
from bench.errors import UsageError
from bench.store import StoreError, count_runs, open_readonly
from reports import interactions as ix
from reports import power, stats
from reports.drawing import Drawing
from reports.load import StoreData, json_values, load
from reports.metrics import METRICS as METRIC_TABLE
from reports.tables import ACCURACY_METRICS, CHANCE_ACCURACY, Tables, build_tables, failures, raw_runs

MAX_FINDINGS = 40
FORMATS = ("html", "markdown")
#: Permutations per interaction test (reports.interactions defaults to 5000; see docs/report.md).
N_PERMUTATIONS = 2000
#: Diverged runs keep their recorded final accuracy (a NaN loss leaves about chance accuracy);
#: one with no recorded accuracy drops its pair, as in the paired comparisons.
DIVERGED_VALUE: float | None = None
#: Performance-profile tolerances on final validation accuracy (fractions; shown in pp).
PROFILE_TAUS = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02)
#: The interaction section's metrics as (label, unit, scale), read from ``reports.metrics``.
IX_METRICS = {k: (METRIC_TABLE[k].label, METRIC_TABLE[k].unit, METRIC_TABLE[k].scale) for k in ix.METRICS}


# ----------------------------------------------------------------------------- formatting


def num(x: Any, digits: int = 3) -> str:
    """A number for a table cell: blank for missing, "not reached" for infinity."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (float, np.floating)):
        if math.isinf(x):
            return "not reached"
        return f"{x:.{digits}f}"
    return str(x)


def ci(value: float, low: float, high: float, digits: int = 3, scale: float = 1.0) -> str:
    """``value [low, high]``; just the value when there is no interval."""
    v = num(value * scale if math.isfinite(value) else value, digits)
    if not (isinstance(low, float) and not math.isnan(low)):
        return v
    lo = num(low * scale if math.isfinite(low) else low, digits)
    hi = num(high * scale if math.isfinite(high) else high, digits)
    return f"{v} [{lo}, {hi}]"


def pval(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# ----------------------------------------------------------------------------- findings


def _where(cell: str, n_cells: int) -> str:
    return "" if n_cells == 1 else f"In {cell}, "


def _diff_text(row: pd.Series | dict[str, Any], scale: float, unit: str, digits: int) -> str:
    """``+1.3 pp [+1.2, +1.5]``; an infinite bound is written as unbounded (−∞ / +∞)."""
    def b(x: float) -> str:
        return ("−∞" if x < 0 else "+∞") if math.isinf(x) else f"{x * scale:+.{digits}f}"
    inner = "" if math.isnan(row["diff_low"]) else f" [{b(row['diff_low'])}, {b(row['diff_high'])}]"
    return f"{row['diff'] * scale:+.{digits}f}{' ' + unit if unit else ''}{inner}"


def finding(row: pd.Series, n_cells: int, words: Callable[[str], str]) -> str:
    """One comparison in plain words, e.g. "BN after the activation raised final ...";
    ``words`` names an arm (``StoreData.arm_words``)."""
    who = words(row["arm"])
    ref = words(row["reference"])
    start = _where(row["cell"], n_cells)
    metric = row["metric"]
    if metric == "final_val_acc_no_diverged":
        return (f"{start}{who} vs {ref}, final validation accuracy without the diverged seed pairs "
                f"(sensitivity analysis): {_diff_text(row, 100, 'pp', 1)}, {row['n_pairs']} paired seeds.")
    if metric == "diverged":
        sig = math.isfinite(row["p_holm"]) and row["p_holm"] < 0.05
        verb = "diverged detectably differently from" if sig else "did not detectably change divergence vs"
        tail = (f"exact McNemar, Holm p={pval(row['p_holm'])}" if math.isfinite(row["p"]) else row["p_note"])
        return f"{start}{who} {verb} {ref}: {row['diff_note']} ({tail})."
    if row["n_pairs"] < 2 or not math.isfinite(row["p"]):
        reason = row["p_note"] or "no test possible"
        observed = ""
        if row["n_pairs"] >= 1 and math.isfinite(row["diff"]) and metric == "epoch_s":
            observed = f" {_diff_text(row, 1, 's', 3)} per epoch observed (median paired difference);"
        return f"{start}{who} vs {ref}, {row['label']}:{observed} {reason}."
    sig = row["p_holm"] < 0.05
    tail = f"(Holm p={pval(row['p_holm'])}, {row['n_pairs']} paired seeds)"
    d = row["diff"]
    if metric in ACCURACY_METRICS:
        extra = f"; {row['diff_note']}" if row["diff_note"] else ""
        if not sig:
            return (f"{start}{who} did not detectably change {row['label']} vs {ref}: "
                    f"{_diff_text(row, 100, 'pp', 1)} {tail}{extra}.")
        verb = "raised" if d > 0 else "lowered"
        return f"{start}{who} {verb} {row['label']} vs {ref}: {_diff_text(row, 100, 'pp', 1)} {tail}{extra}."
    if metric == "epochs_to_target":
        tail = f"(paired log-rank, Holm p={pval(row['p_holm'])}, {row['n_pairs']} paired seeds)"
        note = row["diff_note"]
        if note.startswith("at least") or not math.isfinite(d):
            amount = note
        else:
            amount = _diff_text(row, 1, "epochs", 1) + (f" ({note})" if note else "")
        if not sig:
            return (f"{start}{who} did not detectably change epochs to target vs {ref}: "
                    f"KM median difference {amount} {tail}.")
        word = "fewer" if d < 0 else "more"
        return (f"{start}{who} needed {word} epochs to reach the target than {ref}: KM median difference "
                f"{amount} {tail}.")
    if not sig:
        return (f"{start}{who} did not detectably change time per epoch vs {ref}: "
                f"{_diff_text(row, 1, 's', 3)} {tail}.")
    word = "longer" if d > 0 else "less"
    return (f"{start}{who} took {abs(d):.3f} s {word} per epoch than {ref}: {_diff_text(row, 1, 's', 3)} "
            f"{tail}.")


def level_str(level: Any) -> str:
    return f"{level:g}" if isinstance(level, (float, np.floating)) else str(level)


def _signed(x: float, digits: int = 1, plus: bool = True) -> str:
    """``+1.9`` / ``\u22120.2`` (a true minus sign); a value that rounds to zero has no minus."""
    if round(x, digits) == 0:
        x = 0.0
    text = f"{x:+.{digits}f}" if plus else f"{x:.{digits}f}"
    return text.replace("-", "\u2212")


def _amount(row: pd.Series) -> str:
    """``+10.9 pp [8.6, 11.2]`` (accuracy) or ``\u22121.5 epochs [\u22122.0, \u22121.0]``."""
    _, unit, scale = IX_METRICS[row["metric"]]
    d, lo, hi = (row[k] * scale for k in ("diff", "diff_low", "diff_high"))
    interval = f" [{_signed(lo, plus=False)}, {_signed(hi, plus=False)}]" if math.isfinite(lo) else ""
    return f"{_signed(d)} {unit}{interval}"


def p_words(p: float) -> str:
    """A p-value for a sentence: two significant digits (``0.0008``, ``0.012``)."""
    return "–" if p is None or not math.isfinite(p) else f"{p:.2g}"


def interaction_finding(test: pd.Series, effects: pd.DataFrame, words: Callable[[str], str]) -> str:
    """One significant interaction (Holm p < alpha) in plain words: the levels with the largest
    and smallest effect, and the test. Nothing else becomes an interaction finding: overlapping
    or disjoint intervals have no controlled error rate (issue 16).
    """
    e = effects[(effects["factor"] == test["factor"]) & (effects["arm"] == test["arm"])
                & (effects["metric"] == test["metric"]) & np.isfinite(effects["diff"].to_numpy(float))]
    label = IX_METRICS[test["metric"]][0]
    who = words(test["arm"])
    if test["reference"] != "none":
        who += f" (vs {words(test['reference'])})"
    start = f"The effect of {who} on {label} depends on {test['factor']}"
    tail = f"permutation test within seeds, Holm p = {p_words(test['p_holm'])}"
    pick = [e["diff"].idxmax(), e["diff"].idxmin()] if len(e) >= 2 else []
    if len(set(pick)) < 2:
        return f"{start} ({tail})."
    ends = e.loc[pick].sort_index()
    parts = [f"{_amount(r)} at {level_str(r['level'])}" for _, r in ends.iterrows()]
    return f"{start}: {' vs '.join(parts)} ({tail})."


def closed_families_finding(families: list[power.ClosedFamily]) -> str:
    """Why every comparison of these families reads "did not detectably change": none could
    do otherwise (``reports.power.closed_families``)."""
    alike: dict[tuple[int, int], list[power.ClosedFamily]] = {}  # same size, same pairs: one clause
    for f in families:
        alike.setdefault((f.tests, f.max_pairs), []).append(f)
    parts = []
    for (m, n), fams in alike.items():
        names = [f.family for f in fams]
        named = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        size = f"{m} test{'s' * (m != 1)}{' each' if len(fams) > 1 else ''}"
        parts.append(f"{named} ({size}: Holm needs p < {fams[0].threshold:.2g}; "
                     f"at most {n} pairs give p ≥ {fams[0].best_p:.2g})")
    return (f"No comparison can be significant in {'this Holm family' if len(families) == 1 else 'these Holm families'}: "
            f"{', '.join(parts)}. Read their intervals (each for its comparison alone, not corrected for multiplicity); more seeds "
            f"per cell, or fewer cells or arms, make a finding possible (bnbench plan computes the seeds).")


def findings(data: StoreData, tables: Tables, inter: ix.Interactions | None = None) -> list[str]:
    """Flagged interactions, significant comparisons, the rest, then qualifying warnings."""
    out: list[str] = []
    if data.runs.empty:
        return ["This store has no runs" + (f" in grid {data.grid!r}" if data.grid else "") + "."]
    if inter is not None:
        for _, t in inter.tests[inter.tests["flagged"]].iterrows():
            out.append(interaction_finding(t, inter.effects, data.arm_words))
    comps = tables.comparisons
    n_cells = len(data.cells)
    if comps.empty:
        if len(data.arms) < 2:
            out.append(f"Only one {data.arm_word} ({', '.join(data.arms)}) is present: nothing to compare.")
        else:
            out.append(f"No {data.arm_word} shares seeds with the reference: no paired comparison possible.")
    else:
        closed = power.closed_families(comps)
        if closed:
            out.append(closed_families_finding(closed))
        order = comps.assign(_sig=comps["p_holm"].fillna(1.0) >= 0.05).sort_values("_sig", kind="stable")
        for _, row in order.head(MAX_FINDINGS).iterrows():
            out.append(finding(row, n_cells, data.arm_words))
        if len(comps) > MAX_FINDINGS:
            out.append(f"{len(comps) - MAX_FINDINGS} more comparisons are in the comparison table.")
    for row in tables.summary.to_dict("records"):  # records: iterrows builds a Series per row
        if row["note"]:
            out.append(f"{row['cell']} · {row['arm']}: {row['note']}.")
        if row["n_reached"] == 0 and "1 seed" not in row["note"] and "no analysable" not in row["note"]:
            out.append(f"{row['cell']} · {row['arm']}: no seed reached the target within "
                       f"{row['budget']} epochs (all censored).")
    n_bad = int((data.runs["status"] != "ok").sum())
    if n_bad:
        counts = data.runs["status"].value_counts()
        out.append(f"{n_bad} run(s) did not finish normally ({int(counts.get('diverged', 0))} diverged, "
                   f"{int(counts.get('failed', 0))} failed); see the failed and diverged runs section.")
    return out


# ----------------------------------------------------------------------------- tables


def summary_rows(summary: pd.DataFrame, word: str = "placement") -> list[dict[str, str]]:
    """``word``: the arm column's header (``StoreData.arm_word``)."""
    rows = []
    for r in summary.to_dict("records"):
        rows.append({
            "cell": r["cell"], word: r["arm"], "seeds": str(r["n_seeds"]),
            "ok / diverged / failed": f"{r['n_ok']} / {r['n_diverged']} / {r['n_failed']}",
            "reached target": f"{r['n_reached']} ({num(r['success_rate'] * 100, 0)}%)"
            if math.isfinite(r["success_rate"]) else "–",
            "KM median epochs [CI]": ci(r["km_median"], r["km_median_low"], r["km_median_high"], 0),
            "mean epochs (reached)": num(r["mean_ett_reached"], 2),
            "final val acc [CI]": ci(r["final_val_acc"], r["final_val_acc_low"], r["final_val_acc_high"], 4),
            "best val acc [CI]": ci(r["best_val_acc"], r["best_val_acc_low"], r["best_val_acc_high"], 4),
            "test acc at best val [CI]": ci(r["test_acc_at_best"], r["test_acc_at_best_low"],
                                            r["test_acc_at_best_high"], 4)
            if math.isfinite(r["test_acc_at_best"]) else "unknown",
            "s / epoch [CI]": ci(r["epoch_s"], r["epoch_s_low"], r["epoch_s_high"], 3),
            "time to target s [CI]": ci(r["time_to_target_s"], r["time_to_target_s_low"],
                                        r["time_to_target_s_high"], 2),
            "compile s": num(r["compile_s"], 2),
            "note": r["note"],
        })
    return rows


def comparison_rows(comps: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for r in comps.to_dict("records"):
        acc = r["metric"] in ACCURACY_METRICS
        scale, digits = (100.0, 2) if acc else (1.0, 3 if r["metric"] == "epoch_s" else 2)
        rows.append({
            "cell": r["cell"], "comparison": f"{r['arm']} − {r['reference']}",
            "metric": f"{r['label']} ({r['unit']})", "pairs": str(r["n_pairs"]),
            "paired diff [95% CI]": _diff_text(r, scale, "", digits) if math.isfinite(r["diff"]) else "–",
            "P(seed improves) [95% CI]": ci(r["p_improve"], r["p_improve_low"], r["p_improve_high"], 2),
            "test": r["test"], "p": pval(r["p"]), "Holm p (family)": pval(r["p_holm"])
            + (f" ({r['family']})" if r["family"] and math.isfinite(r["p_holm"]) else ""),
            "note": "; ".join(x for x in (r["diff_note"], r["p_note"]) if x),
        })
    return rows


def _ix_order(frame: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """Metric, factor, then arm in the report's order (levels keep their sorted order)."""
    return frame.assign(
        _m=frame["metric"].map({m: i for i, m in enumerate(IX_METRICS)}),
        _p=frame["arm"].map({p: i for i, p in enumerate(arms)}),
    ).sort_values(["_m", "factor", "_p"], kind="stable")


def effect_rows(effects: pd.DataFrame, arms: list[str]) -> list[dict[str, str]]:
    rows = []
    for r in _ix_order(effects, arms).to_dict("records"):  # records: iterrows builds a Series per row
        label, unit, scale = IX_METRICS[r["metric"]]
        rows.append({
            "metric": f"{label} ({unit})", "factor": r["factor"], "level": level_str(r["level"]),
            "comparison": f"{r['arm']} − {r['reference']}",
            "pairs": str(r["n_pairs"]) + (f" ({r['n_dropped']} dropped)" if r["n_dropped"] else ""),
            "median paired diff [95% CI]": ci(r["diff"], r["diff_low"], r["diff_high"], 2, scale),
            "note": r["note"] or "",
        })
    return rows


def interaction_test_rows(tests: pd.DataFrame, arms: list[str]) -> list[dict[str, str]]:
    return [{
        "metric": IX_METRICS[r["metric"]][0], "factor": r["factor"],
        "comparison": f"{r['arm']} − {r['reference']}", "levels": str(r["levels"]),
        "permutation p": pval(r["p"]), "Holm p": pval(r["p_holm"]),
        "flagged": "yes" if r["flagged"] else "",
    } for r in _ix_order(tests, arms).to_dict("records")]


def improvement_rows(poi: pd.DataFrame, arms: list[str], word: str = "placement") -> list[dict[str, str]]:
    """Each arm against every one listed before it (the reverse is 1 − P); ``word`` heads
    the arm column."""
    rank = {p: i for i, p in enumerate(arms)}
    keep = poi[[rank[a] > rank[b] for a, b in zip(poi["arm"], poi["versus"])]]
    return [{
        "metric": IX_METRICS[r["metric"]][0], word: r["arm"], "versus": r["versus"],
        "seed pairs": str(r["n_pairs"]), "cells": str(r["n_cells"]),
        "P(improvement) [95% CI]": ci(r["p_improve"], r["low"], r["high"], 2),
    } for _, r in keep.iterrows()]


def profile_rows(profile: pd.DataFrame, word: str = "placement") -> list[dict[str, str]]:
    rows = []
    for arm, g in profile.groupby("arm", sort=False):
        row = {word: arm}
        for _, r in g.iterrows():
            k = int(round(r["fraction"] * r["n_cells"]))
            row[f"within {r['tau'] * 100:g} pp"] = f"{k}/{r['n_cells']}"
        rows.append(row)
    return rows


def _cell_text(v: Any) -> str:
    """One value of a listed frame as ``frame_rows`` writes it."""
    return num(v, 4) if isinstance(v, float) else ("" if v is None else str(v))


def _column_texts(col: pd.Series) -> list[str]:
    """``_cell_text`` of each value of a column, as ``to_dict("records")`` would hand it
    (numpy scalars as Python ones). A float column is formatted in one pass: its NaN and
    infinities are few."""
    if col.dtype == np.float64:
        x = col.to_numpy()
        texts = [f"{v:.4f}" for v in x.tolist()]
        for i in np.flatnonzero(~np.isfinite(x)).tolist():
            texts[i] = num(float(x[i]), 4)
        return texts
    if not isinstance(col.dtype, np.dtype):  # an extension dtype (Int64...): pandas boxes it
        return [_cell_text(r[col.name]) for r in col.to_frame().to_dict("records")]
    if col.dtype.kind in "iub":  # integers and booleans: never float or None, so str
        return list(map(str, col.tolist()))
    if col.dtype != object:
        return [_cell_text(v) for v in col.tolist()]  # numpy -> Python scalars, as to_dict
    if pd.api.types.infer_dtype(col, skipna=False) == "string":  # all text: as it is
        return col.tolist()
    return [_cell_text(v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v)
            for v in col.tolist()]


def frame_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    """A frame's rows as text cells (the raw-runs table: ~200,000 of them), column by column."""
    columns = [_column_texts(frame[c]) for c in frame.columns]
    return [dict(zip(frame.columns, row)) for row in zip(*columns)]


# ----------------------------------------------------------------------------- methods


def _seeds_per_cell(data: StoreData) -> str:
    counts = data.runs.groupby(["cell", "arm"])["seed"].nunique()
    if counts.empty:
        return "no runs"
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo}" if lo == hi else f"{lo}–{hi} (median {counts.median():g})"


def parallelism(runs: pd.DataFrame) -> list[str]:
    """Which wall times are comparable: sequential runs vs contended or amortized ones."""
    if runs.empty:
        return []
    shared = runs["concurrent_workers"] > 1
    amortized = runs["seeds_in_program"] > 1
    alone = ~shared & ~amortized
    lines = []
    if alone.any():
        lines.append(f"{int(alone.sum())} run(s) trained alone (one worker, one seed per program): "
                     "their wall times are sequential and comparable with each other.")
    if shared.any():
        w = sorted(runs.loc[shared, "concurrent_workers"].unique())
        lines.append(f"{int(shared.sum())} run(s) shared the machine with other workers "
                     f"({', '.join(map(str, w))} concurrent workers): their wall times are contended.")
    if amortized.any():
        s = sorted(runs.loc[amortized, "seeds_in_program"].unique())
        lines.append(f"{int(amortized.sum())} run(s) were trained with several seeds in one program "
                     f"({', '.join(map(str, s))} seeds): their per-run times are amortized shares.")
    if alone.any() and (shared.any() or amortized.any()):
        lines.append("Wall times from these groups are not comparable with one another; compare "
                     "time per epoch only within one group.")
    threads = sorted(runs["threads"].unique())
    lines.append(f"Threads per worker: {', '.join(map(str, threads))} (0 = TensorFlow's default).")
    return lines


def _arm_factors(data: StoreData) -> str:
    """The arm factors that vary, in words ("placement", "normalizer, placement")."""
    names = data.arm_varying or (["placement"] if "placement" in data.arm_spec.compare
                                 else [data.arm_spec.compare[0]])
    return ", ".join(names)


def _arm_lines(data: StoreData) -> list[str]:
    """What the arms are, when they are more than placements (nothing otherwise, as before)."""
    if data.arm_word == "placement":
        return []
    spec = data.arm_spec
    return [f"Arms: combinations of the compared factors ({', '.join(spec.compare)}; declared "
            f"reference {spec.reference!r}), each arm also fixing the factors without effect in the "
            f"reference ({', '.join(spec.factors[len(spec.compare):]) or 'none'}): "
            + "; ".join(f"{a} = {data.arm_words(a)}" for a in data.arms) + "."]


def methods(data: StoreData, tables: Tables, inter: ix.Interactions | None = None,
            ranked: bool = False, n_permutations: int = N_PERMUTATIONS) -> dict[str, Any]:
    runs = data.runs
    comps = tables.comparisons
    families = [f"{fam} ({int(np.isfinite(g['p'].to_numpy(float)).sum())} tests)"
                for fam, g in comps.groupby("family", sort=False) if fam]
    targets = sorted(runs["target_accuracy"].unique()) if len(runs) else []
    budgets = sorted(runs["epochs_budget"].unique()) if len(runs) else []
    hosts = []
    for item in json_values(runs, "host_json"):
        h = item["value"]
        hosts.append(f"{h.get('cpu', '?')}, {h.get('cores', '?')} cores, {h.get('machine', '?')} "
                     f"{h.get('system', '')}, Python {h.get('python', '?')} — {item['runs']} run(s)")
    versions = [", ".join(f"{k} {v}" for k, v in sorted(i["value"].items())) + f" — {i['runs']} run(s)"
                for i in json_values(runs, "versions_json")]
    engines = [", ".join(f"{k}={v}" for k, v in sorted(i["value"].items())) + f" — {i['runs']} run(s)"
               for i in json_values(runs, "engine_json")]
    varying = varying_settings(runs, data.arm_spec.factors, data.settings) if len(runs) else []
    word = data.arm_word
    design = [
        f"{len(runs)} runs in {len(data.cells)} cell(s) × {len(data.arms)} {word}(s) "
        f"({', '.join(data.arms) or 'none'}); seeds per cell and {word}: {_seeds_per_cell(data)}.",
        "Cells (bench.cells): runs equal in every setting — factors, engine and its options, epoch "
        f"budget, target, validation size, training limit, data — except {_arm_factors(data)} and "
        "seed; only runs of one cell are paired. Settings that differ between cells here: "
        + (", ".join(varying) if varying else "none (one cell)") + ".",
        *_arm_lines(data),
        "Test split: each run scores the held-out test split (never used for training or any "
        "choice) with its final weights and with the weights of its best-validation epoch. "
        "Validation picks, test reports: the test accuracy at the best-validation epoch is the "
        "unbiased accuracy comparison (the best validation accuracy itself is biased upward by "
        "the choice). Runs stored before the test split was evaluated show it as unknown.",
        f"Target validation accuracy: {', '.join(f'{t:g}' for t in targets) or '–'}; "
        f"epoch budget: {', '.join(map(str, budgets)) or '–'}.",
    ]
    tests = [
        f"Reference {word}: {data.reference or '–'}. Every other {word} is compared with it "
        f"within each cell, paired by seed (seed s gives every {word} the same data order and "
        "initial weights); runs are joined on seed and pairs with a missing value are dropped.",
        "Intervals: medians get the distribution-free order-statistic interval of the median, "
        "interpolated between neighbouring order statistics (Hettmansperger & Sheather 1986; "
        "measured coverage of the nominal 95% at 10 seeds: 95.7% normal, 94.5% heavy-tailed, "
        "95.2% count data). Time per epoch is each run's median epoch time (compilation "
        "excluded); time to target sums epoch times up to the target epoch.",
        "Final validation accuracy is compared as counts of correct validation examples, so "
        "equal accuracies are exact ties in the signed-rank test and the medians. A diverged run "
        f"is scored at chance ({CHANCE_ACCURACY:g}); a sensitivity row repeats the comparison with "
        "the diverged seed pairs dropped (shown, not tested). Divergence itself is a paired binary "
        "outcome: exact McNemar test on the seed pairs (binomial test of the discordant pairs).",
        "Accuracy and time per epoch: median of per-seed differences (other − reference) with "
        "its order-statistic interval; two-sided Wilcoxon signed-rank test (exact for small "
        "samples, with ties the exact sign-flip distribution). Effect size: P(seed improves), the "
        f"share of seed pairs in which the other {word} is better (ties count one half), with a "
        "Clopper–Pearson interval; it respects the pairing (Cliff's delta over all cross-seed "
        "pairs would not).",
        "Epochs to target is censored at the budget for runs that never reached it. Kaplan–Meier "
        "curves give the fraction of seeds at target by epoch; the KM median is the first epoch "
        "where it reaches 0.5. The effect is the difference of KM medians (other − reference) "
        f"with a bootstrap interval that resamples seed pairs and recomputes both curves "
        f"({tables.n_resamples} resamples, fixed seed {stats.SEED}); where a median is not reached "
        "the difference is only bounded (\"at least N\", an infinite interval end). Test: a "
        "seed-paired permutation log-rank test (the two runs of a seed swapped, exact for up to "
        "16 pairs, the normal approximation of the same distribution above); measured A/A size "
        "4.1% at 8 pairs (the chi-square log-rank: 5.8%).",
        "Timing: seeds trained in one stacked program share one measurement, so the unit of "
        "timing inference is the program (values reduced to one per program; one program is "
        "\"one measurement\", with no interval). Runs trained while other workers shared the "
        "machine (concurrent_workers > 1) are excluded from timing inference: their times are "
        "confounded with load.",
        "Multiple comparisons: one Holm family per question: "
        + (", ".join(families) if families else "none")
        + "; \"significant\" means Holm p < 0.05 within its family. Each hypothesis is tested once "
        "(epochs to target only by the log-rank test). Each interval is for its comparison alone "
        "(95% unless its note says otherwise), not corrected for multiplicity: an interval that "
        "excludes zero can come with a Holm p of 0.05 or more."
        + (" The interaction tests are a family of their own (below)." if inter is not None else ""),
        "Test accuracy: each run scores the held-out test split (never used for training or "
        "selection) with its weights of the best-validation epoch; validation picks the epoch, the "
        "test split reports it. It is compared like final accuracy (as counts of the test split, "
        "Wilcoxon signed-rank) in a Holm family of its own: the unbiased accuracy result. Runs stored "
        "before bnbench evaluated the test split show it as unknown.",
        "Failed runs (an exception, no outcome) are excluded from the statistics and listed below.",
    ]
    if inter is not None:
        n_t = int(np.isfinite(inter.tests["p"].to_numpy(float)).sum())
        tests += [
            f"Interactions: for each {word} vs the reference and each level of each other "
            "varying factor, the seed-paired differences of every cell at that level are pooled; "
            "median with its 95% order-statistic interval. Epochs to target is shown per level only "
            "where some run at that level reached the target.",
            "Interaction tests: does the paired effect change with the factor's level? A "
            "permutation test within seeds (statistic: between-level sum of squares of the mean "
            "paired differences, each centred within its block of one seed at one combination of "
            f"the other factors; {n_permutations} random reassignments of the level labels within "
            f"those blocks, fixed seed), Holm-corrected across the {n_t} interaction tests. An "
            "interaction is flagged, and becomes a finding, only when Holm p < 0.05; the "
            "per-level intervals are descriptive.",
        ]
    if ranked:
        tests += [
            "Probability of improvement: the share of seed pairs (same cell, same seed) in which "
            f"one {word} beats another, ties counting one half, pooled across cells; 95% "
            "Wilson interval with seeds as clusters (a seed's effect is shared by its cells): "
            "effective size from the variance of per-seed scores, t quantile on seeds − 1 df. "
            "For epochs to target fewer is better and runs that never reached it count as budget + 1.",
            f"Performance profile: in how many cells a {word}'s median final validation "
            f"accuracy is within τ (in percentage points) of the best {word}'s median there.",
        ]
    if inter is not None or ranked:
        tests.append(
            "Diverged runs in the interaction and ranking analyses keep their recorded final "
            "accuracy (after a NaN loss that is about chance); a diverged run with no recorded "
            "accuracy drops its pair, as in the paired comparisons, and the per-level table counts "
            "dropped pairs. For epochs to target a diverged run counts as never reaching it.")
    return {"design": design, "tests": tests, "hosts": hosts, "versions": versions,
            "engines": engines, "parallelism": parallelism(runs)}


# ----------------------------------------------------------------------------- assembly


def build_interactions(data: StoreData, n_resamples: int = stats.N_RESAMPLES,
                       n_permutations: int = N_PERMUTATIONS) -> ix.Interactions | None:
    """Part (a) of reports.interactions when a factor outside the arms varies, else None."""
    if data.runs.empty or not data.cell_factors or len(data.arms) < 2:
        return None
    return ix.interactions(data, metrics=tuple(IX_METRICS), diverged_value=DIVERGED_VALUE,
                           n_resamples=n_resamples, n_permutations=n_permutations)


def build_ranking(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> dict[str, Any] | None:
    """Probability of improvement and the performance profile when there are >= 2 arms."""
    if data.runs.empty or len(data.arms) < 2:
        return None
    poi = pd.concat([ix.probability_of_improvement(data, metric=m, diverged_value=DIVERGED_VALUE,
                                                   n_resamples=n_resamples) for m in IX_METRICS],
                    ignore_index=True)
    profile = ix.performance_profile(data, metric="final_val_acc", taus=PROFILE_TAUS,
                                     diverged_value=DIVERGED_VALUE)
    return {"improvement": improvement_rows(poi, data.arms, data.arm_word),
            "profile": profile_rows(profile, data.arm_word),
            "n_cells": len(data.cells), "poi": poi, "profile_frame": profile}


def build_context(data: StoreData, *, n_resamples: int = stats.N_RESAMPLES,
                  with_figures: bool = True, n_permutations: int = N_PERMUTATIONS,
                  with_run_list: bool = True, drawing: Drawing | None = None) -> dict[str, Any]:
    """Everything the templates show; ``with_figures`` / ``with_run_list``: the SVG figures and
    the every-run table, which only the HTML report has (a 10,000-run store's list is ~1 s);
    ``drawing``: the figures' drawing, if started before loading (``render_report``)."""
    if drawing is None and with_figures and len(data.runs):
        drawing = Drawing(len(data.runs))
    if drawing is not None:
        drawing.data(data)  # drawn beside the tables
    tables = build_tables(data, n_resamples)
    if drawing is not None:
        drawing.comparisons(tables.comparisons)
    inter = build_interactions(data, n_resamples, n_permutations)
    if drawing is not None and inter is not None:
        drawing.effects(inter.effects)
    ranking = build_ranking(data, n_resamples)
    status = data.runs["status"].value_counts() if len(data.runs) else pd.Series(dtype=int)
    ctx = {
        "title": f"bnbench report — {data.grid or data.path.name}",
        "store": str(data.path),
        "grid": data.grid or "all grids",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "counts": {s: int(status.get(s, 0)) for s in ("ok", "diverged", "failed")},
        "n_runs": len(data.runs),
        "findings": findings(data, tables, inter),
        "arm_word": data.arm_word,
        "summary": summary_rows(tables.summary, data.arm_word),
        "comparisons": comparison_rows(tables.comparisons),
        "interactions": None if inter is None else {
            "effects": effect_rows(inter.effects, data.arms),
            "tests": interaction_test_rows(inter.tests, data.arms),
            "n_flagged": int(inter.tests["flagged"].sum()), "factors": data.cell_factors,
            "reference": data.reference, "raw": inter,
        },
        "ranking": ranking,
        "figures": {}, "figure_captions": {}, "figure_notes": {},
        "n_cells": len(data.cells),
        "methods": methods(data, tables, inter, ranking is not None, n_permutations),
        "failures": frame_rows(failures(data)),
        "runs": frame_rows(raw_runs(data)) if with_run_list else [],
        "tables": tables,
    }
    if drawing is not None:  # last: the worker draws while the rows above are built
        ctx["figures"], ctx["figure_captions"], ctx["figure_notes"] = drawing.result()
    return ctx


def _md_cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(rows: list[dict[str, Any]], strong: tuple = ()) -> str:
    """A Markdown table of a list of dicts (keys = header), cells in ``strong`` in bold: the
    text the template macro (``table.md.j2``) wrote with a loop per cell, built here (the
    comparison table of a 10,000-run store has ~27,000 cells)."""
    if not rows:
        return "_none_\n"
    def cell(v: Any) -> str:
        return f"**{_md_cell(v)}**" if v in strong else _md_cell(v)
    lines = [f"| {' | '.join(map(str, rows[0]))} |", "|" + "---|" * len(rows[0])]
    lines += [f"| {' | '.join(map(cell, r.values()))} |" for r in rows]
    return "\n".join(lines) + "\n"


#: Joins a row's cells before escaping (escaping leaves it alone; a row whose cells contain it
#: is escaped cell by cell instead).
_CELL_SEP = "\x00"


def html_table(rows: list[dict[str, Any]], id: str = "") -> markupsafe.Markup:
    """A table's HTML, as the template's loop over cells wrote it, escaped a row at a time.

    The raw-runs table of a 10,000-run store has ~250,000 cells; escaping them one template
    expression at a time took about a second. Same text as the loop
    (tests/report_tests/test_vectorized.py).
    """
    esc = markupsafe.escape
    if not rows:
        return markupsafe.Markup('<p class="empty">None.</p>\n')
    attr = f' id="{esc(id)}"' if id else ""
    out = [f'<div class="scroll"><table{attr}>\n<thead><tr>',
           *(f"<th>{esc(c)}</th>" for c in rows[0]), "</tr></thead>\n<tbody>\n"]
    for r in rows:
        cells = [v if isinstance(v, str) else str(v) for v in r.values()]
        row = _CELL_SEP.join(cells)
        if not cells:
            out.append("<tr></tr>\n")
        elif row.count(_CELL_SEP) == len(cells) - 1 and not any(hasattr(v, "__html__") for v in r.values()):
            out.append(f"<tr><td>{str(esc(row)).replace(_CELL_SEP, '</td><td>')}</td></tr>\n")
        else:
            out.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r.values()) + "</tr>\n")
    out.append("</tbody></table></div>\n")
    return markupsafe.Markup("".join(out))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"], default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    env.filters["md_cell"] = _md_cell
    env.globals["html_table"] = html_table
    env.globals["md_table"] = md_table
    return env


def render_template(name: str, ctx: dict[str, Any]) -> str:
    """A template of ``reports/templates`` in the report's environment (``bnbench compare``'s too)."""
    return _env().get_template(name).render(**ctx)


def render_html(ctx: dict[str, Any]) -> str:
    return _env().get_template("report.html.j2").render(**ctx)


def render_markdown(ctx: dict[str, Any]) -> str:
    """The same context through the Markdown template (tables and findings, no figures)."""
    return _env().get_template("report.md.j2").render(**ctx)


def render_report(store: str | Path, *, grid: str | None = None, fmt: str = "html",
                  n_resamples: int = stats.N_RESAMPLES, n_permutations: int = N_PERMUTATIONS,
                  arms: Arms | None = None) -> str:
    """The report of a store as text (HTML or Markdown); ``arms``: what to compare (default:
    the grid's ``[report]`` table, else normalizer x placement vs ``none``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (allowed: {', '.join(FORMATS)})")
    html = fmt == "html"
    # Started first: its worker, if any, imports matplotlib while the store loads.
    drawing = Drawing(stored_runs(store, grid)) if html else None
    try:
        # Only the figures read the epochs: a worker reads them itself, Markdown has none.
        data = load(store, grid, arms, with_epochs=drawing is not None and drawing.drawn_here)
        if drawing is not None and not len(data.runs):  # emptied since it was counted
            drawing.close()
            drawing = None
        ctx = build_context(data, n_resamples=n_resamples, with_figures=html,
                            n_permutations=n_permutations, with_run_list=html, drawing=drawing)
    except BaseException:
        if drawing is not None:
            drawing.close()
        raise
    return render_html(ctx) if html else render_markdown(ctx)


def stored_runs(store: str | Path, grid: str | None) -> int:
    """How many runs ``load`` will read (0 where it will fail, which it then explains)."""
    try:
        with contextlib.closing(open_readonly(store)) as conn:
            return count_runs(conn, grid) or 0
    except (StoreError, UsageError, OSError, sqlite3.Error):
        return 0
