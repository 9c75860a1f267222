"""Regression tracking: compare a *current* set of runs with a *baseline*, cell by cell.

Runs are matched by their factor levels (plus budget, target and data split), never by
``run_id``, which also hashes the engine and harness version. Baseline and current runs
are independent samples (new processes, maybe new code), so every test here is
two-sample: Mann–Whitney U for per-run values, log-rank for censored times. Every change
carries a 95% bootstrap interval that resamples each side independently. All p-values of
one comparison (per cell and pooled over cells) are Holm-adjusted together, and a metric
is a *regression* only when it is worse than the user's threshold **and** significant.

Timings are compared only between comparable machines (same ``machine_fingerprint``).
Never imports TensorFlow: it reads stores or ``bnbench export`` folders.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.stats

from bench import cells as cell_def
from bench.errors import UsageError
from bench.store import FACTOR_COLUMNS
from reports import stats
from reports.load import StoreData, load, prepare

#: Columns an exported runs table must have. Cells are matched on every setting, placement
#: included (``bench.cells``: factors, engine and options, budget, target, split, data).
CELL_KEYS = [*FACTOR_COLUMNS, "epochs_budget", "target_accuracy", "validation_size", "train_limit"]
ALL_CELLS = "all cells (pooled)"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str  # "diff" (current - baseline) or "ratio" (current / baseline)
    unit: str
    timing: bool
    higher_is_worse: bool


METRICS = {
    m.key: m
    for m in (
        Metric("epochs_to_target", "epochs to target (KM median)", "diff", "epochs", False, True),
        Metric("final_val_acc", "final val accuracy (median)", "diff", "pp", False, False),
        Metric("epoch_s", "time per epoch (median)", "ratio", "s", True, True),
        Metric("time_to_target_s", "time to target (KM median)", "ratio", "s", True, True),
    )
}


@dataclass(frozen=True)
class Thresholds:
    """How much worse a metric may get before it fails the gate (if also significant)."""

    max_epochs_increase: float = 1.0  # epochs, on the KM median of epochs-to-target
    max_accuracy_drop: float = 0.005  # fraction (0.005 = 0.5 percentage points), median
    max_slowdown: float = 0.10  # fraction, on the ratio of median time per epoch
    max_time_to_target_increase: float = 0.25  # fraction, on the ratio of KM median times
    alpha: float = 0.05  # Holm-adjusted significance level

    def worse_than_allowed(self, metric: str, change: float) -> bool:
        if not math.isfinite(change):
            return change == math.inf and METRICS[metric].higher_is_worse
        return {
            "epochs_to_target": change > self.max_epochs_increase,
            "final_val_acc": change < -self.max_accuracy_drop,
            "epoch_s": change > 1 + self.max_slowdown,
            "time_to_target_s": change > 1 + self.max_time_to_target_increase,
        }[metric]


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
    p: float
    test: str
    note: str = ""
    replicates: np.ndarray | None = None  # bootstrap replicates of ``change`` (for pooling)
    extra: dict[str, float] = field(default_factory=dict)


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(stats.SEED if seed is None else seed)


def _quantiles(rep: np.ndarray) -> tuple[float, float]:
    rep = rep[~np.isnan(rep)]
    if rep.size == 0:
        return math.nan, math.nan
    q = [(1 - stats.CONFIDENCE) / 2, (1 + stats.CONFIDENCE) / 2]
    low, high = np.quantile(rep, q, method="inverted_cdf")
    return float(low), float(high)


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    if x.size < 1 or y.size < 1:
        return math.nan, "no test: a side has no values"
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0, "all values equal"
    return float(scipy.stats.mannwhitneyu(x, y, alternative="two-sided").pvalue), ""


def _two_sample(
    x: np.ndarray, y: np.ndarray, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n_resamples: int, rng: np.random.Generator,
) -> np.ndarray | None:
    """Bootstrap replicates of ``statistic(x*, y*)``, each side resampled on its own."""
    if x.size < 2 or y.size < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            (x, y), statistic, n_resamples=n_resamples, paired=False, vectorized=True,
            method="percentile", axis=-1, rng=rng,
        )
    return np.asarray(res.bootstrap_distribution, dtype=float)


def _values(
    b: np.ndarray, c: np.ndarray, kind: str, n_resamples: int, rng: np.random.Generator
) -> _Result:
    """Median difference or ratio of per-run values, with bootstrap CI and Mann–Whitney p."""
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if b.size == 0 or c.size == 0:
        return _Result(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                       "Mann–Whitney U", "no finite values on one side")
    mb, mc = float(np.median(b)), float(np.median(c))

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x_med, y_med = np.median(x, axis=axis), np.median(y, axis=axis)
        if kind == "diff":
            return y_med - x_med
        with np.errstate(divide="ignore", invalid="ignore"):
            return y_med / x_med

    change = mc - mb if kind == "diff" else (mc / mb if mb > 0 else math.nan)
    rep = _two_sample(b, c, stat, n_resamples, rng)
    low, high = _quantiles(rep) if rep is not None else (math.nan, math.nan)
    p, note = _mann_whitney(b, c)
    if rep is None:
        note = "; ".join(filter(None, [note, "no interval with fewer than 2 runs a side"]))
    extra = {"baseline_mean": float(b.mean()), "current_mean": float(c.mean()),
             "n_baseline": int(b.size), "n_current": int(c.size)}
    return _Result(mb, mc, change, low, high, p, "Mann–Whitney U", note, rep, extra)


def _km_boot(t: np.ndarray, e: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """KM medians of bootstrap resamples of one side (integer durations)."""
    idx = rng.integers(0, t.size, size=(n_resamples, t.size))
    return stats.km_medians_boot(t, e, idx)


def _censored(
    tb: np.ndarray, eb: np.ndarray, tc: np.ndarray, ec: np.ndarray, kind: str,
    n_resamples: int, rng: np.random.Generator,
) -> _Result:
    """KM medians of the two sides, their change with CI, and a log-rank p-value.

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
    rep = None
    if tb.size >= 2 and tc.size >= 2:
        rep = change_of(value(_km_boot(rb, eb, n_resamples, rng)), value(_km_boot(rc, ec, n_resamples, rng)))
    low, high = _quantiles(rep) if rep is not None else (math.nan, math.nan)
    groups = np.array(["baseline"] * tb.size + ["current"] * tc.size)
    test = stats.logrank(np.concatenate([tb, tc]), np.concatenate([eb, ec]), groups)
    p, note = test.p, test.note
    if not math.isfinite(p) and not (eb.any() or ec.any()):
        p = 1.0  # no run reached the target on either side: nothing changed that we can see
    if math.isnan(change):
        note = "; ".join(filter(None, [note, "median not reached on either side"]))
    extra = {"baseline_success": float(eb.mean()), "current_success": float(ec.mean()),
             "success_change": float(ec.mean() - eb.mean()),
             "n_baseline": int(tb.size), "n_current": int(tc.size)}
    return _Result(mb, mc, change, low, high, p, test.test, note, rep, extra)


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


