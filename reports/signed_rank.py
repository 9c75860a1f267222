"""The Wilcoxon signed-rank test of the report, for one set of paired differences or many.

One definition serves the report (``reports.stats.wilcoxon_p``, one row) and ``bnbench
plan`` (``reports.power``, thousands of simulated studies at once). The branches follow
``scipy.stats.wilcoxon(zero_method="wilcox")``: the exact null distribution without ties or
zeros up to 50 pairs; with ties or zeros the exact sign-flip distribution of the midranks up
to 16 nonzero differences (scipy would run a generic permutation test, ~0.4 s a call), else
the normal approximation with the tie correction and no continuity correction.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.special

#: Exact sign-flip distribution with ties or zeros up to this many nonzero differences.
EXACT_MAX_TIED = 16
#: ``scipy.stats.wilcoxon(method="auto")``: exact without ties or zeros up to this many pairs.
EXACT_MAX_UNTIED = 50



def signed_rank_p(d: np.ndarray) -> np.ndarray:
    """Two-sided signed-rank p of every row of ``d`` (zeros dropped), branches as above.

    The exact
    distribution of the sum of positive (doubled, so integer) ranks is built by dynamic
    programming, one row per simulated study. NaN where fewer than 2 pairs or all zero.
    """
    d = np.atleast_2d(np.asarray(d, float))
    if d.shape[0] == 1:
        return np.array([_one_row_p(d[0])])
    rows, n = d.shape
    a = np.abs(d)
    nonzero = a != 0
    m = nonzero.sum(1)
    zeros = n - m
    ranks = pd.DataFrame(np.where(nonzero, a, -1.0)).rank(axis=1).to_numpy()  # zeros rank first...
    ranks = np.where(nonzero, ranks - zeros[:, None], 0.0)  # ...then drop out
    t_plus = (ranks * (d > 0)).sum(1)
    same = (a[:, :, None] == a[:, None, :]) & nonzero[:, :, None] & nonzero[:, None, :]
    group = same.sum(2)  # size of each nonzero value's tie group (0 for zeros)
    tie_term = (group.astype(float) ** 2 - 1).clip(0).sum(1)  # sum over groups of t^3 - t
    tied = (group > 1).any(1)
    exact = np.where(tied | (zeros > 0), m <= EXACT_MAX_TIED, n <= EXACT_MAX_UNTIED)
    p = np.full(rows, np.nan)

    asym = ~exact & (m >= 1)
    if asym.any():
        mm = m[asym].astype(float)
        var = (mm * (mm + 1) * (2 * mm + 1) - tie_term[asym] / 2) / 24
        z = (t_plus[asym] - mm * (mm + 1) / 4) / np.sqrt(var)
        p[asym] = np.minimum(1.0, 2 * scipy.special.ndtr(-np.abs(z)))  # normal sf
    ex = exact & (m >= 1)
    if ex.any():
        # Rows without ties or zeros share one null distribution (ranks 1..n): build it once.
        plain = ex & ~tied & (zeros == 0)
        w = np.rint(2 * ranks).astype(int)  # midranks are multiples of 1/2
        for sel in (plain, ex & ~plain):
            if sel.any():
                first = np.flatnonzero(sel)[:1] if sel is plain else np.flatnonzero(sel)
                cum = _one_cdf(tuple(sorted(w[first[0]])))[None, :] if first.size == 1 else _signed_rank_cdf(w[first])
                cum = np.broadcast_to(cum, (int(sel.sum()), cum.shape[1])) if sel is plain else cum
                t2 = np.rint(2 * t_plus[sel]).astype(int)
                below = np.take_along_axis(cum, t2[:, None], 1)[:, 0]  # P(T <= t)
                above = 1 - np.take_along_axis(cum, (t2 - 1).clip(0)[:, None], 1)[:, 0] * (t2 > 0)
                p[sel] = np.minimum(1.0, 2 * np.minimum(below, above))  # P(T >= t) above
    p[(n < 2) | (m == 0)] = np.nan
    return p


def _one_row_p(d: np.ndarray) -> float:
    """``signed_rank_p`` of one sample, the same arithmetic on 1-D arrays: the report tests
    one cell at a time (1,800 calls for 10,000 runs), where the batch's n x n tie matrix and
    2-D ranking cost most of a call. Equal to the batch exactly (test_vectorized.py)."""
    n = d.size
    a = np.abs(d)
    nonzero = a != 0
    m = int(nonzero.sum())
    if n < 2 or m == 0:
        return np.nan
    zeros = n - m
    # midranks among the nonzero |d| (= the batch's rank among all, minus zeros); rankdata's
    # own formula, from the tie groups np.unique finds anyway (rankdata costs ~0.2 ms a call)
    _, group_of, counts = np.unique(a[nonzero], return_inverse=True, return_counts=True)
    upto = np.cumsum(counts)
    ranks = np.zeros(n)
    ranks[nonzero] = (0.5 * (upto + (upto - counts) + 1))[group_of]
    t_plus = float(ranks[d > 0].sum())  # sums of half-integers: exact in any order
    groups = counts.astype(float)
    tied = bool((counts > 1).any())
    if not (m <= EXACT_MAX_TIED if tied or zeros > 0 else n <= EXACT_MAX_UNTIED):
        tie_term = float((groups**3 - groups).sum())
        mm = float(m)
        var = (mm * (mm + 1) * (2 * mm + 1) - tie_term / 2) / 24
        z = (t_plus - mm * (mm + 1) / 4) / np.sqrt(var)
        return float(min(1.0, 2 * scipy.special.ndtr(-abs(z))))  # norm.sf(x) is ndtr(-x), without its ~0.2 ms of argument checks
    w = np.rint(2 * ranks).astype(int)
    cum = _one_cdf(tuple(sorted(w)))
    t2 = int(np.rint(2 * t_plus))
    below = cum[t2]  # P(T <= t)
    above = 1 - cum[t2 - 1] if t2 > 0 else 1.0  # P(T >= t)
    return float(min(1.0, 2 * min(below, above)))


@lru_cache(maxsize=4096)
def _one_cdf(w: tuple[int, ...]) -> np.ndarray:
    """``_signed_rank_cdf`` of one weight set, cached by the sorted weights (the null
    distribution does not depend on their order, and its integer counts are exact in any
    order): a report tests thousands of cells whose samples share a few tie patterns."""
    cum = _signed_rank_cdf(np.array([w]))[0]
    cum.flags.writeable = False
    return cum


def _signed_rank_cdf(w: np.ndarray) -> np.ndarray:
    """Null CDF of the sum of the (integer) weights whose sign is +, one row per weight set.

    Dynamic programming: each weight joins the sum with probability 1/2.
    """
    top = int(w.sum(1).max())
    counts = np.zeros((w.shape[0], top + 1))
    counts[:, 0] = 1.0
    cols = np.arange(top + 1)
    for j in range(w.shape[1]):
        src = cols[None, :] - w[:, j][:, None]
        counts = counts + np.where(src >= 0, np.take_along_axis(counts, src.clip(0), 1), 0.0)
    return np.cumsum(counts, 1) / counts.sum(1, keepdims=True)
