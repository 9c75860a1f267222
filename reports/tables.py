"""The report's tables: per cell x placement summaries and seed-paired comparisons.

Statistics use the runs whose outcome is known (``ok`` and ``diverged``); ``failed`` runs
are counted here and listed in full by the report, never silently dropped. A diverged run
is scored at chance accuracy (with a sensitivity row that drops it), counts as a
divergence in its own paired outcome, and is censored at the budget for epochs to target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.cells import pair
from reports import intervals, stats
from reports.intervals import Interval, as_counts
from reports.load import StoreData

#: metric key -> (label, unit, Holm family). One family per question: an accuracy finding does
#: not get more or less significant because of how many timing rows the report holds.
METRICS = {
    "final_val_acc": ("final validation accuracy", "pp", "accuracy"),
    "final_val_acc_no_diverged": ("final validation accuracy, diverged pairs dropped", "pp", ""),
    "epochs_to_target": ("epochs to target (KM median)", "epochs", "epochs to target"),
    "epoch_s": ("time per epoch", "s", "time per epoch"),
    "diverged": ("divergence", "share of seeds", "divergence"),
    # The unbiased accuracy comparison: validation picked the epoch, the test split reports it.
    "test_acc": ("test accuracy at the best-validation epoch", "pp", "test accuracy"),
}
#: Every bnbench dataset has 10 classes: a diverged run (NaN loss) is scored at chance.
CHANCE_ACCURACY = 0.1
#: Accuracy metrics (shown in percentage points).
ACCURACY_METRICS = ("final_val_acc", "final_val_acc_no_diverged", "test_acc")
#: Why a test-accuracy comparison has no pairs: the runs predate the test split.
TEST_UNKNOWN_NOTE = "test accuracy unknown (runs stored before bnbench evaluated the test split)"

#: Why timing rows have fewer units than seeds (see ``timing_units``).
SHARED_TIMING_NOTE = "seeds trained in one program share one timing measurement: the unit is the program"
CONTENDED_NOTE = "runs trained while other workers shared the machine are excluded from timing inference"


@dataclass
class Tables:
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    n_resamples: int


def _ci_cols(prefix: str, est: Interval) -> dict[str, float]:
    return {prefix: est.point, f"{prefix}_low": est.low, f"{prefix}_high": est.high}


def program_key(runs: pd.DataFrame) -> pd.Series:
    """One key per independent timing measurement: seeds trained in one program share one.

    The seeds of one stacked program are one cell and placement started at the same moment.
    """
    shared = runs["seeds_in_program"] > 1
    program = runs["cell"].astype(str) + "|" + runs["placement"].astype(str) + "|" + runs["started_at"].astype(str)
    return program.where(shared, runs["run_id"].astype(str))


def timed(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose timings support inference: trained without other workers on the machine."""
    return runs[runs["concurrent_workers"] <= 1]


def summarize_group(g: pd.DataFrame, n_resamples: int) -> dict[str, object]:
    """One row of the summary table for the runs of one cell and placement."""
    status = g["status"].value_counts()
    a = g[g["analysed"]]
    n = len(a)
    reached = a["reached"].to_numpy(dtype=bool)
    row: dict[str, object] = {
        "n_seeds": int(g["seed"].nunique()),
        "n_ok": int(status.get("ok", 0)),
        "n_diverged": int(status.get("diverged", 0)),
        "n_failed": int(status.get("failed", 0)),
        "n_reached": int(reached.sum()),
        "success_rate": reached.mean() if n else math.nan,
        "budget": int(g["epochs_budget"].max()),
    }
    km = stats.km_median_ci(a["ett_duration"].to_numpy(), reached, n_resamples=n_resamples)
    row.update(_ci_cols("km_median", km))
    row["mean_ett_reached"] = a.loc[a["reached"], "epochs_to_target"].mean() if reached.any() else math.nan
    for key, col in (("final_val_acc", "final_val_acc"), ("best_val_acc", "best_val_acc"),
                     ("test_acc_at_best", "test_acc_at_best")):
        row.update(_ci_cols(key, stats.bootstrap_ci(a[col].to_numpy(dtype=float), n_resamples=n_resamples)))
    t = timed(a)
    for key, col in (("epoch_s", "epoch_s_median"), ("time_to_target_s", "time_to_target_s")):
        est = stats.bootstrap_ci(t[col].to_numpy(dtype=float), unit=program_key(t).to_numpy(),
                                 n_resamples=n_resamples)
        row.update(_ci_cols(key, est))
    row["compile_s"] = float(np.nanmedian(a["compile_s"].to_numpy(dtype=float))) if n and a["compile_s"].notna().any() else math.nan
    notes = ["no statistics possible with 1 seed" if n == 1 else ("no analysable runs" if n == 0 else "")]
    if len(t) < n:
        notes.append(f"timings of {n - len(t)} run(s) trained beside other workers excluded")
    row["note"] = "; ".join(x for x in notes if x)
    return row


def summary_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    rows = []
    for (cell, placement), g in data.runs.groupby(["cell", "placement"], sort=False):
        rows.append({"cell": cell, "placement": placement, **summarize_group(g, n_resamples)})
    return pd.DataFrame(rows)


