"""Assemble the report: plain-word findings, tables, figures, methods, failures, raw runs.

One context dict feeds two renderers: a self-contained HTML page (inline SVG, inline CSS,
no scripts, nothing fetched) and Markdown for CI logs (tables only).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from reports import stats
from reports.load import StoreData, json_values, load, placement_words
from reports.tables import Tables, build_tables, failures, raw_runs

MAX_FINDINGS = 40
FORMATS = ("html", "markdown")


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


def finding(row: pd.Series, n_cells: int) -> str:
    """One comparison in plain words, e.g. "BN after the activation raised final ..."."""
    who = placement_words(row["placement"])
    ref = placement_words(row["reference"])
    start = _where(row["cell"], n_cells)
    if row["n_pairs"] < 2 or not math.isfinite(row["p"]):
        reason = row["p_note"] or "no test possible"
        return f"{start}{who} vs {ref}, {row['label']}: {reason}."
    sig = row["p_holm"] < 0.05
    tail = f"(Holm p={pval(row['p_holm'])}, {row['n_pairs']} paired seeds)"
    d, lo, hi = row["diff"], row["diff_low"], row["diff_high"]
    if row["metric"] == "final_val_acc":
        amount = f"{abs(d) * 100:.1f} pp [{lo * 100:+.1f}, {hi * 100:+.1f}]"
        verb = ("raised" if d > 0 else "lowered") if sig else "did not detectably change"
        if not sig:
            return f"{start}{who} {verb} {row['label']} vs {ref}: {d * 100:+.1f} pp [{lo * 100:+.1f}, {hi * 100:+.1f}] {tail}."
        return f"{start}{who} {verb} {row['label']} by {amount} vs {ref} {tail}."
    if row["metric"] == "epochs_to_target":
        if not sig or d == 0:
            return (f"{start}{who} did not detectably change epochs to target vs {ref}: "
                    f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] epochs {tail}; censored runs counted as budget + 1.")
        word = "fewer" if d < 0 else "more"
        return (f"{start}{who} needed {abs(d):.1f} {word} epochs to reach the target than {ref} "
                f"[{lo:+.1f}, {hi:+.1f}] {tail}; censored runs counted as budget + 1.")
    if not sig:
        return f"{start}{who} did not detectably change time per epoch vs {ref}: {d:+.2f} s [{lo:+.2f}, {hi:+.2f}] {tail}."
    word = "longer" if d > 0 else "less"
    return f"{start}{who} took {abs(d):.2f} s {word} per epoch than {ref} [{lo:+.2f}, {hi:+.2f}] {tail}."


def findings(data: StoreData, tables: Tables) -> list[str]:
    """Significant comparisons first, then the rest, then warnings that qualify them."""
    out: list[str] = []
    if data.runs.empty:
        return ["This store has no runs" + (f" in grid {data.grid!r}" if data.grid else "") + "."]
    comps = tables.comparisons
    n_cells = len(data.cells)
    if comps.empty:
        if len(data.placements) < 2:
            out.append(f"Only one placement ({', '.join(data.placements)}) is present: nothing to compare.")
        else:
            out.append("No placement shares seeds with the reference: no paired comparison possible.")
    else:
        order = comps.assign(_sig=comps["p_holm"].fillna(1.0) >= 0.05).sort_values("_sig", kind="stable")
        for _, row in order.head(MAX_FINDINGS).iterrows():
            out.append(finding(row, n_cells))
        if len(comps) > MAX_FINDINGS:
            out.append(f"{len(comps) - MAX_FINDINGS} more comparisons are in the comparison table.")
    for _, row in tables.summary.iterrows():
        if row["note"]:
            out.append(f"{row['cell']} · {row['placement']}: {row['note']}.")
        elif row["n_reached"] == 0:
            out.append(f"{row['cell']} · {row['placement']}: no seed reached the target within "
                       f"{row['budget']} epochs (all censored).")
    n_bad = int((data.runs["status"] != "ok").sum())
    if n_bad:
        counts = data.runs["status"].value_counts()
        out.append(f"{n_bad} run(s) did not finish normally ({int(counts.get('diverged', 0))} diverged, "
                   f"{int(counts.get('failed', 0))} failed); see the failed and diverged runs section.")
    return out


# ----------------------------------------------------------------------------- tables


def summary_rows(summary: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for _, r in summary.iterrows():
        rows.append({
            "cell": r["cell"], "placement": r["placement"], "seeds": str(r["n_seeds"]),
            "ok / diverged / failed": f"{r['n_ok']} / {r['n_diverged']} / {r['n_failed']}",
            "reached target": f"{r['n_reached']} ({num(r['success_rate'] * 100, 0)}%)"
            if math.isfinite(r["success_rate"]) else "–",
            "KM median epochs [CI]": ci(r["km_median"], r["km_median_low"], r["km_median_high"], 0),
            "mean epochs (reached)": num(r["mean_ett_reached"], 2),
            "final val acc [CI]": ci(r["final_val_acc"], r["final_val_acc_low"], r["final_val_acc_high"], 4),
            "best val acc [CI]": ci(r["best_val_acc"], r["best_val_acc_low"], r["best_val_acc_high"], 4),
            "s / epoch [CI]": ci(r["epoch_s"], r["epoch_s_low"], r["epoch_s_high"], 3),
            "time to target s [CI]": ci(r["time_to_target_s"], r["time_to_target_s_low"],
                                        r["time_to_target_s_high"], 2),
            "compile s": num(r["compile_s"], 2),
            "note": r["note"],
        })
    return rows


def comparison_rows(comps: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for _, r in comps.iterrows():
        scale, digits = (100.0, 2) if r["metric"] == "final_val_acc" else (1.0, 2)
        rows.append({
            "cell": r["cell"], "comparison": f"{r['placement']} − {r['reference']}",
            "metric": f"{r['label']} ({r['unit']})", "pairs": str(r["n_pairs"]),
            "median paired diff [CI]": ci(r["diff"], r["diff_low"], r["diff_high"], digits, scale),
            "Cliff's δ [CI]": ci(r["cliff"], r["cliff_low"], r["cliff_high"], 2)
            + (f" ({stats.cliff_magnitude(r['cliff'])})" if math.isfinite(r["cliff"]) else ""),
            "Wilcoxon p": pval(r["p"]), "Holm p": pval(r["p_holm"]),
            "note": "; ".join(x for x in (r["p_note"], r["censoring"]) if x),
        })
    return rows


def logrank_rows(lr: pd.DataFrame) -> list[dict[str, str]]:
    return [{"cell": r["cell"], "placements": r["placements"], "runs": str(r["n_runs"]),
             "log-rank p": pval(r["p"]), "Holm p": pval(r["p_holm"]), "note": r["p_note"]}
            for _, r in lr.iterrows()]


def frame_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [{c: num(v, 4) if isinstance(v, float) else ("" if v is None else str(v))
             for c, v in row.items()} for row in frame.to_dict("records")]


# ----------------------------------------------------------------------------- methods


def _seeds_per_cell(data: StoreData) -> str:
    counts = data.runs.groupby(["cell", "placement"])["seed"].nunique()
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


def methods(data: StoreData, tables: Tables) -> dict[str, Any]:
    runs = data.runs
    n_p = int(np.isfinite(tables.comparisons["p"].to_numpy(float)).sum()
              + np.isfinite(tables.logrank["p"].to_numpy(float)).sum())
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
    design = [
        f"{len(runs)} runs in {len(data.cells)} cell(s) × {len(data.placements)} placement(s) "
        f"({', '.join(data.placements) or 'none'}); seeds per cell and placement: {_seeds_per_cell(data)}.",
        "Cells are the combinations of the varying factors other than placement: "
        + (", ".join(data.cell_factors) if data.cell_factors else "none (one cell)") + ".",
        f"Target validation accuracy: {', '.join(f'{t:g}' for t in targets) or '–'}; "
        f"epoch budget: {', '.join(map(str, budgets)) or '–'}.",
    ]
    tests = [
        f"Reference placement: {data.reference or '–'}. Every other placement is compared with it "
        "within each cell, paired by seed (seed s gives every placement the same data order and "
        "initial weights); runs are joined on seed and pairs with a missing value are dropped.",
        f"Summaries: median with a 95% percentile bootstrap interval ({tables.n_resamples} "
        f"resamples, fixed seed {stats.SEED}). Time per epoch is each run's median epoch time "
        "(compilation excluded); time to target sums epoch times up to the target epoch.",
        "Paired differences: median of per-seed differences (other − reference), 95% bootstrap "
        "interval resampling seeds. Effect size: Cliff's delta (P(other > ref) − P(other < ref)) "
        "with a bootstrap interval resampling seeds.",
        "p-values: two-sided Wilcoxon signed-rank test on the paired differences (scipy; exact "
        "for small samples without ties). For epochs to target, runs that never reached the "
        "target are counted as budget + 1 for this rank test.",
        "Censoring: epochs to target is censored at the budget for runs that never reached it. "
        "Kaplan–Meier curves give the fraction of seeds at target by epoch; the KM median is the "
        "first epoch where that fraction reaches 0.5, with a bootstrap interval that resamples "
        "seeds and recomputes the KM curve. A log-rank test (k − 1 degrees of freedom) compares "
        "all placements of a cell; it ignores the pairing, which makes it conservative.",
        f"Multiple comparisons: Holm's step-down correction across all {n_p} p-values in this "
        "report (comparisons and log-rank tests together); findings call a difference "
        "significant at Holm p < 0.05.",
        "Failed runs (an exception, no outcome) are excluded from the statistics and listed "
        "below; diverged runs are included, censored if they never reached the target.",
    ]
    return {"design": design, "tests": tests, "hosts": hosts, "versions": versions,
            "engines": engines, "parallelism": parallelism(runs)}


# ----------------------------------------------------------------------------- assembly


def build_context(data: StoreData, *, n_resamples: int = stats.N_RESAMPLES,
                  with_figures: bool = True) -> dict[str, Any]:
    from reports import figures  # matplotlib only when drawing

    tables = build_tables(data, n_resamples)
    status = data.runs["status"].value_counts() if len(data.runs) else pd.Series(dtype=int)
    return {
        "title": f"bnbench report — {data.grid or data.path.name}",
        "store": str(data.path),
        "grid": data.grid or "all grids",
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "counts": {s: int(status.get(s, 0)) for s in ("ok", "diverged", "failed")},
        "n_runs": len(data.runs),
        "findings": findings(data, tables),
        "summary": summary_rows(tables.summary),
        "comparisons": comparison_rows(tables.comparisons),
        "logrank": logrank_rows(tables.logrank),
        "figures": figures.all_figures(data, tables.comparisons) if with_figures and len(data.runs) else {},
        "figure_cells": min(len(data.cells), figures.MAX_CELLS),
        "n_cells": len(data.cells),
        "methods": methods(data, tables),
        "failures": frame_rows(failures(data)),
        "runs": frame_rows(raw_runs(data)),
        "tables": tables,
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )


def render_html(ctx: dict[str, Any]) -> str:
    return _env().get_template("report.html.j2").render(**ctx)


def md_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(rows[0])

    def cell(v: str) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_markdown(ctx: dict[str, Any]) -> str:
    m = ctx["methods"]
    c = ctx["counts"]
    parts = [
        f"# {ctx['title']}\n",
        f"Store `{ctx['store']}`, {ctx['grid']}: {ctx['n_runs']} runs "
        f"({c['ok']} ok, {c['diverged']} diverged, {c['failed']} failed).\n",
        "## Findings\n", *(f"- {f}" for f in ctx["findings"]), "",
        "## Summary per cell and placement\n", md_table(ctx["summary"]),
        "## Paired comparisons\n", md_table(ctx["comparisons"]),
        "## Log-rank tests (epochs to target)\n", md_table(ctx["logrank"]),
        "## Methods\n",
        *(f"- {x}" for x in m["design"] + m["tests"] + m["parallelism"]),
        *(f"- Hardware: {x}" for x in m["hosts"]),
        *(f"- Versions: {x}" for x in m["versions"]),
        *(f"- Engine: {x}" for x in m["engines"]), "",
        f"## Failed and diverged runs ({len(ctx['failures'])})\n", md_table(ctx["failures"]),
    ]
    return "\n".join(parts)


def render_report(store: str | Path, *, grid: str | None = None, fmt: str = "html",
                  n_resamples: int = stats.N_RESAMPLES) -> str:
    """The report of a store as text (HTML or Markdown)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (allowed: {', '.join(FORMATS)})")
    data = load(store, grid)
    ctx = build_context(data, n_resamples=n_resamples, with_figures=(fmt == "html"))
    return render_html(ctx) if fmt == "html" else render_markdown(ctx)
