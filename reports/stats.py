"""The statistics of the report: small pure functions over numpy arrays.

Every interval is a 95% percentile bootstrap with a fixed seed, so the same store always
renders the same report. Seeds are paired across placements, so comparisons resample
*pairs* (seeds), never the two arms independently. Functions that cannot say anything
(too few seeds, all differences zero) return NaN together with a reason instead of raising.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np
import scipy.stats

N_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20261125
#: Cliff's delta bootstrap builds an (resamples x n x n) array; beyond this n, subsample resamples.
_CLIFF_MAX_CELLS = 20_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; ``note`` says why a value is missing."""

    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0
    note: str = ""


@dataclass(frozen=True)
class TestResult:
    """A p-value, the test that produced it and, when it is NaN, why."""

    p: float
    test: str
    note: str = ""


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(SEED if seed is None else seed)


def _finite(x: np.ndarray | list[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def _median_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def bootstrap_ci(
    x: np.ndarray | list[float],
    statistic: Callable[..., np.ndarray] = _median_axis,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int | None = None,
) -> Estimate:
    """Statistic of the finite values of ``x`` with a percentile bootstrap CI.

    ``statistic`` must be vectorized (take ``axis``), as numpy reductions are. With one
    value the estimate is returned without an interval; with none, NaN.
    """
    x = _finite(x)
    if x.size == 0:
        return Estimate(math.nan, n=0, note="no values")
    value = float(statistic(x, axis=-1))
    if x.size == 1:
        return Estimate(value, n=1, note="no interval with 1 value")
    if np.all(x == x[0]):
        return Estimate(value, value, value, n=int(x.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            (x,), statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE,
            method="percentile", vectorized=True, axis=-1, rng=_rng(seed),
        )
    ci = res.confidence_interval
    return Estimate(value, float(ci.low), float(ci.high), n=int(x.size))


def paired_difference(
    a: np.ndarray | list[float], b: np.ndarray | list[float], *,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Estimate:
    """Median of the paired differences ``b - a`` with a bootstrap CI that resamples pairs.

    Pairs with a non-finite member are dropped (the caller counts them).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = b - a
    return bootstrap_ci(d, n_resamples=n_resamples, seed=seed)


def wilcoxon_p(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> TestResult:
    """Two-sided Wilcoxon signed-rank p for paired ``a``, ``b`` (scipy's exact/normal choice)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = b - a
    d = d[np.isfinite(d)]
    name = "Wilcoxon signed-rank"
    if d.size < 2:
        return TestResult(math.nan, name, f"no test possible with {d.size} paired seed(s)")
    if np.all(d == 0):
        return TestResult(math.nan, name, "all paired differences are zero")
    nonzero = d[d != 0]  # zero_method="wilcox": zero differences carry no sign
    tied = np.unique(np.abs(nonzero)).size < nonzero.size
    if (tied or nonzero.size < d.size) and nonzero.size <= _EXACT_MAX:
        # scipy would run a generic permutation test here (~0.4 s a call); the same exact
        # sign-flip distribution, enumerated with numpy, takes microseconds.
        return TestResult(_signflip_p(nonzero), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.wilcoxon(
            d, zero_method="wilcox", alternative="two-sided",
            method="auto" if not tied else "asymptotic",
        )
    return TestResult(float(res.pvalue), name)


_EXACT_MAX = 16


def _signflip_p(d: np.ndarray) -> float:
    """Exact two-sided signed-rank p of nonzero differences with ties (all 2^n sign flips)."""
    ranks = scipy.stats.rankdata(np.abs(d))
    t_obs = ranks[d > 0].sum()
    m = d.size
    flips = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    t = flips @ ranks
    eps = 1e-9 * max(1.0, t_obs)
    p = 2 * min((t >= t_obs - eps).mean(), (t <= t_obs + eps).mean())
    return float(min(p, 1.0))


def cliffs_delta(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Cliff's delta: P(X > Y) - P(X < Y) over all pairs of values (a two-sample effect size)."""
    x, y = _finite(x), _finite(y)
    if x.size == 0 or y.size == 0:
        return math.nan
    return float(np.sign(x[:, None] - y[None, :]).mean())


def cliffs_delta_paired_ci(
    a: np.ndarray | list[float], b: np.ndarray | list[float], *,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Estimate:
    """Cliff's delta of ``b`` over ``a`` with a CI from resampling seeds (pairs kept together)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = a.size
    if n == 0:
        return Estimate(math.nan, n=0, note="no paired values")
    value = cliffs_delta(b, a)
    if n == 1:
        return Estimate(value, n=1, note="no interval with 1 pair")
    signs = np.sign(b[:, None] - a[None, :])  # signs[i, j] compares b_i with a_j
    resamples = max(1, min(n_resamples, _CLIFF_MAX_CELLS // (n * n)))
    idx = _rng(seed).integers(0, n, size=(resamples, n))
    boot = signs[idx[:, :, None], idx[:, None, :]].mean(axis=(1, 2))
    low, high = np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return Estimate(value, float(low), float(high), n=n)


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


def km_medians_boot(t: np.ndarray, e: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """KM medians of many resamples at once (durations are integer epochs)."""
    ti = np.rint(t).astype(int)
    horizon = int(ti.max()) + 1
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    ts, es = ti[idx].ravel(), e[idx].ravel()
    ended = np.zeros((idx.shape[0], horizon + 1))
    np.add.at(ended, (rows, ts), 1)
    hits = np.zeros_like(ended)
    np.add.at(hits, (rows[es], ts[es]), 1)
    n = idx.shape[1]
    at_risk = n - np.concatenate([np.zeros((idx.shape[0], 1)), np.cumsum(ended, 1)[:, :-1]], 1)
    hazard = np.divide(hits, at_risk, out=np.zeros_like(hits), where=at_risk > 0)
    fraction = 1.0 - np.cumprod(1.0 - hazard, axis=1)
    reached = fraction >= 0.5 - 1e-12
    return np.where(reached.any(axis=1), reached.argmax(axis=1), np.inf).astype(float)


def km_median_ci(
    durations: np.ndarray | list[float], events: np.ndarray | list[bool], *,
    n_resamples: int = N_RESAMPLES, seed: int | None = None,
) -> Estimate:
    """KM median epochs-to-target with a bootstrap CI that resamples seeds.

    Each resample recomputes the KM curve, so censored seeds stay censored (never counted
    as the budget). ``inf`` in the value or a bound means "not reached within the budget".
    """
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    if t.size == 0:
        return Estimate(math.nan, n=0, note="no runs")
    value = km_median(t, e)
    if t.size == 1:
        return Estimate(value, n=1, note="no interval with 1 seed")
    idx = _rng(seed).integers(0, t.size, size=(n_resamples, t.size))
    boot = km_medians_boot(t, e, idx)
    q = [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2]
    low, high = np.quantile(boot, q, method="inverted_cdf")
    return Estimate(value, float(low), float(high), n=int(t.size))


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
    return TestResult(float(scipy.stats.chi2.sf(stat, k - 1)), name)


def cliff_magnitude(delta: float) -> str:
    """Romano et al. (2006) thresholds, for the words of the summary."""
    if not math.isfinite(delta):
        return "unknown"
    d = abs(delta)
    return "negligible" if d < 0.147 else "small" if d < 0.33 else "medium" if d < 0.474 else "large"
