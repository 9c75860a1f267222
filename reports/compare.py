"""Regression tracking: compare a *current* set of runs with a *baseline*, cell by cell.

Runs are matched by their factor levels (plus budget, target and data split), never by
``run_id``, which also hashes the engine and harness version. Baseline and current runs
are independent samples (new processes, maybe new code), so every test here is
two-sample.

The gate tests against the threshold, not against zero: a metric is a *regression* only
when it is significantly worse than its threshold. Each test shifts the current runs by
the threshold (accuracy counts up by the allowed drop, times down by the allowed ratio,
epochs down by the allowed increase) and asks, one-sided, whether they are still worse
(:mod:`reports.threshold_tests`: exact or Monte Carlo permutation rank-sum and log-rank
tests). All such p-values of one comparison (per cell and pooled over cells) are
Holm-adjusted together. Accuracies are compared as counts over the validation set.
Time to target is the product of time per epoch and epochs to target, so its threshold
is derived from theirs unless given explicitly (it is no stricter back door).
Every change carries a 95% bootstrap interval that resamples each side independently.

Timings are compared only between comparable machines (same ``machine_fingerprint``), and
never between a CPU and a GPU (the host records' ``device``), whatever the flags.
Never imports TensorFlow: it reads stores or ``bnbench export`` folders.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from bench import cells as cell_def
from bench.errors import UsageError
from bench.host import device_kind
from bench.factors import FACTORS
from reports import intervals, stats
from reports.metrics import METRICS as ALL_METRICS
from reports.metrics import Metric
from reports.load import StoreData, load, prepare
from reports.tables import SHARED_TIMING_NOTE as SHARED_TIMING
from reports.threshold_tests import count_matmul, logrank_p, rank_sum_p, tail_p

#: Columns an exported runs table must have. Cells are matched on every setting, placement
#: included (``bench.cells``: factors, engine and options, budget, target, split, data).
#: (A factor added later may be missing from an old export: bench.cells reads its default.)
CELL_KEYS = [*(n for n, f in FACTORS.items() if f.since_schema == 1), "epochs_budget", "target_accuracy", "validation_size", "train_limit"]
ALL_CELLS = "all cells (pooled)"


#: The compared metrics (``reports.metrics``) and the summary of each side a change is of.
SUMMARY = {"epochs_to_target": "KM median", "final_val_acc": "median", "epoch_s": "median",
           "time_to_target_s": "KM median"}
METRICS = {key: ALL_METRICS[key] for key in SUMMARY}


@dataclass(frozen=True)
class Thresholds:
    """How much worse a metric may get; the gate fails only when significantly worse than this."""

    max_epochs_increase: float = 1.0  # epochs, on the KM median of epochs-to-target
    max_accuracy_drop: float = 0.005  # fraction (0.005 = 0.5 percentage points), median
    max_slowdown: float = 0.10  # fraction, on the ratio of median time per epoch
    #: fraction on the ratio of KM median times; None: derived from the two above per cell
    max_time_to_target_increase: float | None = None
    alpha: float = 0.05  # Holm-adjusted significance level

    def limit(self, metric: str, baseline_epochs: float = math.nan) -> float:
        """The change at the edge of "acceptable", in the metric's own terms (diff or ratio).

        Time to target = epochs to target x time per epoch, so by default its limit is
        what the other two allow together: (1 + max_slowdown) x (1 + max_epochs_increase /
        baseline KM median epochs); a stricter limit would fail the gate on changes both
        components accept.
        """
        if metric == "epochs_to_target":
            return self.max_epochs_increase
        if metric == "final_val_acc":
            return -self.max_accuracy_drop
        if metric == "epoch_s":
            return 1 + self.max_slowdown
        if self.max_time_to_target_increase is not None:
            return 1 + self.max_time_to_target_increase
        return (1 + self.max_slowdown) * (1 + self.max_epochs_increase / baseline_epochs)

    def worse_than_allowed(self, metric: str, change: float, limit: float) -> bool:
        """Is the point estimate past the limit (shown, but alone never a failure)?"""
        if not math.isfinite(change):
            return change == math.inf and not METRICS[metric].higher_is_better
        return change > limit if not METRICS[metric].higher_is_better else change < limit


@dataclass
class Comparison:
    """Result of :func:`compare_data`; ``rows`` has one row per (cell, metric)."""

    baseline: str
    current: str
    rows: pd.DataFrame
    thresholds: Thresholds
    hardware: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    baseline_only: list[str] = field(default_factory=list)
    current_only: list[str] = field(default_factory=list)
    #: per gated metric, what this comparison can detect (reports.gate_power); empty if not computed
    detectable: list[Any] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["regression"]]

    @property
    def passed(self) -> bool:
        return not bool(self.rows["regression"].any())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers become ``null`` (the row's ``note`` says why)."""
        records = [{k: _json_value(v) for k, v in r.items()} for r in self.rows.to_dict("records")]
        return {
            "verdict": "pass" if self.passed else "fail",
            "baseline": self.baseline,
            "current": self.current,
            "thresholds": asdict(self.thresholds),
            "hardware": self.hardware,
            "warnings": self.warnings,
            "cells_only_in_baseline": self.baseline_only,
            "cells_only_in_current": self.current_only,
            "n_regressions": int(self.rows["regression"].sum()),
            "detectable_with_80pct_power": [
                {"metric": d.metric, "change": _json_value(d.change), "multiple_of_limit": _json_value(d.multiple),
                 "power": {f"{k:g}": v for k, v in d.power.items()}, "note": d.note}
                for d in self.detectable],
            "results": records,
        }


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


