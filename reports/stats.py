"""The statistics of the report: small pure functions over numpy arrays.

Every interval comes from ``reports.intervals.interval`` (the median: an order-statistic
interval with near-nominal coverage at 5-20 seeds; bootstraps with a fixed seed, so the same
store always renders the same report). Seeds are paired across placements, so comparisons
work on *pairs* (seeds), never the two arms independently. Functions that cannot say
anything (too few seeds, all differences zero) return NaN together with a reason instead of
raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable

import numpy as np
import scipy.special

from reports import intervals
from reports.signed_rank import EXACT_MAX_TIED, signed_rank_p
from reports.intervals import Interval

N_RESAMPLES = intervals.N_RESAMPLES
CONFIDENCE = intervals.CONFIDENCE
SEED = intervals.SEED
#: Exact sign-flip enumeration up to this many pairs (2^16 flips); normal approximation above.
_EXACT_MAX = EXACT_MAX_TIED  # the signed-rank test's limit (reports.signed_rank)


@dataclass(frozen=True)
class TestResult:
    """A p-value, the test that produced it and, when it is NaN, why."""

    p: float
    test: str
    note: str = ""


_rng = intervals.rng
#: Below 6 values no interval of a median reaches 95% (even [min, max] covers 1 - 2 * 0.5^n),
#: so the KM median (a median) gets no bootstrap interval there either.
MIN_MEDIAN_N = 6


def _few(n: int) -> str:
    return f"no 95% interval of a median from {n} seed(s) (6 needed)"


def _finite(x: np.ndarray | list[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def bootstrap_ci(
    x: np.ndarray | list[float], statistic: str | Callable[..., np.ndarray] = "median", *,
    unit: np.ndarray | list | None = None, n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Interval:
    """Statistic of the finite values of ``x`` with its 95% interval (``reports.intervals``)."""
    return intervals.interval(x, statistic, unit=unit, n_resamples=n_resamples, seed=seed)


def paired_difference(
    a: np.ndarray | list[float], b: np.ndarray | list[float], *, unit: np.ndarray | list | None = None,
) -> Interval:
    """Median of the paired differences ``b - a`` with its 95% interval (``paired_differences``
    of one group).

    Pairs with a non-finite member are dropped (the caller counts them).
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return paired_differences(d, np.zeros(d.shape, np.intp), 1, unit=unit).at(0)


def paired_differences(d: np.ndarray, group: np.ndarray, n_groups: int, *,
                       unit: np.ndarray | list | None = None) -> intervals.Intervals:
    """``paired_difference`` of the paired differences ``d`` (b - a) of each group at once: the
    median with its distribution-free order-statistic interval (``unit``: one mean per unit first)."""
    return intervals.median_intervals(d, group, n_groups, unit=unit)