def compare_cell(
    b: pd.DataFrame, c: pd.DataFrame, metric: str, n_resamples: int, rng: np.random.Generator
) -> _Result:
    """One metric of one cell: analysed (ok or diverged) runs of each side."""
    m = METRICS[metric]
    if metric == "time_to_target_s" and (_shares_timing(b) or _shares_timing(c)):
        res = _censored(*_durations(b, metric), *_durations(c, metric), m.kind, n_resamples, rng)
        res.p = math.nan
        res.note = "; ".join(filter(None, [res.note, SHARED_TIMING_NOTE]))
        return res
    if metric == "epoch_s":
        b, c = _timing_units(b), _timing_units(c)
    col = "epoch_s_median" if metric == "epoch_s" else metric
    if metric in ("epochs_to_target", "time_to_target_s"):
        return _censored(*_durations(b, metric), *_durations(c, metric), m.kind, n_resamples, rng)
    return _values(b[col].to_numpy(dtype=float), c[col].to_numpy(dtype=float), m.kind, n_resamples, rng)


SHARED_TIMING_NOTE = (
    "not tested per cell: seeds trained in one program share one timing measurement, so "
    "their times to target are not independent (epochs to target and time per epoch are tested)"
)


def _shares_timing(runs: pd.DataFrame) -> bool:
    return bool((runs["seeds_in_program"] > 1).any())