def paired_runs(runs: pd.DataFrame, ref: str, other: str) -> pd.DataFrame:
    """Analysed runs of two placements of one cell joined one to one on seed (suffixes _a, _b;
    ``bench.cells.pair`` refuses a seed that holds two runs of one placement)."""
    cols = [c for c in runs.columns if c != "seed"]
    return pair(runs, ref, other, cols, on=("seed",))


def _row(metric: str, n: int, diff: Interval, test: stats.TestResult,
         effect: Interval | None = None, diff_note: str = "", p_note: str = "") -> dict[str, object]:
    label, unit, family = METRICS[metric]
    effect = effect or Interval(math.nan)
    return {
        "metric": metric, "label": label, "unit": unit, "family": family, "n_pairs": n,
        **_ci_cols("diff", diff), "diff_note": diff_note or diff.note,
        **_ci_cols("p_improve", effect), "p": test.p, "test": test.test,
        "p_note": "; ".join(x for x in (test.note, p_note) if x),
    }


def accuracy_rows(pairs: pd.DataFrame, n_resamples: int) -> list[dict[str, object]]:
    """Final accuracy as counts of correct validation examples (ties exact), diverged runs at
    chance; a sensitivity row with the diverged pairs dropped when any pair has one."""
    n_val = pairs["validation_size_a"].to_numpy(float)
    div_a = (pairs["status_a"] == "diverged").to_numpy()
    div_b = (pairs["status_b"] == "diverged").to_numpy()
    acc_a = np.where(div_a, CHANCE_ACCURACY, pairs["final_val_acc_a"].to_numpy(float))
    acc_b = np.where(div_b, CHANCE_ACCURACY, pairs["final_val_acc_b"].to_numpy(float))
    ca, cb = as_counts(acc_a, n_val), as_counts(acc_b, n_val)
    rows = []
    for metric, keep in (("final_val_acc", np.ones(len(pairs), bool)),
                         ("final_val_acc_no_diverged", ~(div_a | div_b))):
        if metric == "final_val_acc_no_diverged" and keep.all():
            break
        k = keep & np.isfinite(ca) & np.isfinite(cb)
        scale = n_val[k]
        diff = stats.paired_difference(ca[k] / scale, cb[k] / scale, n_resamples=n_resamples)
        primary = metric == "final_val_acc"
        test = stats.wilcoxon_p(ca[k], cb[k]) if primary else stats.TestResult(
            math.nan, "", "sensitivity analysis: not tested (same hypothesis as the row above)")
        note = (f"diverged runs scored at chance ({CHANCE_ACCURACY:g})" if primary and (div_a | div_b).any()
                else "")
        rows.append(_row(metric, int(k.sum()), diff, test, stats.p_improve(ca[k], cb[k]), diff_note=note))
    return rows


def test_accuracy_row(pairs: pd.DataFrame, n_resamples: int) -> dict[str, object] | None:
    """Test accuracy at each seed's best-validation epoch, as counts of the test split: the
    unbiased accuracy comparison (validation picked the epoch; the test split reports it)."""
    if not len(pairs):
        return None
    n_test = pairs["test_size_a"].to_numpy(float)
    ca = as_counts(pairs["test_acc_at_best_a"].to_numpy(float), n_test)
    cb = as_counts(pairs["test_acc_at_best_b"].to_numpy(float), n_test)
    k = np.isfinite(ca) & np.isfinite(cb)
    if not k.any():
        return _row("test_acc", 0, Interval(math.nan), stats.TestResult(math.nan, "", TEST_UNKNOWN_NOTE))
    diff = stats.paired_difference(ca[k] / n_test[k], cb[k] / n_test[k], n_resamples=n_resamples)
    return _row("test_acc", int(k.sum()), diff, stats.wilcoxon_p(ca[k], cb[k]), stats.p_improve(ca[k], cb[k]))


def epochs_row(pairs: pd.DataFrame, n_resamples: int) -> dict[str, object]:
    """KM median epochs to target, seed-paired and censoring-aware; paired log-rank test."""
    ta, ea = pairs["ett_duration_a"].to_numpy(float), pairs["reached_a"].to_numpy(bool)
    tb, eb = pairs["ett_duration_b"].to_numpy(float), pairs["reached_b"].to_numpy(bool)
    budget = int(max(pairs["epochs_budget_a"].max(), pairs["epochs_budget_b"].max())) if len(pairs) else 0
    diff = stats.km_median_difference(ta, ea, tb, eb, budget=budget, n_resamples=n_resamples)
    note = ""
    if len(pairs):
        ma, mb = stats.km_median(ta, ea), stats.km_median(tb, eb)
        if math.isinf(ma) and math.isinf(mb):
            note = f"neither KM median reached within {budget} epochs"
        elif math.isinf(ma):
            note = f"at least {-diff.point:g} fewer (reference median not reached within {budget} epochs)"
        elif math.isinf(mb):
            note = f"at least {diff.point:g} more (median not reached within {budget} epochs)"
    test = stats.paired_logrank(ta, ea, tb, eb)
    effect = stats.p_improve(ta, tb, higher=False)
    return _row("epochs_to_target", len(pairs), diff, test, effect, diff_note=note)


