"""The report's tables: per cell x arm summaries and seed-paired comparisons.

Statistics use the runs whose outcome is known (``ok`` and ``diverged``); ``failed`` runs
are counted here and listed in full by the report, never silently dropped. A diverged run
is scored at chance accuracy (with a sensitivity row that drops it), counts as a
divergence in its own paired outcome, and is censored at the budget for epochs to target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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


def _group_of(sizes: np.ndarray) -> np.ndarray:
    """Group 0..len(sizes)-1 of each row of groups stored one after another with these sizes."""
    return np.repeat(np.arange(len(sizes)), sizes)


def _per_group(rows: Columns, group: np.ndarray, n_groups: int, col: str) -> list[np.ndarray]:
    """Column ``col`` of each group (rows stored group after group)."""
    return np.split(rows[col], np.cumsum(np.bincount(group, minlength=n_groups))[:-1])


def _count(group: np.ndarray, mask: np.ndarray, n_groups: int) -> np.ndarray:
    """How many rows of each group ``mask`` holds."""
    return np.bincount(group, weights=mask, minlength=n_groups).astype(int)


def _max(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """``np.nanmax`` of each group's values (-inf for a group without any)."""
    out = np.full(n_groups, -np.inf)
    np.fmax.at(out, group, values)
    return out


def summary_columns(g: Columns, group: np.ndarray, n_groups: int, n_resamples: int,
                    km: list[Interval] | None = None) -> dict[str, object]:
    """The summary table's columns for the runs of ``n_groups`` groups (a cell and arm each),
    stored group after group (``group``: 0..n_groups-1 of each run).

    ``km``: the groups' KM median intervals when already computed (``summary_table`` batches
    them over all groups); computed here otherwise.
    """
    status = g["status"]
    analysed = g["analysed"].astype(bool)
    a, ga = g.take(analysed), group[analysed]
    n = np.bincount(ga, minlength=n_groups)
    reached = a["reached"].astype(bool)
    seeded = pd.notna(g["seed"])
    seeds = pd.Series(g["seed"][seeded]).groupby(group[seeded]).nunique()
    n_reached = _count(ga, reached, n_groups)
    cols: dict[str, object] = {
        "n_seeds": seeds.reindex(range(n_groups), fill_value=0).to_numpy(int),
        "n_ok": _count(group, status == "ok", n_groups),
        "n_diverged": _count(group, status == "diverged", n_groups),
        "n_failed": _count(group, status == "failed", n_groups),
        "n_reached": n_reached,
        "success_rate": np.where(n > 0, n_reached / np.maximum(n, 1), math.nan),  # = reached.mean()
        "budget": _as_budgets(_max(g["epochs_budget"].astype(float), group, n_groups)),
    }
    if km is None:
        km = stats.km_median_cis(list(zip(
            [t.astype(float) for t in _per_group(a, ga, n_groups, "ett_duration")],
            [e.astype(bool) for e in _per_group(a, ga, n_groups, "reached")])), n_resamples=n_resamples)
    cols.update(_ci_columns("km_median", km))
    mean = np.full(n_groups, math.nan)
    ett = a["epochs_to_target"][reached].astype(float)
    for size, where, rows in intervals.sorted_groups(ett, ga[reached], n_groups, sort=False):
        if size:
            mean[where] = np.mean(rows, axis=1)  # each row's np.mean, as alone (test_vectorized.py)
    cols["mean_ett_reached"] = mean
    for key in ("final_val_acc", "best_val_acc", "test_acc_at_best"):
        cols.update(_ci_columns(key, intervals.median_intervals(a[key].astype(float), ga, n_groups)))
    timed = a["concurrent_workers"] <= 1  # see ``timed``
    t, gt = a.take(timed), ga[timed]
    for key, col in (("epoch_s", "epoch_s_median"), ("time_to_target_s", "time_to_target_s")):
        est = intervals.median_intervals(t[col].astype(float), gt, n_groups, unit=t["program"])
        cols.update(_ci_columns(key, est))
    compile_s = a["compile_s"].astype(float)
    known = ~np.isnan(compile_s)
    median = np.full(n_groups, math.nan)  # = np.nanmedian
    for size, where, rows in intervals.sorted_groups(compile_s[known], ga[known], n_groups):
        if size:
            median[where] = intervals.sorted_medians(rows)
    cols["compile_s"] = median
    n_timed = np.bincount(gt, minlength=n_groups)
    notes = []
    for ni, nt in zip(n.tolist(), n_timed.tolist()):
        parts = ["no statistics possible with 1 seed" if ni == 1 else ("no analysable runs" if ni == 0 else "")]
        if nt < ni:
            parts.append(f"timings of {ni - nt} run(s) trained beside other workers excluded")
        notes.append("; ".join(x for x in parts if x))
    cols["note"] = notes
    return cols