def _timing_keys(runs: pd.DataFrame) -> pd.Series:
    """One key per independent timing measurement: seeds trained in one program share one."""
    shared = runs["seeds_in_program"] > 1
    return runs["epoch_s_median"].map(repr).where(shared, runs["run_id"].astype(str))


def _timing_units(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per timing measurement, so shared measurements are not counted as many."""
    return runs.loc[~_timing_keys(runs).duplicated()]


def block_rank_test(
    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n_resamples: int = 10000,
    rng: np.random.Generator | None = None,
) -> float:
    """Two-sided p that current and baseline agree in every cell, for correlated cells.

    ``cells`` holds (values_b, seeds_b, values_c, seeds_c); ``inf`` marks a censored run
    (ranked after every run that reached the target). The statistic is the sum over cells
    of each cell's standardized Mann–Whitney rank sum (van Elteren's stratified idea).
    Seeds are paired across cells (same data order and initial weights), so cells are not
    independent: the null distribution permutes whole (side, seed) blocks between the
    sides, carrying every cell of a seed along. Not in scipy: ``permutation_test`` knows
    neither strata nor blocks.
    """
    rng = rng or _rng(None)
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
        r = scipy.stats.rankdata(v[keep])
        cur = labels[:, owner]  # (1 + resamples) x runs of this cell
        n, nc = r.size, cur.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (cur @ r - nc * (n + 1) / 2) / np.sqrt(nc * (n - nc) * (n + 1) / 12)
        total += np.nan_to_num(z)  # a permutation that empties a side adds nothing
    observed, null = total[0], total[1:]
    hits = np.count_nonzero(np.abs(null) >= abs(observed) - 1e-9)
    return float((1 + hits) / (1 + n_resamples))


def _pooled_values(runs: pd.DataFrame, metric: str, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-run values for the pooled rank test (censored runs as ``inf``) and their blocks.

    Quality metrics are blocked by seed (paired across cells by design). Timing noise is
    not tied to the seed, so a timing block is one run, except that seeds trained in one
    program (``seeds_in_program`` > 1) share one measurement: equal values form one block.
    """
    if metric in ("epochs_to_target", "time_to_target_s"):
        col = "epochs_to_target" if metric == "epochs_to_target" else "time_to_target_s"
        v = runs[col].astype(float).where(runs["reached"], math.inf)
    else:
        v = runs["epoch_s_median" if metric == "epoch_s" else metric].astype(float)
    v = v.to_numpy(dtype=float)
    v[~np.isfinite(v) & ~np.isinf(v)] = np.nan
    seeds = runs["seed"].to_numpy()
    if METRICS[metric].timing:
        return v, np.array([f"{cell}/{key}" for key in _timing_keys(runs)])
    return v, seeds