# ----------------------------------------------------------------------------- loading


def load_side(path: str | Path, grid: str | None = None) -> StoreData:
    """A store file, or a folder written by ``bnbench export`` (CSV or Parquet)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such store file or export folder")
    if not path.is_dir():
        return load(path, grid)
    for ext, reader in (("parquet", pd.read_parquet), ("csv", _read_csv)):
        runs_file, epochs_file = path / f"runs.{ext}", path / f"epochs.{ext}"
        if runs_file.exists() and epochs_file.exists():
            try:
                runs, epochs = reader(runs_file), reader(epochs_file)
            except Exception as exc:  # noqa: BLE001 - any parse error is bad input
                raise UsageError(f"{path}: cannot read exported tables ({exc})") from None
            missing = [c for c in [*CELL_KEYS, "run_id", "status", "epochs_to_target"] if c not in runs]
            if missing:
                raise UsageError(f"{runs_file}: not a bnbench export (missing {', '.join(missing)})")
            if grid is not None:
                runs = runs[runs["grid"] == grid]
                epochs = epochs[epochs["run_id"].isin(runs["run_id"])]
            return prepare(path, grid, runs, epochs, pd.DataFrame())
    raise UsageError(f"{path}: folder has no runs.csv/epochs.csv or runs.parquet/epochs.parquet")


def _read_csv(path: Path) -> pd.DataFrame:
    text = {c: str for c in ("run_id", "program_key", "hidden", "machine_fingerprint", "grid", "error",
                             "data_fingerprint", "engine_json", "config_json")}
    return pd.read_csv(path, dtype=text, keep_default_na=True)


def _cell_keys(runs: pd.DataFrame) -> pd.Series:
    return cell_def.cell_keys(runs, compared=())


# ----------------------------------------------------------------------- statistics


@dataclass
class _Result:
    baseline: float
    current: float
    change: float
    low: float
    high: float
    p: float  # one-sided p of "worse than the limit" (the gate's test)
    test: str
    note: str = ""
    replicates: np.ndarray | None = None  # bootstrap replicates of ``change`` (for pooling)
    extra: dict[str, float] = field(default_factory=dict)
    limit: float = math.nan  # the change at the edge of "acceptable"


def _values(
    b: np.ndarray, c: np.ndarray, kind: str, n_resamples: int, rng: np.random.Generator
) -> _Result:
    """Median difference or ratio of per-run values with its bootstrap CI (p is set by the caller)."""
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if b.size == 0 or c.size == 0:
        return _Result(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                       "rank-sum", "no finite values on one side")
    mb, mc = float(np.median(b)), float(np.median(c))

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x_med, y_med = np.median(x, axis=axis), np.median(y, axis=axis)
        if kind == "diff":
            return y_med - x_med
        with np.errstate(divide="ignore", invalid="ignore"):
            return y_med / x_med

    change = mc - mb if kind == "diff" else (mc / mb if mb > 0 else math.nan)
    iv = intervals.two_sample((b,), (c,), stat, n_resamples=n_resamples, seed=rng)
    extra = {"baseline_mean": float(b.mean()), "current_mean": float(c.mean()),
             "n_baseline": int(b.size), "n_current": int(c.size)}
    return _Result(mb, mc, change, iv.low, iv.high, math.nan, "rank-sum", iv.note, iv.replicates, extra)


def _censored(
    tb: np.ndarray, eb: np.ndarray, tc: np.ndarray, ec: np.ndarray, kind: str,
    n_resamples: int, rng: np.random.Generator, *, interval: bool = True,
) -> _Result:
    """KM medians of the two sides and their change with CI (p is set by the caller).

    Continuous times are replaced by their ranks for the KM medians (the median is an
    order statistic, so ranks map back exactly), which lets integer KM code serve both.
    """
    if tb.size == 0 or tc.size == 0:
        return _Result(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "log-rank",
                       "no runs on one side")
    grid = np.unique(np.concatenate([tb, tc]))
    to_value = np.concatenate([[0.0], grid, [math.inf]])

    def rank(t: np.ndarray) -> np.ndarray:
        return np.searchsorted(grid, t) + 1.0

    def value(r: np.ndarray | float) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        return to_value[np.where(np.isinf(r), len(to_value) - 1, r).astype(int)]

    rb, rc = rank(tb), rank(tc)
    mb = float(value(stats.km_median(rb, eb)))
    mc = float(value(stats.km_median(rc, ec)))

    def change_of(b: np.ndarray, c: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = c - b if kind == "diff" else c / b
        return np.where(np.isinf(b) & np.isinf(c), np.nan, out)  # neither reaches: unknown

    change = float(change_of(np.array(mb), np.array(mc)))

    def km_change(rb: np.ndarray, eb: np.ndarray, rc: np.ndarray, ec: np.ndarray, axis: int = -1) -> np.ndarray:
        return change_of(value(stats.km_medians(rb, eb, axis)), value(stats.km_medians(rc, ec, axis)))

    iv = intervals.Interval(change)
    if interval:  # each side's runs resampled on their own; a resample's KM curve keeps its censoring
        iv = intervals.two_sample((rb, eb), (rc, ec), km_change, n_resamples=n_resamples, seed=rng)
    note = "median not reached on either side" if math.isnan(change) else ""
    if interval and iv.replicates is None:
        note = "; ".join(filter(None, [note, iv.note]))
    extra = {"baseline_success": float(eb.mean()), "current_success": float(ec.mean()),
             "success_change": float(ec.mean() - eb.mean()),
             "n_baseline": int(tb.size), "n_current": int(tc.size)}
    return _Result(mb, mc, change, iv.low, iv.high, math.nan, "log-rank", note, iv.replicates, extra)


def _durations(runs: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Durations and events; a run that never reached the target is censored at its end."""
    reached = runs["reached"].to_numpy(dtype=bool)
    if metric == "epochs_to_target":
        return runs["ett_duration"].to_numpy(dtype=float), reached
    spent = runs["train_s"].astype(float).fillna(runs["total_s"].astype(float))
    t = runs["time_to_target_s"].astype(float).where(runs["reached"], spent)
    t = t.to_numpy(dtype=float)
    ok = np.isfinite(t)
    return t[ok], reached[ok]