def _ci_columns(prefix: str, est: intervals.Intervals | list[Interval]) -> dict[str, np.ndarray]:
    """``_ci_cols`` of many groups."""
    if isinstance(est, list):
        point, low, high = (np.array([getattr(e, k) for e in est], dtype=float) for k in ("point", "low", "high"))
    else:
        point, low, high = est.point, est.low, est.high
    return {prefix: point, f"{prefix}_low": low, f"{prefix}_high": high}


SUMMARY_COLUMNS = ["cell", "arm", "status", "seed", "analysed", "reached", "epochs_budget",
                   "ett_duration", "epochs_to_target", "final_val_acc", "best_val_acc",
                   "test_acc_at_best", "concurrent_workers", "epoch_s_median", "time_to_target_s",
                   "compile_s", "program"]


def summary_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    runs = data.runs.copy()
    runs["program"] = program_key(runs) if len(runs) else pd.Series(dtype=str)
    found = groups(runs, ["cell", "arm"])
    if not found:
        return pd.DataFrame()
    order = np.concatenate([rows for _, rows in found])
    group = _group_of(np.array([len(rows) for _, rows in found]))
    g = Columns.of(runs[SUMMARY_COLUMNS]).take(order)
    cols = summary_columns(g, group, len(found), n_resamples)
    return pd.DataFrame({"cell": [key[0] for key, _ in found], "arm": [key[1] for key, _ in found], **cols})


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


Block = dict[str, object]
"""Rows of one metric for some groups, column-wise: "group" (each row's group) and ``COLUMNS``'
metric columns (``_block``)."""


def _block(metric: str, where: np.ndarray, n: np.ndarray, diff: intervals.Intervals | list[Interval],
           tests: list[stats.TestResult], effect: intervals.Intervals | None = None,
           diff_note: list[str] | None = None, p_note: list[str] | None = None) -> Block:
    """The rows of ``metric`` for the groups ``where``; the other arguments hold one entry per
    group (``diff_note``: replaces the interval's own note where not empty)."""
    label, unit, family = METRICS[metric]
    rows = where.tolist()
    diff_cols = _ci_columns("diff", diff)
    own = [i.note for i in diff] if isinstance(diff, list) else diff.note
    nan = np.full(len(n), math.nan)
    effect_cols = _ci_columns("p_improve", effect) if effect is not None else \
        {"p_improve": nan, "p_improve_low": nan, "p_improve_high": nan}
    return {
        "group": where, "metric": [metric] * len(rows), "label": [label] * len(rows), "unit": [unit] * len(rows),
        "family": [family] * len(rows), "n_pairs": np.asarray(n, dtype=int)[where],
        **{k: v[where] for k, v in diff_cols.items()},
        "diff_note": [(diff_note[i] if diff_note else "") or own[i] for i in rows],
        **{k: v[where] for k, v in effect_cols.items()},
        "p": np.array([tests[i].p for i in rows], dtype=float), "test": [tests[i].test for i in rows],
        "p_note": ["; ".join(x for x in (tests[i].note, p_note[i] if p_note else "") if x) for i in rows],
    }


def _one_group(pairs: Columns | pd.DataFrame) -> tuple[Columns, np.ndarray, int]:
    """The pairs of one cell as a batch of one group."""
    pairs = pairs if isinstance(pairs, Columns) else Columns.of(pairs)
    return pairs, np.zeros(len(pairs), np.intp), 1


def _records(blocks: list[Block]) -> list[dict[str, object]]:
    """The rows of blocks as dicts, block after block (the row functions' form)."""
    out = []
    for b in blocks:
        keys = [k for k in b if k != "group"]
        for j in range(len(b["group"])):
            out.append({k: (b[k][j].item() if isinstance(b[k], np.ndarray) else b[k][j]) for k in keys})
    return out


