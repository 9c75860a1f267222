"""The one interval function of the report and the gate, in the style of rliable's
``get_interval_estimates``: (data, statistic, resampling unit, method) -> point, low, high.

Why these methods: at the 5-20 seeds users run, the percentile bootstrap of a median covers
about 92-93% instead of 95% (measured; see docs/report.md). The median gets the
distribution-free order-statistic interval of Hettmansperger & Sheather (1986), interpolated
between neighbouring order statistics so that its coverage is close to nominal at every n
(the plain exact interval jumps between ~90% and ~98%). Other statistics get scipy's BCa
bootstrap. When several values share one measurement (seeds trained in one stacked
program share one timing), the *unit* is what is replicated: values are first reduced to
one per unit, so n counts units, and one unit is "one measurement", never a zero-width
interval.

Accuracies are counts over the validation set: ``as_counts`` turns them back into integers
so that ties are exact wherever a rank, sign, tie or median is computed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.special

CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 20261125
METHODS = ("auto", "order", "bca", "percentile")

Statistic = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval; ``note`` says why the interval is missing or weak."""

    point: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    method: str = ""
    note: str = ""
    #: bootstrap replicates of the statistic (``two_sample`` only: compare pools them over cells)
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def width(self) -> float:
        return self.high - self.low


def rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """The report's generator: a fixed seed, so the same store renders the same numbers.

    A Generator is passed through, so a caller can share one stream over many intervals.
    """
    return np.random.default_rng(SEED if seed is None else seed)


def as_counts(acc: np.ndarray | list[float] | float, n_val: np.ndarray | list[int] | int) -> np.ndarray:
    """Accuracies as integer counts of correct validation examples (NaN stays NaN).

    ``acc * n_val`` is a whole number up to float error; rounding it makes two runs with the
    same count exactly equal, so their difference is exactly 0 and ties are real ties.
    """
    acc = np.asarray(acc, dtype=float)
    n_val = np.broadcast_to(np.asarray(n_val, dtype=float), acc.shape)
    counts = np.rint(acc * n_val)
    return np.where(np.isfinite(acc) & np.isfinite(n_val), counts, np.nan)


def _statistic(statistic: str | Statistic) -> tuple[str, Statistic]:
    if callable(statistic):
        return getattr(statistic, "__name__", "statistic"), statistic
    named = {"median": np.median, "mean": np.mean}
    if statistic not in named:
        raise ValueError(f"unknown statistic {statistic!r} (allowed: {', '.join(named)} or a callable)")
    return statistic, named[statistic]


def per_unit(x: np.ndarray, unit: np.ndarray | list | None) -> np.ndarray:
    """One value per resampling unit (the mean of its members), in first-seen order."""
    if unit is None:
        return x
    unit = np.asarray(unit)
    if unit.shape != x.shape:
        raise ValueError(f"unit has shape {unit.shape}, data has shape {x.shape}")
    return per_unit_groups(x, np.zeros(x.shape, np.intp), unit)[0]