def accuracy_counts(runs: pd.DataFrame) -> np.ndarray:
    """Correct validation examples per run (float NaN for diverged runs).

    Accuracies are counts over the validation set: as floats, equal counts can differ by
    an ulp and break ties in rank tests and medians, so every comparison uses counts.
    """
    return intervals.as_counts(runs["final_val_acc"].astype(float).to_numpy(),
                               runs["validation_size"].astype(float).to_numpy())


def _epochs_scale(runs: pd.DataFrame) -> float:
    """The baseline's KM median epochs to target (its budget when never reached)."""
    if runs.empty:
        return math.nan
    m = stats.km_median(runs["ett_duration"], runs["reached"])
    return m if math.isfinite(m) else float(runs["epochs_budget"].max())


def shift_current(metric: str, values: np.ndarray, limit: float, n_val: float = math.nan) -> np.ndarray:
    """Move current values back by the allowed change, so "at the limit" becomes "equal".

    Accuracy counts go up by the allowed drop (in examples), epochs down by the allowed
    increase, times are divided by the allowed ratio (``inf``, never reached, stays).
    """
    if metric == "final_val_acc":
        return values - limit * n_val
    if metric == "epochs_to_target":
        return values - limit
    return values / limit


def compare_cell(
    b: pd.DataFrame, c: pd.DataFrame, metric: str, thresholds: Thresholds,
    n_resamples: int, rng: np.random.Generator,
) -> _Result:
    """One metric of one cell: analysed (ok or diverged) runs of each side."""
    m = METRICS[metric]
    limit = thresholds.limit(metric, _epochs_scale(b) if metric == "time_to_target_s" else math.nan)
    if metric in ("epochs_to_target", "time_to_target_s"):
        (tb, eb), (tc, ec) = _durations(b, metric), _durations(c, metric)
        shared = metric == "time_to_target_s" and (_shares_timing(b) or _shares_timing(c))
        res = _censored(tb, eb, tc, ec, m.kind, n_resamples, rng, interval=not shared)
        if shared:
            res.note = "; ".join(filter(None, [res.note, SHARED_TIMING_NOTE]))
        else:
            res.p = logrank_p(tb, eb, shift_current(metric, tc, limit), ec, n_resamples, rng)
            res.test = "permutation log-rank vs limit"
    elif metric == "epoch_s":
        b, c = timing_units(b), timing_units(c)
        vb, vc = (x["epoch_s_median"].to_numpy(dtype=float) for x in (b, c))
        vb, vc = vb[np.isfinite(vb)], vc[np.isfinite(vc)]
        res = _values(vb, vc, m.kind, n_resamples, rng)
        res.p = rank_sum_p(vb, shift_current(metric, vc, limit), True, n_resamples, rng)
        res.test = "permutation rank-sum vs limit (timing units)"
    else:
        n_val = float(b["validation_size"].iloc[0]) if len(b) else math.nan
        kb, kc = accuracy_counts(b), accuracy_counts(c)
        kb, kc = kb[np.isfinite(kb)], kc[np.isfinite(kc)]
        res = _values(kb / n_val, kc / n_val, m.kind, n_resamples, rng)
        res.p = rank_sum_p(kb, shift_current(metric, kc, limit, n_val), False, n_resamples, rng)
        res.test = "permutation rank-sum vs limit (counts)"
    res.limit = limit
    return res


