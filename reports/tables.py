"""The report's tables: per cell x arm summaries and seed-paired comparisons.

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

    The seeds of one stacked program are one cell and arm started at the same moment.
    """
    shared = runs["seeds_in_program"] > 1
    program = runs["cell"].astype(str) + "|" + runs["arm"].astype(str) + "|" + runs["started_at"].astype(str)
    return program.where(shared, runs["run_id"].astype(str))


def timed(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose timings support inference: trained without other workers on the machine."""
    return runs[runs["concurrent_workers"] <= 1]


class Columns:
    """Some rows of a frame as numpy columns: slicing a group costs microseconds, not a
    DataFrame construction (the report of a 10,000-run store slices thousands of groups)."""

    def __init__(self, cols: dict[str, np.ndarray], n: int) -> None:
        self.cols, self.n = cols, n

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Columns:
        return cls({c: frame[c].to_numpy() for c in frame.columns}, len(frame))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.cols[key]

    def __contains__(self, key: str) -> bool:
        return key in self.cols

    def __len__(self) -> int:
        return self.n

    def take(self, rows: np.ndarray) -> Columns:
        """The rows at these positions (or where this boolean mask is true)."""
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        return Columns({k: v[rows] for k, v in self.cols.items()}, len(rows))


def groups(frame: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, np.ndarray]]:
    """(key, row positions) of each group of ``frame`` by ``keys``, in order of first appearance."""
    if not len(frame):
        return []
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    parts = np.split(order, bounds)
    values = [frame[k].to_numpy() for k in keys]
    return [(tuple(v[rows[0]] for v in values), rows) for rows in parts]


def summarize_group(g: Columns, n_resamples: int, km: Interval | None = None) -> dict[str, object]:
    """One row of the summary table for the runs of one cell and arm.

    ``km``: the group's KM median interval when already computed (``summary_table`` batches
    them over all groups); computed here otherwise.
    """
    status = g["status"]
    a = g.take(g["analysed"].astype(bool))
    n = len(a)
    reached = a["reached"].astype(bool)
    row: dict[str, object] = {
        "n_seeds": len(set(g["seed"][pd.notna(g["seed"])].tolist())),
        "n_ok": int(np.sum(status == "ok")),
        "n_diverged": int(np.sum(status == "diverged")),
        "n_failed": int(np.sum(status == "failed")),
        "n_reached": int(reached.sum()),
        "success_rate": reached.mean() if n else math.nan,
        "budget": int(np.nanmax(g["epochs_budget"].astype(float))),
    }
    if km is None:
        km = stats.km_median_ci(a["ett_duration"].astype(float), reached, n_resamples=n_resamples)
    row.update(_ci_cols("km_median", km))
    row["mean_ett_reached"] = float(np.mean(a["epochs_to_target"][reached].astype(float))) if reached.any() else math.nan
    for key, col in (("final_val_acc", "final_val_acc"), ("best_val_acc", "best_val_acc"),
                     ("test_acc_at_best", "test_acc_at_best")):
        row.update(_ci_cols(key, stats.bootstrap_ci(a[col].astype(float), n_resamples=n_resamples)))
    t = a.take(a["concurrent_workers"] <= 1)  # see ``timed``
    for key, col in (("epoch_s", "epoch_s_median"), ("time_to_target_s", "time_to_target_s")):
        est = stats.bootstrap_ci(t[col].astype(float), unit=t["program"], n_resamples=n_resamples)
        row.update(_ci_cols(key, est))
    compile_s = a["compile_s"].astype(float)
    timed = np.sort(compile_s[~np.isnan(compile_s)])
    row["compile_s"] = intervals.sorted_median(timed) if timed.size else math.nan  # = np.nanmedian
    notes = ["no statistics possible with 1 seed" if n == 1 else ("no analysable runs" if n == 0 else "")]
    if len(t) < n:
        notes.append(f"timings of {n - len(t)} run(s) trained beside other workers excluded")
    row["note"] = "; ".join(x for x in notes if x)
    return row


SUMMARY_COLUMNS = ["cell", "arm", "status", "seed", "analysed", "reached", "epochs_budget",
                   "ett_duration", "epochs_to_target", "final_val_acc", "best_val_acc",
                   "test_acc_at_best", "concurrent_workers", "epoch_s_median", "time_to_target_s",
                   "compile_s", "program"]


def summary_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    runs = data.runs.copy()
    runs["program"] = program_key(runs) if len(runs) else pd.Series(dtype=str)
    cols = Columns.of(runs[SUMMARY_COLUMNS])
    found = groups(runs, ["cell", "arm"])
    parts = [cols.take(rows) for _, rows in found]
    analysed = [g.take(g["analysed"].astype(bool)) for g in parts]
    kms = stats.km_median_cis([(a["ett_duration"].astype(float), a["reached"].astype(bool)) for a in analysed],
                              n_resamples=n_resamples)
    rows = [{"cell": key[0], "arm": key[1], **summarize_group(g, n_resamples, km)}
            for (key, _), g, km in zip(found, parts, kms)]
    return pd.DataFrame(rows)


def paired_runs(runs: pd.DataFrame, ref: str, other: str) -> pd.DataFrame:
    """Analysed runs of two arms joined one to one on cell and seed (suffixes _a, _b;
    ``bench.cells.pair`` refuses a seed that holds two runs of one arm). Pairs keep
    the order of the reference's runs, so each cell's pairs are contiguous."""
    cols = [c for c in PAIR_COLUMNS if c in runs]
    return pair(runs, ref, other, cols, factor="arm", on=("cell", "seed"))


#: The columns of a run that the comparison rows read (each gets suffixes _a and _b).
PAIR_COLUMNS = ["status", "validation_size", "final_val_acc", "test_size", "test_acc_at_best",
                "ett_duration", "reached", "epochs_budget", "concurrent_workers", "epoch_s_median",
                "seeds_in_program", "program"]


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


def accuracy_rows(pairs: Columns, n_resamples: int) -> list[dict[str, object]]:
    """Final accuracy as counts of correct validation examples (ties exact), diverged runs at
    chance; a sensitivity row with the diverged pairs dropped when any pair has one."""
    n_val = pairs["validation_size_a"].astype(float)
    div_a = pairs["status_a"] == "diverged"
    div_b = pairs["status_b"] == "diverged"
    acc_a = np.where(div_a, CHANCE_ACCURACY, pairs["final_val_acc_a"].astype(float))
    acc_b = np.where(div_b, CHANCE_ACCURACY, pairs["final_val_acc_b"].astype(float))
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


def test_accuracy_row(pairs: Columns, n_resamples: int) -> dict[str, object] | None:
    """Test accuracy at each seed's best-validation epoch, as counts of the test split: the
    unbiased accuracy comparison (validation picked the epoch; the test split reports it)."""
    if not len(pairs):
        return None
    n_test = pairs["test_size_a"].astype(float)
    ca = as_counts(pairs["test_acc_at_best_a"].astype(float), n_test)
    cb = as_counts(pairs["test_acc_at_best_b"].astype(float), n_test)
    k = np.isfinite(ca) & np.isfinite(cb)
    if not k.any():
        return _row("test_acc", 0, Interval(math.nan), stats.TestResult(math.nan, "", TEST_UNKNOWN_NOTE))
    diff = stats.paired_difference(ca[k] / n_test[k], cb[k] / n_test[k], n_resamples=n_resamples)
    return _row("test_acc", int(k.sum()), diff, stats.wilcoxon_p(ca[k], cb[k]), stats.p_improve(ca[k], cb[k]))


def epochs_row(pairs: Columns, n_resamples: int, diff: Interval | None = None,
               medians: tuple[float, float] | None = None) -> dict[str, object]:
    """KM median epochs to target, seed-paired and censoring-aware; paired log-rank test.

    ``diff`` and ``medians`` (the two arms' KM medians): when already computed
    (``comparison_table`` batches them over all cells); computed here otherwise.
    """
    ta, ea = pairs["ett_duration_a"].astype(float), pairs["reached_a"].astype(bool)
    tb, eb = pairs["ett_duration_b"].astype(float), pairs["reached_b"].astype(bool)
    budget = _budget(pairs)
    if diff is None:
        diff = stats.km_median_difference(ta, ea, tb, eb, budget=budget, n_resamples=n_resamples)
    note = ""
    if len(pairs):
        ma, mb = medians or (stats.km_medians(ta, ea), stats.km_medians(tb, eb))
        if math.isinf(ma) and math.isinf(mb):
            note = f"neither KM median reached within {budget} epochs"
        elif math.isinf(ma):
            note = f"at least {-diff.point:g} fewer (reference median not reached within {budget} epochs)"
        elif math.isinf(mb):
            note = f"at least {diff.point:g} more (median not reached within {budget} epochs)"
    test = stats.paired_logrank(ta, ea, tb, eb)
    effect = stats.p_improve(ta, tb, higher=False)
    return _row("epochs_to_target", len(pairs), diff, test, effect, diff_note=note)


def _budget(pairs: Columns) -> int:
    """The larger epoch budget of a cell's two arms (0 without pairs)."""
    if not len(pairs):
        return 0
    return int(max(np.nanmax(pairs["epochs_budget_a"].astype(float)),
                   np.nanmax(pairs["epochs_budget_b"].astype(float))))


def timing_row(pairs: Columns, n_resamples: int) -> dict[str, object] | None:
    """Time per epoch over independent measurements only: the unit is the pair of programs."""
    if not len(pairs):
        return None
    contended = (pairs["concurrent_workers_a"] > 1) | (pairs["concurrent_workers_b"] > 1)
    p = pairs.take(~contended)
    a, b = p["epoch_s_median_a"].astype(float), p["epoch_s_median_b"].astype(float)
    keep = np.isfinite(a) & np.isfinite(b)
    p, a, b = p.take(keep), a[keep], b[keep]
    unit = p["unit"]
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


def divergence_row(pairs: Columns) -> dict[str, object]:
    """Divergence as a paired binary outcome (exact McNemar on seed pairs)."""
    div_a = pairs["status_a"] == "diverged"
    div_b = pairs["status_b"] == "diverged"
    n = len(pairs)
    share = Interval((div_b.sum() - div_a.sum()) / n if n else math.nan, n=n)
    note = f"diverged: {int(div_b.sum())}/{n} vs {int(div_a.sum())}/{n} of the reference"
    return _row("diverged", n, share, stats.mcnemar_exact(div_a, div_b), diff_note=note)


COLUMNS = ["cell", "arm", "reference", "metric", "label", "unit", "family", "n_pairs",
           "diff", "diff_low", "diff_high", "diff_note", "p_improve", "p_improve_low", "p_improve_high",
           "p", "test", "p_note"]


def comparison_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """Every non-reference arm against the reference, per cell and metric (one table).

    Each arm is paired with the reference in one merge over all cells; the KM median
    bootstraps of all cells run batched (``stats.km_median_differences``).
    """
    ref = data.reference
    runs = data.runs[data.runs["analysed"]].copy()
    runs["program"] = program_key(runs) if len(runs) else pd.Series(dtype=str)
    present = runs.groupby("cell", sort=False)["arm"].unique() if len(runs) else pd.Series(dtype=object)
    pairs_of: dict[str, tuple[Columns, dict[str, np.ndarray]]] = {}
    for other in data.arms:
        if other == ref:
            continue
        frame = paired_runs(runs, ref, other)
        frame["unit"] = frame["program_a"] + "||" + frame["program_b"]
        pairs_of[other] = (Columns.of(frame), {k[0]: rows for k, rows in groups(frame, ["cell"])})
    todo = [(cell, other, all_pairs.take(rows.get(cell, np.zeros(0, int))))
            for cell, levels in present.items()
            for other, (all_pairs, rows) in pairs_of.items() if ref in levels and other in levels]
    diffs = stats.km_median_differences(
        [(p["ett_duration_a"].astype(float), p["reached_a"].astype(bool),
          p["ett_duration_b"].astype(float), p["reached_b"].astype(bool)) for _, _, p in todo],
        [_budget(p) for _, _, p in todo], n_resamples=n_resamples)
    medians = zip(stats.km_medians_many([(p["ett_duration_a"], p["reached_a"]) for _, _, p in todo]),
                  stats.km_medians_many([(p["ett_duration_b"], p["reached_b"]) for _, _, p in todo]))
    rows = []
    for (cell, other, pairs), diff, m in zip(todo, diffs, medians):
        found = [*accuracy_rows(pairs, n_resamples), test_accuracy_row(pairs, n_resamples),
                 epochs_row(pairs, n_resamples, diff, m), timing_row(pairs, n_resamples)]
        if ((pairs["status_a"] == "diverged") | (pairs["status_b"] == "diverged")).any():
            found.append(divergence_row(pairs))
        rows += [{"cell": cell, "arm": other, "reference": ref, **r} for r in found if r]
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
    cols = ["run_id", "cell", "arm", "seed", "status", "epochs_run", "attempts", "error"]
    bad = data.runs[data.runs["status"] != "ok"]
    return bad[[c for c in cols if c in bad]].reset_index(drop=True).rename(columns={"arm": data.arm_word})


def raw_runs(data: StoreData) -> pd.DataFrame:
    """The per-run table at the end of the report."""
    cols = ["run_id", "cell", "arm", "seed", "status", "epochs_run", "epochs_to_target",
            "final_val_acc", "best_val_acc", "best_val_epoch", "test_acc_at_best", "test_acc", "epoch_s_median", "time_to_target_s", "compile_s",
            "total_s", "concurrent_workers", "seeds_in_program", "threads"]
    out = data.runs[[c for c in cols if c in data.runs]].reset_index(drop=True)
    return out.rename(columns={"arm": data.arm_word})