def per_unit_groups(x: np.ndarray, group: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``per_unit`` within each group at once: (one mean per (group, unit), its group), in
    first-seen order. Each mean sums its members in their order (``np.bincount``), as alone."""
    if not x.size:
        return x, group
    _, u = np.unique(unit, return_inverse=True)
    key = np.asarray(group, np.int64) * (int(u.max()) + 1) + u.ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(first)
    means = np.bincount(inverse, weights=x) / np.bincount(inverse)
    return means[order], np.asarray(group)[first][order]


def binomial_half_cdf(k: np.ndarray, n: int) -> np.ndarray:
    """P(B <= k) for B ~ Binomial(n, 1/2), k an integer array: 1 - I_{1/2}(k + 1, n - k), the
    regularized incomplete beta function that scipy.stats.binom's CDF evaluates (Boost's;
    within 2e-15 of it for n <= 10,000). From scipy.special: the report's main process never
    imports scipy.stats (~1.3 s on 2 cores, half its start; docs/performance.md)."""
    k = np.asarray(k)
    inside = np.clip(k, 0, max(n - 1, 0))
    return np.where(k < 0, 0.0, np.where(k >= n, 1.0, scipy.special.betaincc(inside + 1, n - inside, 0.5)))


@lru_cache(maxsize=256)
def order_statistic_bounds(n: int, confidence: float = CONFIDENCE) -> tuple[int, float, float]:
    """(k, lambda, coverage of the plain interval [x_(k), x_(n-k+1)]) for the median of n values.

    k is the largest (1-based) order with P(k <= B <= n-k) >= confidence, B ~ Binomial(n, 1/2);
    lambda interpolates towards the next order statistic (Hettmansperger & Sheather 1986).
    k = 0 means even [min, max] covers less than ``confidence``.
    """
    # cover(k) = P(k <= B <= n-k) for k = 0..n//2 + 1 (0 once 2k > n), in one vectorized call:
    # a pooled median of thousands of values would take ~n/2 scalar cdf calls (seconds)
    ks = np.arange(n // 2 + 2)
    covers = np.where(2 * ks <= n, binomial_half_cdf(n - ks, n) - binomial_half_cdf(ks - 1, n), 0.0)
    k = int(np.argmin(covers[1:] >= confidence))  # decreasing: the last k whose cover(k) qualifies
    if k == 0:
        return 0, 0.0, float(covers[1])
    g_k, g_next = float(covers[k]), float(covers[k + 1])
    share = (g_k - confidence) / (g_k - g_next)
    lam = (n - k) * share / (k + (n - 2 * k) * share)
    return k, float(lam), g_k


@dataclass(frozen=True)
class Intervals:
    """The intervals of many groups as columns (``median_intervals``, ``stats.p_improves``):
    a report of thousands of cells builds its table column-wise, not one Interval at a time."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    note: list[str]
    method: str = ""

    def at(self, i: int) -> Interval:
        """Group ``i`` as one Interval."""
        return Interval(float(self.point[i]), float(self.low[i]), float(self.high[i]), n=int(self.n[i]),
                        method=self.method, note=self.note[i])

    def pick(self, mask: np.ndarray, other: Intervals) -> Intervals:
        """These intervals where ``mask`` holds, ``other``'s elsewhere (same groups)."""
        return Intervals(*(np.where(mask, x, y) for x, y in ((self.point, other.point), (self.low, other.low),
                                                               (self.high, other.high), (self.n, other.n))),
                         [x if m else y for m, x, y in zip(mask.tolist(), self.note, other.note)], self.method)


def sorted_groups(x: np.ndarray, group: np.ndarray, n_groups: int, sort: bool = True):
    """(size n, the groups of that size, their values sorted as rows (count, n)) for each
    distinct group size: groups of one size are computed together, with the arithmetic of one.
    ``sort=False``: each row keeps the order of its group's values in ``x``."""
    sizes = np.bincount(group, minlength=n_groups)
    s = x[np.lexsort((x, group))] if sort else x[np.argsort(group, kind="stable")]
    starts = np.cumsum(sizes) - sizes
    for n in np.unique(sizes).tolist():
        where = np.flatnonzero(sizes == n)
        yield n, where, s[starts[where, None] + np.arange(n)]


def sorted_medians(rows: np.ndarray) -> np.ndarray:
    """``np.median`` of each already sorted row of (count, n) values, the same arithmetic (the
    middle value, or the mean of the middle two as ``np.mean`` takes it: their sum over 2)
    without its partition and dispatch (thousands of report cells)."""
    h = rows.shape[1] // 2
    return rows[:, h] if rows.shape[1] % 2 else (rows[:, h - 1] + rows[:, h]) / 2.0


def small_sample_note(n: int, *, by_unit: bool = False, all_equal: bool = False) -> str:
    """Why a sample of ``n`` values (per-unit means with ``by_unit``) has no proper interval:
    none, one, or all equal; "" otherwise. Shared by every interval method."""
    if n == 0:
        return "no values"
    if n == 1:
        return f"{'one measurement' if by_unit else 'one value'}: no interval"
    return f"all {n} values are equal" if all_equal else ""


def median_intervals(x: np.ndarray | list[float], group: np.ndarray, n_groups: int, *,
                     unit: np.ndarray | list | None = None, confidence: float = CONFIDENCE) -> Intervals:
    """The median of the finite values of each group with its interpolated order-statistic
    interval (``interval(method="order")`` is group 0 of one group). ``group``: 0..n_groups-1
    per value; ``unit``: values are first reduced to one mean per (group, unit)."""
    x, group = np.asarray(x, dtype=float), np.asarray(group, dtype=np.intp)
    if unit is not None and np.shape(unit) != x.shape:
        raise ValueError(f"unit has shape {np.shape(unit)}, data has shape {x.shape}")
    keep = np.isfinite(x)
    x, group = x[keep], group[keep]
    if unit is not None:
        x, group = per_unit_groups(x, group, np.asarray(unit)[keep])
    point, low, high = (np.full(n_groups, math.nan) for _ in range(3))
    count = np.zeros(n_groups, dtype=int)
    notes = [""] * n_groups
    for n, where, rows in sorted_groups(x, group, n_groups):
        count[where] = n
        if n <= 1:
            if n == 1:
                point[where] = rows[:, 0]
            note = small_sample_note(n, by_unit=unit is not None)
        else:
            point[where] = mid = sorted_medians(rows)
            k, lam, cover = order_statistic_bounds(n, confidence)
            if k == 0:
                lo, hi, note = rows[:, 0], rows[:, -1], f"[min, max] of {n} values covers only {cover:.1%}"
            else:
                lo = lam * rows[:, k] + (1 - lam) * rows[:, k - 1]
                hi = lam * rows[:, n - k - 1] + (1 - lam) * rows[:, n - k]
                note = ""
            equal = rows[:, 0] == rows[:, -1]  # sorted: ends equal = all equal
            low[where], high[where] = np.where(equal, mid, lo), np.where(equal, mid, hi)
            for i, e in zip(where.tolist(), equal.tolist()):
                notes[i] = small_sample_note(n, all_equal=True) if e else note
            continue
        for i in where.tolist():
            notes[i] = note
    return Intervals(point, low, high, count, notes, "order")