def accuracy_blocks(pairs: Columns, group: np.ndarray, n_groups: int) -> list[Block]:
    """Final accuracy as counts of correct validation examples (ties exact), diverged runs at
    chance; a sensitivity row with the diverged pairs dropped in groups where a pair has one."""
    n_val = pairs["validation_size_a"].astype(float)
    div_a = pairs["status_a"] == "diverged"
    div_b = pairs["status_b"] == "diverged"
    acc_a = np.where(div_a, CHANCE_ACCURACY, pairs["final_val_acc_a"].astype(float))
    acc_b = np.where(div_b, CHANCE_ACCURACY, pairs["final_val_acc_b"].astype(float))
    ca, cb = as_counts(acc_a, n_val), as_counts(acc_b, n_val)
    diverged = _count(group, div_a | div_b, n_groups) > 0
    blocks = []
    for metric, keep, where in (("final_val_acc", np.ones(len(pairs), bool), np.arange(n_groups)),
                                ("final_val_acc_no_diverged", ~(div_a | div_b), np.flatnonzero(diverged))):
        k = keep & np.isfinite(ca) & np.isfinite(cb)
        scale, g = n_val[k], group[k]
        diff = stats.paired_differences(cb[k] / scale - ca[k] / scale, g, n_groups)
        primary = metric == "final_val_acc"
        tests = stats.wilcoxon_ps(cb[k] - ca[k], g, n_groups) if primary else [stats.TestResult(
            math.nan, "", "sensitivity analysis: not tested (same hypothesis as the row above)")] * n_groups
        note = f"diverged runs scored at chance ({CHANCE_ACCURACY:g})"
        notes = [note if primary and d else "" for d in diverged.tolist()]
        blocks.append(_block(metric, where, np.bincount(g, minlength=n_groups), diff, tests,
                             stats.p_improves(cb[k] - ca[k], g, n_groups), diff_note=notes))
    return blocks


def accuracy_rows(pairs: Columns | pd.DataFrame) -> list[dict[str, object]]:
    """``accuracy_blocks`` of one cell's pairs."""
    return _records(accuracy_blocks(*_one_group(pairs)))


def test_accuracy_block(pairs: Columns, group: np.ndarray, n_groups: int) -> Block:
    """Test accuracy at each seed's best-validation epoch, as counts of the test split: the
    unbiased accuracy comparison (validation picked the epoch; the test split reports it).
    Groups without pairs get no row; groups without test accuracies a row that says so."""
    n_test = pairs["test_size_a"].astype(float)
    ca = as_counts(pairs["test_acc_at_best_a"].astype(float), n_test)
    cb = as_counts(pairs["test_acc_at_best_b"].astype(float), n_test)
    k = np.isfinite(ca) & np.isfinite(cb)
    g = group[k]
    n = np.bincount(g, minlength=n_groups)
    diff = stats.paired_differences(cb[k] / n_test[k] - ca[k] / n_test[k], g, n_groups)
    unknown = (n == 0).tolist()  # NaN throughout; the test's note says why
    diff = replace(diff, note=["" if u else x for u, x in zip(unknown, diff.note)])
    tests = [stats.TestResult(math.nan, "", TEST_UNKNOWN_NOTE) if u else t
             for u, t in zip(unknown, stats.wilcoxon_ps(cb[k] - ca[k], g, n_groups))]
    where = np.flatnonzero(np.bincount(group, minlength=n_groups) > 0)
    return _block("test_acc", where, n, diff, tests, stats.p_improves(cb[k] - ca[k], g, n_groups))


def test_accuracy_row(pairs: Columns | pd.DataFrame) -> dict[str, object] | None:
    """``test_accuracy_block`` of one cell's pairs; None without pairs."""
    return next(iter(_records([test_accuracy_block(*_one_group(pairs))])), None)


def epochs_block(pairs: Columns, group: np.ndarray, n_groups: int, diffs: list[Interval],
                 medians: list[tuple[float, float]]) -> Block:
    """KM median epochs to target, seed-paired and censoring-aware; paired log-rank test.

    ``diffs``, ``medians``: each group's ``stats.km_median_difference`` and the two arms' KM
    medians (``comparison_table`` computes them batched).
    """
    ta, ea = pairs["ett_duration_a"].astype(float), pairs["reached_a"].astype(bool)
    tb, eb = pairs["ett_duration_b"].astype(float), pairs["reached_b"].astype(bool)
    budget = _budgets(pairs, group, n_groups)
    n = np.bincount(group, minlength=n_groups)
    notes = []
    for ni, diff, (ma, mb), b in zip(n.tolist(), diffs, medians, budget.tolist()):
        note = ""
        if ni:
            if math.isinf(ma) and math.isinf(mb):
                note = f"neither KM median reached within {b} epochs"
            elif math.isinf(ma):
                note = f"at least {-diff.point:g} fewer (reference median not reached within {b} epochs)"
            elif math.isinf(mb):
                note = f"at least {diff.point:g} more (median not reached within {b} epochs)"
        notes.append(note)
    tests = stats.paired_logranks(ta, ea, tb, eb, group, n_groups)
    effect = stats.p_improves(tb - ta, group, n_groups, higher=False)
    return _block("epochs_to_target", np.arange(n_groups), n, diffs, tests, effect, diff_note=notes)