def p_improve(a: np.ndarray | list[float], b: np.ndarray | list[float], *, higher: bool = True) -> Interval:
    """Paired effect size: P(a seed's ``b`` beats its ``a``), ties counting one half.

    Interval: Clopper–Pearson on k = wins + ties/2 of n pairs (beta quantiles, which accept
    a half-integer k); for whole k it is the exact binomial interval, never zero-width.
    ``p_improves`` of one group.
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return p_improves(d, np.zeros(d.shape, np.intp), 1, higher=higher).at(0)


def p_improves(d: np.ndarray, group: np.ndarray, n_groups: int, *, higher: bool = True) -> intervals.Intervals:
    """``p_improve`` of the paired differences ``d`` (b - a) of each group at once."""
    d, group = np.asarray(d, dtype=float), np.asarray(group, dtype=np.intp)
    keep = np.isfinite(d)
    d, group = d[keep], group[keep]
    n = np.bincount(group, minlength=n_groups)
    wins = np.bincount(group, weights=d > 0 if higher else d < 0, minlength=n_groups)
    k = wins + 0.5 * np.bincount(group, weights=d == 0, minlength=n_groups)  # whole and half counts: exact
    with np.errstate(invalid="ignore", divide="ignore"):
        point = np.where(n > 0, k / np.maximum(n, 1), math.nan)
    bounds = [_clopper_pearson(float(ki), ni) if ni else (math.nan, math.nan)
              for ki, ni in zip(k.tolist(), n.tolist())]
    low, high = (np.array([x[j] for x in bounds], dtype=float).reshape(n_groups) for j in (0, 1))
    return intervals.Intervals(point, low, high, n, ["" if ni else "no paired values" for ni in n.tolist()])


@lru_cache(maxsize=4096)
def _clopper_pearson(k: float, n: int) -> tuple[float, float]:
    """Clopper–Pearson bounds of k successes in n (cached: a big report asks for the same few
    (k, n) thousands of times, and each beta quantile costs a scipy distribution call)."""
    alpha = 1 - CONFIDENCE
    # beta quantiles: scipy.special's inverse incomplete beta, which scipy.stats.beta.ppf calls
    low = float(scipy.special.betaincinv(k, n - k + 1, alpha / 2)) if k > 0 else 0.0
    high = float(scipy.special.betaincinv(k + 1, n - k, 1 - alpha / 2)) if k < n else 1.0
    return low, high


def wilcoxon_p(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank p for paired ``a``, ``b`` (``wilcoxon_ps`` of one group)."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return wilcoxon_ps(d, np.zeros(d.shape, np.intp), 1)[0]


def wilcoxon_ps(d: np.ndarray, group: np.ndarray, n_groups: int) -> list[TestResult]:
    """``wilcoxon_p`` of the paired differences ``d`` (b - a) of each group: the groups of one
    size go to ``reports.signed_rank`` as the rows of one array (its one definition)."""
    d, group = np.asarray(d, dtype=float), np.asarray(group, dtype=np.intp)
    keep = np.isfinite(d)
    d, group = d[keep], group[keep]
    name = "Wilcoxon signed-rank"
    nonzero = np.bincount(group, weights=d != 0, minlength=n_groups)
    out = [TestResult(math.nan, name, "all paired differences are zero")] * n_groups
    for n, where, rows in intervals.sorted_groups(d, group, n_groups, sort=False):
        if n < 2:
            for i in where.tolist():
                out[i] = TestResult(math.nan, name, f"no test possible with {n} paired seed(s)")
            continue
        tested = nonzero[where] > 0
        for i, p in zip(where[tested].tolist(), signed_rank_p(rows[tested]).tolist() if tested.any() else []):
            out[i] = TestResult(float(p), name)
    return out


def _signflip_p(scores: np.ndarray) -> float:
    """Two-sided p of ``sum(scores)`` under random signs: P(|sum(s * |scores|)| >= |sum(scores)|).

    The paired permutation distribution: under "no effect" each pair's two members are
    exchangeable, which flips the sign of its score. All 2^n flips are enumerated up to
    ``_EXACT_MAX`` pairs; above, the normal approximation of that same distribution (mean 0,
    variance sum(scores^2)), whose A/A size was measured at 3.6-5.1% for 20-30 pairs.
    """
    v = np.abs(np.asarray(scores, dtype=float))
    obs = abs(float(np.sum(scores)))
    m = v.size
    if m > _EXACT_MAX:
        return float(2 * scipy.special.ndtr(-obs / math.sqrt(float(np.sum(v**2)))))  # normal sf
    total = np.abs(_sign_flips(m) @ v)
    return float(np.mean(total >= obs - 1e-9 * max(1.0, obs)))


@lru_cache(maxsize=_EXACT_MAX + 1)
def _sign_flips(m: int) -> np.ndarray:
    """All 2^m sign vectors of m pairs, one per row (read-only: shared between calls)."""
    signs = 1 - 2 * ((np.arange(2**m)[:, None] >> np.arange(m)) & 1)
    signs.flags.writeable = False
    return signs


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


# ----------------------------------------------------------------------- censored times


def kaplan_meier(durations: np.ndarray | list[float], events: np.ndarray | list[bool]):
    """Kaplan–Meier "fraction of seeds at target" by epoch.

    ``durations``: the epoch a run reached the target (event) or was censored at (its
    budget). Returns a DataFrame with one row per distinct time (plus time 0):
    ``epoch, at_risk, reached, censored, fraction`` where ``fraction`` is 1 - S(t).
    """
    import pandas as pd

    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    times = np.unique(t)
    at_risk = np.array([(t >= u).sum() for u in times])
    reached = np.array([((t == u) & e).sum() for u in times])
    censored = np.array([((t == u) & ~e).sum() for u in times])
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, reached / np.maximum(at_risk, 1), 0.0)
    surv = np.cumprod(1.0 - hazard)
    frame = pd.DataFrame(
        {"epoch": times, "at_risk": at_risk, "reached": reached, "censored": censored,
         "fraction": 1.0 - surv}
    )
    start = pd.DataFrame(
        {"epoch": [0.0], "at_risk": [t.size], "reached": [0], "censored": [0], "fraction": [0.0]}
    )
    return pd.concat([start, frame], ignore_index=True)


def km_median(durations: np.ndarray | list[float], events: np.ndarray | list[bool]) -> float:
    """First epoch at which the KM fraction at target reaches 0.5; ``inf`` if it never does."""
    t = np.asarray(durations, dtype=float)
    if t.size == 0:
        return math.nan
    curve = kaplan_meier(t, events)
    hit = curve.loc[curve["fraction"] >= 0.5 - 1e-12, "epoch"]
    return float(hit.iloc[0]) if len(hit) else math.inf


def km_medians(t: np.ndarray, e: np.ndarray, axis: int = -1) -> np.ndarray:
    """KM medians along ``axis`` of many samples at once (durations are integer epochs).

    Vectorized for ``reports.intervals``: ``t`` and ``e`` may carry leading batch dimensions.
    """
    t = np.moveaxis(np.asarray(t, dtype=float), axis, -1)
    e = np.moveaxis(np.asarray(e), axis, -1).astype(bool)
    shape, n = t.shape[:-1], t.shape[-1]
    ti = np.rint(t.reshape(-1, n)).astype(int)
    e2 = e.reshape(-1, n)
    b, width = ti.shape[0], int(ti.max()) + 2
    flat = (np.arange(b)[:, None] * width + ti).ravel()
    ended = np.bincount(flat, minlength=b * width).reshape(b, width).astype(float)
    hits = np.bincount(flat[e2.ravel()], minlength=b * width).reshape(b, width).astype(float)
    at_risk = n - np.concatenate([np.zeros((b, 1)), np.cumsum(ended, 1)[:, :-1]], 1)
    hazard = np.divide(hits, at_risk, out=np.zeros_like(hits), where=at_risk > 0)
    fraction = 1.0 - np.cumprod(1.0 - hazard, axis=1)
    reached = fraction >= 0.5 - 1e-12
    out = np.where(reached.any(axis=1), reached.argmax(axis=1), np.inf).astype(float)
    return out.reshape(shape) if shape else out[0]


def km_medians_boot(t: np.ndarray, e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """KM medians of the resamples ``idx`` (rows of indices) of one sample."""
    return km_medians_resampled(np.asarray(t, dtype=float)[None], np.asarray(e, dtype=bool)[None], idx)[0]


def km_medians_resampled(t: np.ndarray, e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """KM medians of the resamples ``idx`` (R, n) of each of many samples ``t``, ``e`` (C, n).

    The same numbers as ``km_medians(t[:, idx], e[:, idx])`` (the same sums and the same
    sequence of products), without building the (C, R, n) resamples: a resample is how often
    it drew each unit, so its exits and events at each epoch are one matrix product (sums of
    small integers, exact in float64), and the KM product runs over epochs, not resamples.
    """
    t, e = np.asarray(t, dtype=float), np.asarray(e, dtype=bool)
    n = t.shape[-1]
    draws = np.zeros((idx.shape[0], n))
    np.add.at(draws, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    ti = np.rint(t).astype(int)
    at_epoch = (ti[..., None] == np.arange(int(ti.max()) + 2)).astype(float)  # (C, n, width)
    ended = draws @ at_epoch  # (C, R, width): as km_medians from here on
    hits = draws @ (at_epoch * e[..., None])
    before = np.cumsum(ended, axis=-1) - ended
    at_risk = n - before
    hazard = np.divide(hits, at_risk, out=np.zeros_like(hits), where=at_risk > 0)
    fraction = 1.0 - np.cumprod(1.0 - hazard, axis=-1)
    reached = fraction >= 0.5 - 1e-12
    return np.where(reached.any(axis=-1), reached.argmax(axis=-1), np.inf).astype(float)


def _by_size(sizes: list[int]) -> dict[int, list[int]]:
    """Positions of the samples of each size, so samples of one size share one resampling draw."""
    out: dict[int, list[int]] = {}
    for i, n in enumerate(sizes):
        out.setdefault(n, []).append(i)
    return out


def _stacked(samples: list[tuple[np.ndarray, np.ndarray]], where: list[int],
             n: int) -> tuple[np.ndarray, np.ndarray]:
    """The (durations, events) samples at positions ``where``, all of size ``n``, as (C, n) arrays."""
    t = np.array([np.asarray(samples[i][0], dtype=float) for i in where]).reshape(len(where), n)
    e = np.array([np.asarray(samples[i][1], dtype=bool) for i in where]).reshape(len(where), n)
    return t, e


def km_medians_many(samples: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """``km_medians`` of each (durations, events) sample, one call per sample size (each
    sample's arithmetic is that of the sample alone); NaN for an empty sample."""
    out = [math.nan] * len(samples)
    for n, where in _by_size([len(t) for t, _ in samples]).items():
        if n:
            for i, m in zip(where, km_medians(*_stacked(samples, where, n)).tolist()):
                out[i] = m
    return out


def _block(n: int, n_resamples: int) -> int:
    """Samples per block, so that one block's work arrays stay near the CPU's cache size (measured:
    blocks of ~30 samples x 2000 resamples of 11 seeds run twice as fast as blocks of 300)."""
    return max(1, 600_000 // max(1, n * n_resamples))


def _distinct(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each sample row, first row of each code): equal rows of (durations, events)
    have equal bootstrap medians under one draw, so each distinct sample is resampled once
    (cells of a grid often share their epochs to target)."""
    _, first, code = np.unique(np.column_stack([t, e]), axis=0, return_index=True, return_inverse=True)
    return code.ravel(), first


def _km_medians_of(t: np.ndarray, e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``km_medians_resampled`` of samples (C, n) in blocks of ``_block`` samples: (C, R)."""
    step = _block(t.shape[1], idx.shape[0])
    return np.concatenate([km_medians_resampled(t[c:c + step], e[c:c + step], idx)
                           for c in range(0, len(t), step)])


def km_median_cis(
    samples: list[tuple[np.ndarray, np.ndarray]], *, n_resamples: int = N_RESAMPLES,
    seed: int | None = None,
) -> list[Interval]:
    """``km_median_ci`` of many (durations, events) samples, batched by sample size.

    Samples of one size share ``intervals.resample_indices`` (the draw each would get alone),
    so the numbers are those of one call per sample, without a Python loop over resamples.
    """
    out: list[Interval | None] = [None] * len(samples)
    for n, where in _by_size([len(t) for t, _ in samples]).items():
        t, e = _stacked(samples, where, n)
        if n == 0:
            for i in where:
                out[i] = Interval(math.nan, n=0, note="no runs")
            continue
        point = km_medians(t, e)
        low = np.full(len(where), math.nan)
        high = np.full(len(where), math.nan)
        if n >= MIN_MEDIAN_N:
            idx = intervals.resample_indices(n, n_resamples, seed)
            code, first = _distinct(t, e)
            low_u, high_u = intervals.percentile_bounds(_km_medians_of(t[first], e[first], idx))
            low, high = low_u[code], high_u[code]
        for j, i in enumerate(where):
            out[i] = (Interval(float(point[j]), float(low[j]), float(high[j]), n=n, method="percentile")
                      if n >= MIN_MEDIAN_N else Interval(float(point[j]), n=n, note=_few(n)))
    return out  # type: ignore[return-value]


def km_median_ci(
    durations: np.ndarray | list[float], events: np.ndarray | list[bool], *,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Interval:
    """KM median epochs-to-target with a bootstrap CI that resamples seeds.

    Each resample recomputes the KM curve, so censored seeds stay censored (never counted
    as the budget). ``inf`` in the value or a bound means "not reached within the budget".
    The percentile interval of ``intervals.interval((t, e), km_medians)``, computed by
    ``km_median_cis``.
    """
    return km_median_cis([(np.asarray(durations, dtype=float), np.asarray(events, dtype=bool))],
                         n_resamples=n_resamples, seed=seed)[0]


def _km_bound_values(m_ref: np.ndarray, m_b: np.ndarray, budget: int | np.ndarray,
                     upper: bool) -> np.ndarray:
    """KM median of b minus that of the reference, as a bound where a median is not reached.

    A median not reached is > ``budget``: for the upper bound of the difference the
    reference's counts as budget + 1 and b's as +inf; for the lower bound the other way round.
    """
    if upper:
        m_ref = np.where(np.isinf(m_ref), budget + 1.0, m_ref)
    else:
        m_b = np.where(np.isinf(m_b), budget + 1.0, m_b)
    with np.errstate(invalid="ignore"):
        return np.asarray(m_b - m_ref, dtype=float)


def _km_bound(budget: int, upper: bool) -> Callable[..., np.ndarray]:
    """``_km_bound_values`` as a bootstrap statistic of (t_ref, e_ref, t_b, e_b)."""
    def diff(t_ref: np.ndarray, e_ref: np.ndarray, t_b: np.ndarray, e_b: np.ndarray,
             axis: int = -1) -> np.ndarray:
        return _km_bound_values(km_medians(t_ref, e_ref, axis), km_medians(t_b, e_b, axis), budget, upper)
    return diff


def km_median_differences(
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], budgets: list[int], *,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> list[Interval]:
    """``km_median_difference`` of many seed-paired samples, batched by sample size.

    Both ends come from the same resamples (``intervals.resample_indices``, the draw each
    sample would get alone); the medians of each resample are computed once for both bounds.
    """
    out: list[Interval | None] = [None] * len(samples)
    for n, where in _by_size([len(s[0]) for s in samples]).items():
        if n == 0:
            for i in where:
                out[i] = Interval(math.nan, n=0, note="no paired values")
            continue
        cols = [np.array([np.asarray(samples[i][k], dtype=float) for i in where]) for k in range(4)]
        t_ref, e_ref, t_b, e_b = cols
        budget = np.array([budgets[i] for i in where], dtype=float)
        m_ref, m_b = km_medians(t_ref, e_ref), km_medians(t_b, e_b)
        point = np.where(np.isinf(m_ref) & np.isinf(m_b), math.nan,
                         np.where(np.isinf(m_ref), _km_bound_values(m_ref, m_b, budget, upper=True),
                                  _km_bound_values(m_ref, m_b, budget, upper=False)))
        low = np.full(len(where), math.nan)
        high = np.full(len(where), math.nan)
        if n >= MIN_MEDIAN_N:
            idx = intervals.resample_indices(n, n_resamples, seed)
            code_ref, first_ref = _distinct(t_ref, e_ref)
            code_b, first_b = _distinct(t_b, e_b)
            mr = _km_medians_of(t_ref[first_ref], e_ref[first_ref], idx)
            mb = _km_medians_of(t_b[first_b], e_b[first_b], idx)
            # each distinct (reference sample, sample, budget) once
            pairs, first, code = np.unique(np.column_stack([code_ref, code_b, budget]), axis=0,
                                           return_index=True, return_inverse=True)
            pr, pb = pairs[:, 0].astype(int), pairs[:, 1].astype(int)
            b = pairs[:, 2:3]
            low = intervals.percentile_bounds(_km_bound_values(mr[pr], mb[pb], b, upper=False))[0][code.ravel()]
            high = intervals.percentile_bounds(_km_bound_values(mr[pr], mb[pb], b, upper=True))[1][code.ravel()]
        for j, i in enumerate(where):
            out[i] = (Interval(float(point[j]), float(low[j]), float(high[j]), n=n, method="percentile")
                      if n >= MIN_MEDIAN_N else Interval(float(point[j]), n=n, note=_few(n)))
    return out  # type: ignore[return-value]


def km_median_difference(
    t_ref: np.ndarray, e_ref: np.ndarray, t_b: np.ndarray, e_b: np.ndarray, *, budget: int,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Interval:
    """Seed-paired difference of KM median epochs to target (b − reference), censoring-aware.

    The bootstrap resamples seed pairs and recomputes both KM curves, so censored runs stay
    censored. A median not reached is only known to exceed ``budget``: the interval's low end
    comes from lower bounds of the difference and its high end from upper bounds (the same
    resamples), so an end the data cannot bound is infinite. The point is NaN when neither
    median is reached, else the bound on the side the data give (the caller says "at least").
    Computed by ``km_median_differences``: the percentile intervals of
    ``intervals.interval((t_ref, e_ref, t_b, e_b), _km_bound(budget, upper))``.
    """
    return km_median_differences([(t_ref, e_ref, t_b, e_b)], [budget], n_resamples=n_resamples,
                                 seed=seed)[0]


def logrank_scores(durations: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Log-rank scores e_i − H(t_i), H the pooled Nelson–Aalen cumulative hazard.

    The two-group log-rank numerator O − E of a group is the sum of its members' scores.
    ``logrank_score_rows`` of one sample.
    """
    return logrank_score_rows(np.asarray(durations, dtype=float)[None], np.asarray(events, dtype=bool)[None])[0]


def logrank_score_rows(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``logrank_scores`` of each row of (count, m) durations and events.

    Each row is sorted; H at a time is the running sum, in time order, of d/n at each distinct
    event time (d events among n at risk) with 0 added at other times (x + 0.0 = x exactly).
    """
    t, e = np.asarray(t, dtype=float), np.asarray(e, dtype=bool)
    if np.isnan(t).any():  # it would sort last and count as at risk at every time
        raise ValueError("log-rank durations must not be NaN: censor a run at its budget")
    count, m = t.shape
    if not t.size:
        return np.zeros(t.shape)
    o = np.argsort(t, axis=1, kind="stable")
    ts, es = np.take_along_axis(t, o, 1), np.take_along_axis(e, o, 1)
    new = np.ones(t.shape, dtype=bool)
    new[:, 1:] = ts[:, 1:] != ts[:, :-1]  # a run of equal times starts (each row starts one)
    starts = np.flatnonzero(new)
    d = np.bincount(np.cumsum(new.ravel()) - 1, weights=es.ravel())  # events of each run
    at_risk = (m - starts % m).astype(float)  # the row's values from the run's first on
    step = np.zeros(t.size)
    step[starts] = np.where(d > 0, d / at_risk, 0.0)
    scores = es - np.cumsum(step.reshape(t.shape), axis=1)
    out = np.empty(t.shape)
    np.put_along_axis(out, o, scores, 1)
    return out


def paired_logrank(
    t_ref: np.ndarray, e_ref: np.ndarray, t_b: np.ndarray, e_b: np.ndarray,
) -> TestResult:
    """Seed-paired permutation log-rank test of epochs to target (two-sided).

    Under "no effect" the two runs of a seed are exchangeable, so the permutation
    distribution swaps them within each pair: a sign-flip test of the paired differences of
    log-rank scores (exact up to 16 pairs). A/A size measured in docs/report.md.
    ``paired_logranks`` of one group.
    """
    t_ref = np.asarray(t_ref, dtype=float)
    return paired_logranks(t_ref, e_ref, t_b, e_b, np.zeros(t_ref.shape, np.intp), 1)[0]


def paired_logranks(t_ref: np.ndarray, e_ref: np.ndarray, t_b: np.ndarray, e_b: np.ndarray,
                    group: np.ndarray, n_groups: int) -> list[TestResult]:
    """``paired_logrank`` of the seed pairs of each group (groups of one size scored at once)."""
    name = "paired log-rank (permutation)"
    group = np.asarray(group, dtype=np.intp)
    cols = [np.asarray(c, dtype=float) for c in (t_ref, e_ref, t_b, e_b)]
    out: list[TestResult] = [TestResult(math.nan, name)] * n_groups
    by_size = zip(*(intervals.sorted_groups(c, group, n_groups, sort=False) for c in cols))  # pairs in order
    for (n, where, tr), (_, _, er), (_, _, tb), (_, _, eb) in by_size:
        er, eb = er.astype(bool), eb.astype(bool)
        if n < 2:
            for i in where.tolist():
                out[i] = TestResult(math.nan, name, f"no test possible with {n} paired seed(s)")
            continue
        a = logrank_score_rows(np.concatenate([tr, tb], axis=1), np.concatenate([er, eb], axis=1))
        delta = a[:, n:] - a[:, :n]
        some = er.any(axis=1) | eb.any(axis=1)
        same = np.all(np.abs(delta) <= 1e-12, axis=1)  # = np.allclose(delta, 0, atol=1e-12)
        for j, i in enumerate(where.tolist()):
            if not some[j]:
                out[i] = TestResult(math.nan, name, "no run reached the target")
            elif same[j]:
                out[i] = TestResult(math.nan, name, "every seed pair reached the target at the same epoch")
            else:
                out[i] = TestResult(_signflip_p(delta[j][np.abs(delta[j]) > 1e-12]), name)
    return out


def mcnemar_exact(div_ref: np.ndarray, div_b: np.ndarray) -> TestResult:
    """Exact McNemar test of a paired binary outcome (divergence) on seed pairs.

    Only discordant pairs carry information: with r pairs where only the reference diverged
    and b where only the other did, p = binomtest(r, r + b, 1/2).
    """
    div_ref, div_b = np.asarray(div_ref, dtype=bool), np.asarray(div_b, dtype=bool)
    return mcnemar_counts(int(np.sum(div_ref & ~div_b)), int(np.sum(~div_ref & div_b)))


def mcnemar_counts(r: int, b: int) -> TestResult:
    """``mcnemar_exact`` from its discordant counts (the report counts them for all cells at once)."""
    name = "exact McNemar"
    if r + b == 0:
        return TestResult(math.nan, name, "no seed pair differs in divergence")
    return TestResult(_binomial_p(r, r + b), name)


@lru_cache(maxsize=4096)
def _binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial p of k in n at 1/2: scipy.stats.binomtest's, which for a
    symmetric null is twice the smaller tail, P(B <= min(k, n - k)) (cached: a grid's cells
    repeat a few (k, n))."""
    return float(min(1.0, 2 * intervals.binomial_half_cdf(min(k, n - k), n)))


def logrank(
    durations: np.ndarray | list[float], events: np.ndarray | list[bool], groups: np.ndarray | list,
) -> TestResult:
    """Log-rank test that the KM curves of two or more groups are equal (chi-square, k-1 df).

    An unpaired test: it ignores the seed pairing, which only makes it conservative here.
    """
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    g = np.asarray(groups)
    labels = np.unique(g)
    name = "log-rank"
    if labels.size < 2:
        return TestResult(math.nan, name, "fewer than two groups")
    if not e.any():
        return TestResult(math.nan, name, "no run reached the target")
    k = labels.size
    member = g[None, :] == labels[:, None]  # k x n
    observed = np.zeros(k)
    expected = np.zeros(k)
    var = np.zeros((k, k))
    for u in np.unique(t[e]):
        risk = t >= u
        n_j = (member & risk).sum(axis=1).astype(float)
        d_j = (member & (t == u) & e).sum(axis=1).astype(float)
        n_t, d_t = n_j.sum(), d_j.sum()
        observed += d_j
        expected += n_j * d_t / n_t
        if n_t > 1:
            frac = n_j / n_t
            var += d_t * (n_t - d_t) / (n_t - 1) * (np.diag(frac) - np.outer(frac, frac))
    diff = (observed - expected)[:-1]
    v = var[:-1, :-1]
    if not np.any(v):
        return TestResult(math.nan, name, "no variance (every run reached at the same epoch)")
    stat = float(diff @ np.linalg.pinv(v) @ diff)
    return TestResult(float(scipy.special.chdtrc(k - 1, stat)), name)  # chi-square sf