def _bootstrap(data: tuple[np.ndarray, ...], fn: Statistic, method: str, confidence: float,
               n_resamples: int, seed: int | None) -> tuple[float, float]:
    import scipy.stats  # here: the report's own intervals need none of it (binomial_half_cdf)

    with warnings.catch_warnings():  # BCa warns (and returns NaN) on degenerate resamples
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            data, fn, n_resamples=n_resamples, confidence_level=confidence, paired=len(data) > 1,
            method="BCa" if method == "bca" else "percentile", vectorized=True, axis=-1, rng=rng(seed),
        )
    if method == "percentile":
        low, high = percentile_bounds(np.asarray(res.bootstrap_distribution, dtype=float), confidence)
        return float(low), float(high)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def percentile_bounds(boot: np.ndarray, confidence: float = CONFIDENCE
                      ) -> tuple[np.ndarray, np.ndarray] | tuple[float, float]:
    """Percentile interval of each row (last axis) of bootstrap statistics.

    A row of finite values gets scipy.stats.bootstrap's percentile interval: its ``quantile``
    is Hyndman & Fan's definition 7, numpy's default (the two round differently, a few ulps
    apart; numpy's needs no scipy.stats import, see ``binomial_half_cdf``). "Not reached"
    (inf) is an order, not a number: a row holding one gets order statistics, and a resample
    whose statistic is undefined (NaN: could be anything) counts against both ends.
    """
    boot = np.asarray(boot, dtype=float)
    if boot.shape[-1] == 0:  # no replicate defined: no interval
        if boot.ndim == 1:
            return math.nan, math.nan
        nan = np.full(boot.shape[:-1], math.nan)
        return nan, nan.copy()
    alpha = (1 - confidence) / 2
    finite = np.all(np.isfinite(boot), axis=-1)
    plain_low, plain_high = np.quantile(np.where(finite[..., None], boot, 0.0), [alpha, 1 - alpha], axis=-1)
    low = np.quantile(np.where(np.isnan(boot), -np.inf, boot), alpha, axis=-1, method="inverted_cdf")
    high = np.quantile(np.where(np.isnan(boot), np.inf, boot), 1 - alpha, axis=-1, method="inverted_cdf")
    low, high = np.where(finite, plain_low, low), np.where(finite, plain_high, high)
    return (float(low), float(high)) if boot.ndim == 1 else (low, high)  # one sample: plain floats


def resample_indices(n: int, n_resamples: int = N_RESAMPLES, seed: int | None = None) -> np.ndarray:
    """The (n_resamples, n) row indices scipy.stats.bootstrap draws for paired data of n units.

    The same generator, seed and call as ``_bootstrap``: every sample of n units gets the same
    resamples, so many samples of one size can share one draw (``stats.km_median_cis``).
    """
    return rng(seed).integers(0, n, (n_resamples, n))