def pooled(
    results: list[_Result], cells: list[tuple[pd.DataFrame, pd.DataFrame]], metric: str,
    n_resamples: int, rng: np.random.Generator,
) -> _Result:
    """All matched cells together: mean change (geometric for ratios) and a stratified test.

    The pooled test is what gives a grid with few seeds per cell (3 in the smoke grid:
    no single-cell test can reach p < 0.1) the power to see a change that hits every cell.
    """
    kind = METRICS[metric].kind
    use = [r for r in results if math.isfinite(r.change)]
    if len(use) < 2:
        return _Result(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, "stratified",
                       "fewer than 2 cells with a change")

    def center(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return x if kind == "diff" else np.log(x)

    def back(x: float) -> float:
        return x if kind == "diff" or not math.isfinite(x) else math.exp(x)

    change = back(float(np.mean([center(np.array(r.change)) for r in use])))
    low = high = math.nan
    reps = [r.replicates for r in use if r.replicates is not None]
    if len(reps) == len(use):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = np.nanmean(np.vstack([center(x) for x in reps]), axis=0)
        low, high = (back(v) for v in _quantiles(rep))
    p = block_rank_test(
        [(*_pooled_values(b, metric, i), *_pooled_values(c, metric, i)) for i, (b, c) in enumerate(cells)], n_resamples * 5, rng)
    test = f"stratified rank test, seed-block permutation ({len(cells)} cells)"
    return _Result(math.nan, math.nan, change, low, high, p, test)


# ----------------------------------------------------------------------- comparison


def _fingerprints(runs: pd.DataFrame) -> list[str]:
    return sorted(set(runs["machine_fingerprint"].astype(str))) if len(runs) else []


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
) -> Comparison:
    """Compare two loaded stores; raises UsageError when they share no cell."""
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
    timing = same_hw or allow_different_hardware
    notes: list[str] = []
    if not same_hw:
        notes.append(
            f"machine fingerprints differ (baseline {', '.join(fb)}; current {', '.join(fc)}): "
            + ("timing metrics compared anyway (--allow-different-hardware)" if timing
               else "timing metrics skipped, quality metrics compared")
        )
    _check_context(b_runs, c_runs, notes)
    hardware = {"baseline": fb, "current": fc, "same": same_hw, "timing_compared": timing}

    metrics = [m for m in METRICS.values() if timing or not m.timing]
    rng = _rng(seed)
    rows: list[dict[str, Any]] = []
    per_metric: dict[str, list[_Result]] = {m.key: [] for m in metrics}
    cells = []
    for key in common:
        b = b_runs[(b_runs["_key"] == key) & b_runs["analysed"]]
        c = c_runs[(c_runs["_key"] == key) & c_runs["analysed"]]
        cells.append((b, c))
        for m in metrics:
            res = compare_cell(b, c, m.key, n_resamples, rng)
            per_metric[m.key].append(res)
            rows.append(_row(labels[key], m, res))
    if len(common) > 1:
        for m in metrics:
            res = pooled(per_metric[m.key], cells, m.key, n_resamples, rng)
            rows.append(_row(ALL_CELLS, m, res))

    frame = pd.DataFrame(rows)
    frame["p_holm"] = stats.holm(frame["p"].to_numpy(dtype=float))
    frame["worse_than_allowed"] = [
        thresholds.worse_than_allowed(k, ch) for k, ch in zip(frame["metric"], frame["change"])
    ]
    frame["significant"] = frame["p_holm"] < thresholds.alpha
    frame["regression"] = frame["worse_than_allowed"] & frame["significant"]
    frame["verdict"] = [_verdict(r) for r in frame.itertuples()]
    return Comparison(
        baseline=_path(baseline), current=_path(current), rows=frame, thresholds=thresholds,
        hardware=hardware, warnings=notes,
        baseline_only=[labels[k] for k in b_keys if k not in set(c_keys)],
        current_only=[labels[k] for k in c_keys if k not in set(b_keys)],
    )


def _path(data: StoreData) -> str:
    return str(data.path) + (f" (grid {data.grid})" if data.grid else "")


def _row(cell: str, m: Metric, r: _Result) -> dict[str, Any]:
    return {
        "cell": cell, "metric": m.key, "label": m.label, "kind": m.kind, "unit": m.unit,
        "baseline": r.baseline, "current": r.current, "change": r.change,
        "change_low": r.low, "change_high": r.high, "p": r.p, "test": r.test, "note": r.note,
        **{k: r.extra.get(k, math.nan) for k in (
            "n_baseline", "n_current", "baseline_success", "current_success", "success_change",
            "baseline_mean", "current_mean")},
    }


def _verdict(r: Any) -> str:
    if r.regression:
        return "REGRESSION"
    m = METRICS[r.metric]
    null = 0.0 if m.kind == "diff" else 1.0
    if not math.isfinite(r.change) and not (r.change == math.inf):
        return "n/a"
    worse = (r.change > null) == m.higher_is_worse and r.change != null
    if r.significant:
        return "worse (within threshold)" if worse else "better"
    return "worse (n.s.)" if r.worse_than_allowed else "ok"


def compare_paths(
    baseline: str | Path, current: str | Path, thresholds: Thresholds = Thresholds(), *,
    grid: str | None = None, **kwargs: Any,
) -> Comparison:
    """Load both sides (store files or export folders) and compare them."""
    return compare_data(load_side(baseline, grid), load_side(current, grid), thresholds, **kwargs)