#: The report's note on shared timings (``reports.tables``), and what it means for the gate.
SHARED_TIMING_NOTE = (
    f"not tested per cell: {SHARED_TIMING} (epochs to target and time per epoch are tested)"
)


def _shares_timing(runs: pd.DataFrame) -> bool:
    return bool((runs["seeds_in_program"] > 1).any())


def _timing_keys(runs: pd.DataFrame) -> pd.Series:
    """One key per independent timing measurement: seeds trained in one program share one."""
    shared = runs["seeds_in_program"] > 1
    return runs["epoch_s_median"].map(repr).where(shared, runs["run_id"].astype(str))


def timing_units(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per timing measurement, so shared measurements are not counted as many."""
    return runs.loc[~_timing_keys(runs).duplicated()]


def block_rank_test(
    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n_resamples: int = 10000,
    rng: np.random.Generator | None = None, alternative: str = "two-sided",
) -> float:
    """p that current and baseline agree in every cell, for correlated cells.

    ``cells`` holds (values_b, seeds_b, values_c, seeds_c); ``inf`` marks a censored run
    (ranked after every run that reached the target). The statistic is the sum over cells
    of each cell's standardized Mann–Whitney rank sum of the current side (van Elteren's
    stratified idea); ``alternative`` "greater" or "less" asks whether current values are
    larger or smaller (one-sided). Seeds are paired across cells (same data order and
    initial weights), so cells are not independent: the null distribution permutes whole
    (side, seed) blocks between the sides, carrying every cell of a seed along. Not in
    scipy: ``permutation_test`` knows neither strata nor blocks.
    """
    rng = rng or intervals.rng()
    blocks = sorted({("b", s) for _, sb, _, _ in cells for s in sb} | {("c", s) for _, _, _, sc in cells for s in sc})
    index = {blk: i for i, blk in enumerate(blocks)}
    is_cur = np.array([side == "c" for side, _ in blocks], dtype=float)
    perms = rng.permuted(np.tile(is_cur, (n_resamples, 1)), axis=1)
    labels = np.vstack([is_cur, perms])  # row 0: the observed assignment
    total = np.zeros(labels.shape[0])
    for vb, sb, vc, sc in cells:
        v = np.concatenate([vb, vc])
        keep = ~np.isnan(v)
        if keep.sum() < 2:
            continue
        owner = np.array([index[("b", s)] for s in sb] + [index[("c", s)] for s in sc])[keep]
        r2 = np.rint(2 * scipy.stats.rankdata(v[keep]))  # mid-ranks x 2, integers
        cur = labels[:, owner]  # (1 + resamples) x runs of this cell
        n, nc = r2.size, cur.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (count_matmul(cur, r2) / 2 - nc * (n + 1) / 2) / np.sqrt(nc * (n - nc) * (n + 1) / 12)
        total += np.nan_to_num(z)  # a permutation that empties a side adds nothing
    if alternative != "two-sided":
        return tail_p(total if alternative == "greater" else -total, exact=False)
    observed, null = total[0], total[1:]
    hits = np.count_nonzero(np.abs(null) >= abs(observed) - 1e-9)
    return float((1 + hits) / (1 + n_resamples))


def _pooled_values(runs: pd.DataFrame, metric: str, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-run values for the pooled rank test (censored runs as ``inf``) and their blocks.

    Quality metrics are blocked by seed (paired across cells by design); accuracies are
    counts. Timing noise is not tied to the seed, so a timing block is one run, except
    that seeds trained in one program (``seeds_in_program`` > 1) share one measurement:
    equal values form one block.
    """
    if metric in ("epochs_to_target", "time_to_target_s"):
        v = runs[metric].astype(float).where(runs["reached"], math.inf).to_numpy(dtype=float)
    elif metric == "final_val_acc":
        v = accuracy_counts(runs)
    else:
        v = runs["epoch_s_median"].to_numpy(dtype=float)
    v[~np.isfinite(v) & ~np.isinf(v)] = np.nan
    if METRICS[metric].timing:
        return v, np.array([f"{cell}/{key}" for key in _timing_keys(runs)])
    return v, runs["seed"].to_numpy()