def epochs_row(pairs: Columns | pd.DataFrame, n_resamples: int, diff: Interval | None = None,
               medians: tuple[float, float] | None = None) -> dict[str, object]:
    """``epochs_block`` of one cell's pairs; ``diff`` and ``medians`` computed here when not given."""
    pairs, group, _ = _one_group(pairs)
    ta, ea = pairs["ett_duration_a"].astype(float), pairs["reached_a"].astype(bool)
    tb, eb = pairs["ett_duration_b"].astype(float), pairs["reached_b"].astype(bool)
    if diff is None:
        diff = stats.km_median_difference(ta, ea, tb, eb, budget=_budget(pairs), n_resamples=n_resamples)
    if medians is None:
        medians = (stats.km_medians_many([(ta, ea)])[0], stats.km_medians_many([(tb, eb)])[0])
    return _records([epochs_block(pairs, group, 1, [diff], [medians])])[0]


def _budgets(pairs: Columns, group: np.ndarray, n_groups: int) -> np.ndarray:
    """The larger epoch budget of each group's two arms (0 without pairs)."""
    both = np.fmax(_max(pairs["epochs_budget_a"].astype(float), group, n_groups),
                   _max(pairs["epochs_budget_b"].astype(float), group, n_groups))
    return _as_budgets(np.where(np.bincount(group, minlength=n_groups) > 0, both, 0))


def _as_budgets(values: np.ndarray) -> np.ndarray:
    """Epoch budgets as integers; a group without any (-inf from ``_max``) is refused rather
    than printed as -9223372036854775808 (the store's column is NOT NULL)."""
    if not np.isfinite(values).all():
        raise ValueError("runs without an epochs_budget cannot be summarized")
    return values.astype(int)


def _budget(pairs: Columns) -> int:
    """The larger epoch budget of a cell's two arms (0 without pairs)."""
    return int(_budgets(*_one_group(pairs))[0])


def timing_block(pairs: Columns, group: np.ndarray, n_groups: int) -> Block:
    """Time per epoch over independent measurements only: the unit is the pair of programs.
    Groups without pairs get no row."""
    contended = (pairs["concurrent_workers_a"] > 1) | (pairs["concurrent_workers_b"] > 1)
    a, b = pairs["epoch_s_median_a"].astype(float), pairs["epoch_s_median_b"].astype(float)
    keep = ~contended & np.isfinite(a) & np.isfinite(b)
    a, b, g, unit = a[keep], b[keep], group[keep], pairs["unit"][keep]
    programs = (pairs["seeds_in_program_a"][keep] > 1) | (pairs["seeds_in_program_b"][keep] > 1)
    shared = _count(g, programs, n_groups) > 0
    by_unit = shared[g]  # groups of shared programs: one value per program pair
    diff = stats.paired_differences(b[by_unit] - a[by_unit], g[by_unit], n_groups, unit=unit[by_unit]).pick(
        shared, stats.paired_differences(b[~by_unit] - a[~by_unit], g[~by_unit], n_groups))
    d_units, g_units = intervals.per_unit_groups(b - a, g, unit)
    tests = stats.wilcoxon_ps(d_units, g_units, n_groups)
    tests = [stats.TestResult(t.p, t.test, t.note.replace("paired seed(s)", "timing measurement(s)")) if s else t
             for t, s in zip(tests, shared.tolist())]
    n_contended = _count(group, contended, n_groups).tolist()
    notes = ["; ".join([SHARED_TIMING_NOTE] * s + [f"{c} pair(s) excluded: {CONTENDED_NOTE}"] * (c > 0))
             for s, c in zip(shared.tolist(), n_contended)]
    effect = stats.p_improves(d_units, g_units, n_groups, higher=False)
    where = np.flatnonzero(np.bincount(group, minlength=n_groups) > 0)
    return _block("epoch_s", where, np.bincount(g_units, minlength=n_groups), diff, tests, effect, p_note=notes)


def timing_row(pairs: Columns | pd.DataFrame) -> dict[str, object] | None:
    """``timing_block`` of one cell's pairs; None without pairs."""
    return next(iter(_records([timing_block(*_one_group(pairs))])), None)