def interval(
    data: np.ndarray | list[float] | tuple[np.ndarray, ...], statistic: str | Statistic = "median", *,
    unit: np.ndarray | list | None = None, method: str = "auto", confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Interval:
    """``statistic`` of the finite values of ``data`` with a ``confidence`` interval.

    ``unit``: the resampling unit of each value (e.g. the program that timed it); values are
    reduced to one per unit first. ``method``: ``order`` (median only: interpolated
    order-statistic interval, distribution-free), ``bca`` or ``percentile`` (scipy
    bootstrap; ``statistic`` must then be vectorized, taking ``axis``), ``auto`` = ``order``
    for the median, else ``bca``. A tuple of equally long arrays is paired data (row i of
    every array is one unit, resampled together) for a ``statistic(*arrays, axis)``, e.g.
    durations and events. Never raises on small data: a missing interval is NaN with a note.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (allowed: {', '.join(METHODS)})")
    if isinstance(data, tuple):
        return _paired_interval(data, statistic, method, confidence, n_resamples, seed)
    name, fn = _statistic(statistic)
    if method == "auto":
        method = "order" if fn is np.median else "bca"
    if method == "order" and fn is not np.median:
        raise ValueError("method 'order' is the interval of the median only")
    x = np.asarray(data, dtype=float)
    if method == "order":  # the one definition: a single group of median_intervals
        return median_intervals(x, np.zeros(x.shape, np.intp), 1, unit=unit, confidence=confidence).at(0)
    keep = np.isfinite(x)
    x = per_unit(x[keep], None if unit is None else np.asarray(unit)[keep])
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, n=0, method=method, note=small_sample_note(0))
    point = float(fn(x, axis=-1))
    if n == 1:
        return Interval(point, n=1, method=method, note=small_sample_note(1, by_unit=unit is not None))
    if np.all(x == x[0]):
        return Interval(point, point, point, n=n, method=method, note=small_sample_note(n, all_equal=True))
    low, high = _bootstrap((x,), fn, method, confidence, n_resamples, seed)
    note = "" if math.isfinite(low) and math.isfinite(high) else "bootstrap degenerate"
    return Interval(point, low, high, n=n, method=method, note=note)


def _paired_interval(data: tuple[np.ndarray, ...], statistic: str | Statistic, method: str,
                     confidence: float, n_resamples: int, seed: int | None) -> Interval:
    """Several columns resampled together (rows are the units); bootstrap methods only."""
    if not callable(statistic):
        raise ValueError("paired data needs a callable statistic(*columns, axis)")
    method = "percentile" if method == "auto" else method
    if method == "order":
        raise ValueError("method 'order' is the interval of the median of one column only")
    cols = tuple(np.asarray(c, dtype=float) for c in data)
    n = int(cols[0].size)
    if n == 0:
        return Interval(math.nan, n=0, method=method, note=small_sample_note(0))
    point = float(statistic(*cols, axis=-1))
    if n == 1:
        return Interval(point, n=1, method=method, note=small_sample_note(1))
    low, high = _bootstrap(cols, statistic, method, confidence, n_resamples, seed)
    return Interval(point, low, high, n=n, method=method)


def two_sample(
    x: tuple[np.ndarray, ...], y: tuple[np.ndarray, ...], statistic: Statistic, *,
    method: str = "percentile", confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
    seed: int | np.random.Generator | None = None,
) -> Interval:
    """``statistic(*x, *y, axis)`` of two independent samples, each resampled on its own.

    The unpaired counterpart of :func:`interval` (``bnbench compare``: baseline and current
    runs are different processes). The resampling unit is a row of each sample: ``x`` and
    ``y`` are tuples of equally long columns (e.g. durations and events) kept together.
    ``method``: ``percentile`` or ``bca``. The replicates come back with the interval.
    """
    if method not in ("percentile", "bca"):
        raise ValueError(f"unknown method {method!r} for two samples (allowed: percentile, bca)")
    x = tuple(np.asarray(col) for col in x)
    y = tuple(np.asarray(col) for col in y)
    nx, ny = int(x[0].shape[-1]), int(y[0].shape[-1])
    point = float(statistic(*x, *y, axis=-1)) if nx and ny else math.nan
    if min(nx, ny) < 2:
        return Interval(point, n=nx + ny, method=method, note="no interval with fewer than 2 units a side")

    def on_rows(ix: np.ndarray, iy: np.ndarray, axis: int = -1) -> np.ndarray:
        ix, iy = np.asarray(ix, dtype=np.intp), np.asarray(iy, dtype=np.intp)  # scipy may pass floats
        return statistic(*(c[ix] for c in x), *(c[iy] for c in y), axis=-1)

    import scipy.stats  # here: the report's own intervals need none of it (binomial_half_cdf)

    with warnings.catch_warnings():  # BCa warns on degenerate resamples
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            (np.arange(nx), np.arange(ny)), on_rows, n_resamples=n_resamples, paired=False,
            confidence_level=confidence, method="BCa" if method == "bca" else "percentile",
            vectorized=True, axis=-1, rng=rng(seed),
        )
    boot = np.asarray(res.bootstrap_distribution, dtype=float)
    if method == "percentile":
        low, high = percentile_bounds(boot, confidence)
    else:
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(point, low, high, n=nx + ny, method=method, replicates=boot)