def pooled(
    results: list[_Result], cells: list[tuple[pd.DataFrame, pd.DataFrame]], metric: str,
    n_resamples: int, rng: np.random.Generator,
) -> _Result:
    """All matched cells together: mean change (geometric for ratios) and a stratified test.

    The test shifts each cell's current runs by that cell's limit and asks, one-sided,
    whether they are still worse. It is what gives a grid with few seeds per cell (3 in
    the smoke grid: no single-cell test can reach p < 0.05) the power to see a change that
    hits every cell.
    """
    m = METRICS[metric]

    def center(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return x if m.kind == "diff" else np.log(x)

    def back(x: float) -> float:
        return x if m.kind == "diff" or not math.isfinite(x) else math.exp(x)

    limit = back(float(np.mean([center(np.array(r.limit)) for r in results])))
    use = [r for r in results if math.isfinite(r.change)]
    if len(use) < 2:
        return _Result(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "stratified",
                       "fewer than 2 cells with a change", limit=limit)
    change = back(float(np.mean([center(np.array(r.change)) for r in use])))
    low = high = math.nan
    reps = [r.replicates for r in use if r.replicates is not None]
    if len(reps) == len(use):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = np.nanmean(np.vstack([center(x) for x in reps]), axis=0)
        # like the mean over cells (nanmean), a resample where no cell has a change is left out
        low, high = (back(v) for v in intervals.percentile_bounds(rep[~np.isnan(rep)]))
    p = math.nan
    note = ""
    if metric == "time_to_target_s" and any(_shares_timing(b) or _shares_timing(c) for b, c in cells):
        note = SHARED_TIMING_NOTE.replace("per cell", "pooled")
    else:
        blocks = []
        for i, ((b, c), r) in enumerate(zip(cells, results)):
            vc, sc = _pooled_values(c, metric, i)
            n_val = float(c["validation_size"].iloc[0]) if len(c) else math.nan
            blocks.append((*_pooled_values(b, metric, i), shift_current(metric, vc, r.limit, n_val), sc))
        p = block_rank_test(blocks, n_resamples * 5, rng, "less" if m.higher_is_better else "greater")
    test = f"stratified rank test vs limit, seed-block permutation ({len(cells)} cells)"
    return _Result(math.nan, math.nan, change, low, high, p, test, note, limit=limit)


# ----------------------------------------------------------------------- comparison


def _fingerprints(runs: pd.DataFrame) -> list[str]:
    return sorted(set(runs["machine_fingerprint"].astype(str))) if len(runs) else []


def _device_kinds(runs: pd.DataFrame) -> list[str]:
    """Devices ("cpu", "gpu") that trained these runs, from their host records.

    CPU and GPU timings are never compared; runs without a host record (older exports)
    trained on the CPU.
    """
    if "host_json" not in runs or not len(runs):
        return ["cpu"]
    hosts = (json.loads(h) if isinstance(h, str) and h else {} for h in runs["host_json"])
    return sorted({device_kind(h) for h in hosts})


def _labels(keys: list[str], runs: pd.DataFrame) -> dict[str, str]:
    """Readable cell labels naming only the keys that vary among the matched cells."""
    parts = {k: k.split("|") for k in keys}
    n = len(next(iter(parts.values())))
    varying = [i for i in range(n) if len({p[i] for p in parts.values()}) > 1]
    if not varying:
        return {k: "all runs" for k in keys}
    return {k: ", ".join(parts[k][i] for i in varying) for k in keys}


def _check_context(b: pd.DataFrame, c: pd.DataFrame, out: list[str]) -> None:
    for col, what in (("engine", "engines"), ("concurrent_workers", "parallelism (concurrent workers)")):
        vb, vc = sorted(set(b[col].astype(str))), sorted(set(c[col].astype(str)))
        if vb != vc:
            out.append(f"{what} differ: baseline {', '.join(vb)}; current {', '.join(vc)}")
    for name, side in (("baseline", b), ("current", c)):
        bad = side[~side["analysed"]]
        if len(bad):
            out.append(f"{name}: {len(bad)} failed run(s) left out of the statistics")


def compare_data(
    baseline: StoreData,
    current: StoreData,
    thresholds: Thresholds = Thresholds(),
    *,
    allow_different_hardware: bool = False,
    n_resamples: int = 1000,
    seed: int | None = None,
    power_sims: int = 0,
) -> Comparison:
    """Compare two loaded stores; raises UsageError when they share no cell.

    ``power_sims`` > 0 also simulates what the comparison can detect (reports.gate_power;
    seconds, so the CLI does and the simulation tests do not).
    """
    b_runs, c_runs = baseline.runs.copy(), current.runs.copy()
    for name, runs in (("baseline", b_runs), ("current", c_runs)):
        if runs.empty:
            raise UsageError(f"{name} {_path(baseline if name == 'baseline' else current)}: no runs")
        runs["_key"] = _cell_keys(runs)
    b_keys, c_keys = list(dict.fromkeys(b_runs["_key"])), list(dict.fromkeys(c_runs["_key"]))
    common = [k for k in b_keys if k in set(c_keys)]
    if not common:
        raise UsageError(
            f"no common cells between {_path(baseline)} and {_path(current)} "
            "(cells are matched on factor levels, engine and its options, epoch budget, target, "
            "data split and data)"
        )
    labels = _labels(b_keys + [k for k in c_keys if k not in set(b_keys)], b_runs)

    fb, fc = _fingerprints(b_runs), _fingerprints(c_runs)
    same_hw = len(fb) == 1 and fb == fc
    db, dc = _device_kinds(b_runs), _device_kinds(c_runs)
    same_device = len(db) == 1 and db == dc
    timing = same_hw or (allow_different_hardware and same_device)
    notes: list[str] = []
    if not same_device:
        notes.append(
            f"devices differ (baseline {', '.join(db)}; current {', '.join(dc)}): timing metrics "
            "skipped, even with --allow-different-hardware; quality metrics compared"
        )
    elif not same_hw:
        notes.append(
            f"machine fingerprints differ (baseline {', '.join(fb)}; current {', '.join(fc)}): "
            + ("timing metrics compared anyway (--allow-different-hardware)" if timing
               else "timing metrics skipped, quality metrics compared")
        )
    _check_context(b_runs, c_runs, notes)
    hardware = {"baseline": fb, "current": fc, "same": same_hw, "timing_compared": timing}

    metrics = [m for m in METRICS.values() if timing or not m.timing]
    rng = intervals.rng(seed)
    rows: list[dict[str, Any]] = []
    per_metric: dict[str, list[_Result]] = {m.key: [] for m in metrics}
    cells = []
    for key in common:
        b = b_runs[(b_runs["_key"] == key) & b_runs["analysed"]]
        c = c_runs[(c_runs["_key"] == key) & c_runs["analysed"]]
        cells.append((b, c))
        for m in metrics:
            res = compare_cell(b, c, m.key, thresholds, n_resamples, rng)
            per_metric[m.key].append(res)
            rows.append(_row(labels[key], m, res))
    if len(common) > 1:
        for m in metrics:
            res = pooled(per_metric[m.key], cells, m.key, n_resamples, rng)
            rows.append(_row(ALL_CELLS, m, res))

    frame = pd.DataFrame(rows)
    frame["p_holm"] = stats.holm(frame["p"].to_numpy(dtype=float))
    frame["worse_than_allowed"] = [
        thresholds.worse_than_allowed(k, ch, lim)
        for k, ch, lim in zip(frame["metric"], frame["change"], frame["limit"])
    ]
    # significantly worse than the limit (shifted one-sided test), and estimated past it
    frame["significant"] = frame["p_holm"] < thresholds.alpha
    frame["regression"] = frame["worse_than_allowed"] & frame["significant"]
    frame["verdict"] = [_verdict(r) for r in frame.itertuples()]
    detectable = []
    if power_sims > 0:
        from reports.gate_power import detectable as simulate

        n_tests = int(np.isfinite(frame["p"].to_numpy(dtype=float)).sum())
        detectable = [simulate(cells, m.key, thresholds, n_tests, rng, power_sims)
                      for m in metrics if m.key != "time_to_target_s"]
    return Comparison(
        baseline=_path(baseline), current=_path(current), rows=frame, thresholds=thresholds,
        hardware=hardware, warnings=notes,
        baseline_only=[labels[k] for k in b_keys if k not in set(c_keys)],
        current_only=[labels[k] for k in c_keys if k not in set(b_keys)],
        detectable=detectable,
    )


def _path(data: StoreData) -> str:
    return str(data.path) + (f" (grid {data.grid})" if data.grid else "")


def _row(cell: str, m: Metric, r: _Result) -> dict[str, Any]:
    return {
        "cell": cell, "metric": m.key, "label": f"{m.label} ({SUMMARY[m.key]})", "kind": m.kind, "unit": m.unit,
        "baseline": r.baseline, "current": r.current, "change": r.change,
        "change_low": r.low, "change_high": r.high, "limit": r.limit, "p": r.p, "test": r.test, "note": r.note,
        **{k: r.extra.get(k, math.nan) for k in (
            "n_baseline", "n_current", "baseline_success", "current_success", "success_change",
            "baseline_mean", "current_mean")},
    }


def _verdict(r: Any) -> str:
    """REGRESSION only when significantly past the limit; the rest describes the estimate."""
    if r.regression:
        return "REGRESSION"
    m = METRICS[r.metric]
    null = 0.0 if m.kind == "diff" else 1.0
    if not math.isfinite(r.change) and not (r.change == math.inf):
        return "n/a"
    if r.worse_than_allowed:
        return "past limit (n.s.)"
    worse = (r.change > null) != m.higher_is_better and r.change != null
    return "worse (within limit)" if worse else "ok"


def compare_paths(
    baseline: str | Path, current: str | Path, thresholds: Thresholds = Thresholds(), *,
    grid: str | None = None, **kwargs: Any,
) -> Comparison:
    """Load both sides (store files or export folders) and compare them."""
    return compare_data(load_side(baseline, grid), load_side(current, grid), thresholds, **kwargs)