def divergence_block(pairs: Columns, group: np.ndarray, n_groups: int, where: np.ndarray | None = None) -> Block:
    """Divergence as a paired binary outcome (exact McNemar on seed pairs), in the groups
    ``where`` (by default those where a pair has a diverged run)."""
    div_a = pairs["status_a"] == "diverged"
    div_b = pairs["status_b"] == "diverged"
    n = np.bincount(group, minlength=n_groups)
    na, nb = _count(group, div_a, n_groups), _count(group, div_b, n_groups)
    only_a, only_b = _count(group, div_a & ~div_b, n_groups), _count(group, div_b & ~div_a, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n > 0, (nb - na) / np.maximum(n, 1), math.nan)
    nan = np.full(n_groups, math.nan)
    notes = [f"diverged: {y}/{m} vs {x}/{m} of the reference" for x, y, m in zip(na.tolist(), nb.tolist(), n.tolist())]
    tests = [stats.mcnemar_counts(r, b) for r, b in zip(only_a.tolist(), only_b.tolist())]
    if where is None:
        where = np.flatnonzero(_count(group, div_a | div_b, n_groups) > 0)
    return _block("diverged", where, n, intervals.Intervals(share, nan, nan, n, [""] * n_groups), tests,
                  diff_note=notes)


def divergence_row(pairs: Columns | pd.DataFrame) -> dict[str, object]:
    """``divergence_block`` of one cell's pairs."""
    return _records([divergence_block(*_one_group(pairs), where=np.arange(1))])[0]


COLUMNS = ["cell", "arm", "reference", "metric", "label", "unit", "family", "n_pairs",
           "diff", "diff_low", "diff_high", "diff_note", "p_improve", "p_improve_low", "p_improve_high",
           "p", "test", "p_note"]


def comparison_table(data: StoreData, n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """Every non-reference arm against the reference, per cell and metric (one table).

    Each arm is paired with the reference in one merge over all cells; every metric is
    computed for all (cell, arm) groups at once (the ``*_block`` functions), the KM median
    bootstraps batched (``stats.km_median_differences``).
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
    todo = [(cell, other, rows.get(cell, np.zeros(0, int)))
            for cell, levels in present.items()
            for other, (_, rows) in pairs_of.items() if ref in levels and other in levels]
    if not todo:
        return pd.DataFrame([], columns=COLUMNS)
    pairs, group = _gather(pairs_of, todo)
    n_groups = len(todo)
    samples = list(zip(*(_per_group(pairs, group, n_groups, c)
                         for c in ("ett_duration_a", "reached_a", "ett_duration_b", "reached_b"))))
    diffs = stats.km_median_differences(
        [(ta.astype(float), ea.astype(bool), tb.astype(float), eb.astype(bool)) for ta, ea, tb, eb in samples],
        _budgets(pairs, group, n_groups).tolist(), n_resamples=n_resamples)
    medians = list(zip(stats.km_medians_many([(ta, ea) for ta, ea, _, _ in samples]),
                       stats.km_medians_many([(tb, eb) for _, _, tb, eb in samples])))
    blocks = [*accuracy_blocks(pairs, group, n_groups), test_accuracy_block(pairs, group, n_groups),
              epochs_block(pairs, group, n_groups, diffs, medians), timing_block(pairs, group, n_groups),
              divergence_block(pairs, group, n_groups)]
    cols = {k: np.concatenate([np.asarray(b[k], dtype=object if isinstance(b[k], list) else None)
                               for b in blocks]) for k in blocks[0]}
    order = np.argsort(cols.pop("group"), kind="stable")  # each group's rows in metric order
    which = [todo[i] for i in np.concatenate([b["group"] for b in blocks])[order].tolist()]
    frame = pd.DataFrame({"cell": [c for c, _, _ in which], "arm": [o for _, o, _ in which],
                          "reference": ref, **{k: v[order] for k, v in cols.items()}})
    return frame[COLUMNS]


def _gather(pairs_of: dict[str, tuple[Columns, dict[str, np.ndarray]]],
            todo: list[tuple[str, str, np.ndarray]]) -> tuple[Columns, np.ndarray]:
    """The pairs of every (cell, arm) of ``todo``, group after group, and each pair's group."""
    parts, group = [], []
    for other, (all_pairs, _) in pairs_of.items():
        mine = [(i, rows) for i, (_, o, rows) in enumerate(todo) if o == other and len(rows)]
        if mine:
            parts.append(all_pairs.take(np.concatenate([rows for _, rows in mine])))
            group.append(np.repeat([i for i, _ in mine], [len(rows) for _, rows in mine]))
    if not parts:
        first = next(iter(pairs_of.values()))[0]
        return first.take(np.zeros(0, int)), np.zeros(0, np.intp)
    g = np.concatenate(group)
    order = np.argsort(g, kind="stable")
    cols = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0].cols}
    return Columns(cols, len(order)), g[order]


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
