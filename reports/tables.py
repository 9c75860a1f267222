"""The report's tables: per cell x placement summaries and seed-paired comparisons.

Statistics use the runs whose outcome is known (``ok`` and ``diverged``); ``failed`` runs
are counted here and listed in full by the report, never silently dropped. A diverged run
that never reached the target is censored at the budget like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.cells import pair
from reports import stats
from reports.load import StoreData

#: metric key -> (runs column, label, unit, how censored runs enter)
METRICS = {
    "final_val_acc": ("final_val_acc", "final validation accuracy", "pp", ""),
    "epochs_to_target": (
        "ett_rank", "epochs to target", "epochs",
        "censored runs counted as budget + 1 (rank test; see the Kaplan–Meier section)",
    ),
    "epoch_s": ("epoch_s_median", "time per epoch", "s", ""),
    # The unbiased accuracy comparison: validation picked the epoch, the test split reports it.
    "test_acc": ("test_acc_at_best", "test accuracy at the best-validation epoch", "pp", ""),
}
#: Accuracy metrics (shown in percentage points).
ACCURACY_METRICS = ("final_val_acc", "test_acc")
#: Why a test-accuracy comparison has no pairs: the runs predate the test split.
TEST_UNKNOWN_NOTE = "test accuracy unknown (runs stored before bnbench evaluated the test split)"


#: Why a timing comparison gets no p-value when seeds were trained in one program.
SHARED_TIMING_NOTE = (
    "not tested: seeds trained in one program (stacked engine) share one timing measurement, "
    "so they are not independent replicates"
)


@dataclass
class Tables:
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    logrank: pd.DataFrame
    n_resamples: int


def _ci_cols(prefix: str, est: stats.Estimate) -> dict[str, float]:
    return {prefix: est.value, f"{prefix}_low": est.low, f"{prefix}_high": est.high}


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
    for key, col in (
        ("final_val_acc", "final_val_acc"), ("best_val_acc", "best_val_acc"),
        ("test_acc_at_best", "test_acc_at_best"),
        ("epoch_s", "epoch_s_median"), ("time_to_target_s", "time_to_target_s"),
    ):
        row.update(_ci_cols(key, stats.bootstrap_ci(a[col].to_numpy(dtype=float), n_resamples=n_resamples)))
    row["compile_s"] = float(np.nanmedian(a["compile_s"].to_numpy(dtype=float))) if n and a["compile_s"].notna().any() else math.nan
    row["note"] = "no statistics possible with 1 seed" if n == 1 else ("no analysable runs" if n == 0 else "")
    return row


def summary_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    rows = []
    for (cell, placement), g in data.runs.groupby(["cell", "placement"], sort=False):
        rows.append({"cell": cell, "placement": placement, **summarize_group(g, n_resamples)})
    return pd.DataFrame(rows)


def _paired(runs: pd.DataFrame, ref: str, other: str) -> pd.DataFrame:
    """Analysed runs of two placements of one cell joined on seed (suffixes _a, _b)."""
    cols = ["final_val_acc", "ett_rank", "epoch_s_median", "test_acc_at_best"]
    return pair(runs, ref, other, cols, on=("seed",))


def compare(a: np.ndarray, b: np.ndarray, n_resamples: int) -> dict[str, object]:
    """Paired comparison of b against a: median difference, Cliff's delta, Wilcoxon p."""
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    diff = stats.paired_difference(a, b, n_resamples=n_resamples)
    delta = stats.cliffs_delta_paired_ci(a, b, n_resamples=n_resamples)
    test = stats.wilcoxon_p(a, b)
    return {
        "n_pairs": int(a.size),
        **_ci_cols("diff", diff),
        **_ci_cols("cliff", delta),
        "p": test.p,
        "test": test.test,
        "p_note": test.note,
    }


def comparison_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """Every non-reference placement against the reference, per cell and metric."""
    ref = data.reference
    runs = data.runs[data.runs["analysed"]].copy()
    runs["ett_rank"] = runs["epochs_to_target"].astype(float).fillna(runs["epochs_budget"] + 1.0)
    rows = []
    for cell, cr in runs.groupby("cell", sort=False):
        for other in data.placements:
            if other == ref or not (cr["placement"] == other).any() or not (cr["placement"] == ref).any():
                continue
            pairs = _paired(cr, ref, other)
            shared_timing = bool((cr["seeds_in_program"] > 1).any())
            for metric, (col, label, unit, censor_note) in METRICS.items():
                res = compare(pairs[f"{col}_a"].to_numpy(float), pairs[f"{col}_b"].to_numpy(float), n_resamples)
                if metric == "epoch_s" and shared_timing:
                    res.update(p=float("nan"), p_note=SHARED_TIMING_NOTE)
                if metric == "test_acc" and res["n_pairs"] == 0:
                    res.update(p_note=TEST_UNKNOWN_NOTE)
                rows.append({
                    "cell": cell, "placement": other, "reference": ref, "metric": metric,
                    "label": label, "unit": unit, "censoring": censor_note, **res,
                })
    cols = ["cell", "placement", "reference", "metric", "label", "unit", "censoring", "n_pairs",
            "diff", "diff_low", "diff_high", "cliff", "cliff_low", "cliff_high", "p", "test", "p_note"]
    return pd.DataFrame(rows, columns=cols)


def logrank_table(data: StoreData) -> pd.DataFrame:
    """Per cell, a log-rank test that all placements' KM curves of epochs-to-target agree."""
    runs = data.runs[data.runs["analysed"]]
    rows = []
    for cell, cr in runs.groupby("cell", sort=False):
        if cr["placement"].nunique() < 2:
            continue
        res = stats.logrank(cr["ett_duration"], cr["reached"], cr["placement"])
        rows.append({"cell": cell, "placements": ", ".join(p for p in data.placements if p in set(cr["placement"])),
                     "n_runs": len(cr), "p": res.p, "test": res.test, "p_note": res.note})
    return pd.DataFrame(rows, columns=["cell", "placements", "n_runs", "p", "test", "p_note"])


def adjust(comparisons: pd.DataFrame, logrank: pd.DataFrame) -> None:
    """Holm across every p-value in the report (comparisons and log-rank tests together).

    The test-accuracy comparisons (the unbiased, confirmatory accuracy result) are a Holm
    family of their own, so adding them leaves the other p-values as they were.
    """
    test = (comparisons["metric"] == "test_acc").to_numpy()
    rest = comparisons[~test]
    p = np.concatenate([rest["p"].to_numpy(float), logrank["p"].to_numpy(float)])
    adj = stats.holm(p)
    comparisons["p_holm"] = np.nan
    comparisons.loc[~test, "p_holm"] = adj[: len(rest)]
    comparisons.loc[test, "p_holm"] = stats.holm(comparisons.loc[test, "p"].to_numpy(float))
    logrank["p_holm"] = adj[len(rest):]


def build_tables(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> Tables:
    summary = summary_table(data, n_resamples)
    comparisons = comparison_table(data, n_resamples)
    logrank = logrank_table(data)
    adjust(comparisons, logrank)
    return Tables(summary, comparisons, logrank, n_resamples)


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