def timing_row(pairs: pd.DataFrame, n_resamples: int) -> dict[str, object] | None:
    """Time per epoch over independent measurements only: the unit is the pair of programs."""
    if not len(pairs):
        return None
    contended = (pairs["concurrent_workers_a"] > 1) | (pairs["concurrent_workers_b"] > 1)
    p = pairs[~contended]
    a, b = p["epoch_s_median_a"].to_numpy(float), p["epoch_s_median_b"].to_numpy(float)
    keep = np.isfinite(a) & np.isfinite(b)
    p, a, b = p[keep], a[keep], b[keep]
    unit = (p["program_a"] + "||" + p["program_b"]).to_numpy()
    shared = bool(len(p)) and bool((p["seeds_in_program_a"] > 1).any() or (p["seeds_in_program_b"] > 1).any())
    diff = stats.paired_difference(a, b, unit=unit if shared else None, n_resamples=n_resamples)
    d_units = intervals.per_unit(b - a, unit) if len(p) else np.zeros(0)
    test = stats.wilcoxon_p(np.zeros_like(d_units), d_units)
    if shared:
        test = stats.TestResult(test.p, test.test, test.note.replace("paired seed(s)", "timing measurement(s)"))
    notes = [SHARED_TIMING_NOTE] if shared else []
    if contended.any():
        notes.append(f"{int(contended.sum())} pair(s) excluded: {CONTENDED_NOTE}")
    effect = stats.p_improve(np.zeros_like(d_units), d_units, higher=False)
    row = _row("epoch_s", int(d_units.size), diff, test, effect, p_note="; ".join(notes))
    return row


def divergence_row(pairs: pd.DataFrame) -> dict[str, object]:
    """Divergence as a paired binary outcome (exact McNemar on seed pairs)."""
    div_a = (pairs["status_a"] == "diverged").to_numpy()
    div_b = (pairs["status_b"] == "diverged").to_numpy()
    n = len(pairs)
    share = Interval((div_b.sum() - div_a.sum()) / n if n else math.nan, n=n)
    note = f"diverged: {int(div_b.sum())}/{n} vs {int(div_a.sum())}/{n} of the reference"
    return _row("diverged", n, share, stats.mcnemar_exact(div_a, div_b), diff_note=note)


COLUMNS = ["cell", "placement", "reference", "metric", "label", "unit", "family", "n_pairs",
           "diff", "diff_low", "diff_high", "diff_note", "p_improve", "p_improve_low", "p_improve_high",
           "p", "test", "p_note"]


def comparison_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """Every non-reference placement against the reference, per cell and metric (one table)."""
    ref = data.reference
    runs = data.runs[data.runs["analysed"]].copy()
    runs["program"] = program_key(runs) if len(runs) else pd.Series(dtype=str)
    rows = []
    for cell, cr in runs.groupby("cell", sort=False):
        for other in data.placements:
            if other == ref or not (cr["placement"] == other).any() or not (cr["placement"] == ref).any():
                continue
            pairs = paired_runs(cr, ref, other)
            found = [*accuracy_rows(pairs, n_resamples), test_accuracy_row(pairs, n_resamples),
                     epochs_row(pairs, n_resamples), timing_row(pairs, n_resamples)]
            if ((pairs["status_a"] == "diverged") | (pairs["status_b"] == "diverged")).any():
                found.append(divergence_row(pairs))
            rows += [{"cell": cell, "placement": other, "reference": ref, **r} for r in found if r]
    return pd.DataFrame(rows, columns=COLUMNS)


def adjust(comparisons: pd.DataFrame) -> None:
    """Holm within each family (one per question); rows of no family get no adjusted p."""
    comparisons["p_holm"] = np.nan
    for family, g in comparisons.groupby("family", sort=False):
        if family:
            comparisons.loc[g.index, "p_holm"] = stats.holm(g["p"].to_numpy(float))


def build_tables(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> Tables:
    summary = summary_table(data, n_resamples)
    comparisons = comparison_table(data, n_resamples)
    adjust(comparisons)
    return Tables(summary, comparisons, n_resamples)


def failures(data: StoreData) -> pd.DataFrame:
    """Failed and diverged runs with their error text, for the report's own section."""
    cols = ["run_id", "cell", "placement", "seed", "status", "epochs_run", "attempts", "error"]
    bad = data.runs[data.runs["status"] != "ok"]
    return bad[[c for c in cols if c in bad]].reset_index(drop=True)


def raw_runs(data: StoreData) -> pd.DataFrame:
    """The per-run table at the end of the report."""
    cols = ["run_id", "cell", "placement", "seed", "status", "epochs_run", "epochs_to_target",
            "final_val_acc", "best_val_acc", "best_val_epoch", "test_acc_at_best", "test_acc", "epoch_s_median", "time_to_target_s", "compile_s",
            "total_s", "concurrent_workers", "seeds_in_program", "threads"]
    return data.runs[[c for c in cols if c in data.runs]].reset_index(drop=True)
