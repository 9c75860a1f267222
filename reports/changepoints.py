"""Step changes in a metric's history over commits (PELT, ``ruptures``), with step sizes.

A history is one value per commit. Each value is divided by a robust noise scale (the
median absolute difference between neighbouring commits, never below the median standard
error the commits report themselves), so the penalty is in units of noise and one penalty
serves every metric. ``PENALTY_PER_LOG_N`` was chosen by simulation (see
``false_alarm_rate`` and docs/ci.md): flat histories of 20-200 commits, Gaussian or
heavy-tailed (t, 3 df) noise, get a false step in at most a few percent.
Timings change by factors, so they are analysed on the log scale and steps are ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import ruptures
import scipy.ndimage
import scipy.stats

#: Penalty = PENALTY_PER_LOG_N * log(n) per step, in squared noise units (see module doc).
PENALTY_PER_LOG_N = 5.0
#: A step is only found once this many commits exist on each side of it (an outlier
#: commit, or two, is not a step).
MIN_SEGMENT = 3
CONFIDENCE = 0.95
#: Residuals from a running median are clipped at this many noise units (Huber's 2.5).
CLIP = 2.5
#: MAD of differences of N(0, s^2) values is 0.6745 * sqrt(2) * s.
_MAD_DIFF = scipy.stats.norm.ppf(0.75) * math.sqrt(2)


@dataclass(frozen=True)
class Step:
    """A step between ``index - 1`` and ``index``: the mean after minus the mean before."""

    index: int  # first commit of the new level
    before: float  # mean level of the segment before (original units)
    after: float
    change: float  # after - before, or after / before for ratio metrics
    low: float  # CONFIDENCE interval of ``change`` (Welch)
    high: float
    ratio: bool


def noise_scale(y: np.ndarray, point_se: np.ndarray | None = None) -> float:
    """Robust noise of a history: MAD of neighbour differences, floored by the points' own SE.

    A step moves one difference only, so it barely moves the median; the floor keeps a
    deterministic metric (identical values at every commit) from making noise zero.
    """
    d = np.abs(np.diff(y))
    scale = float(np.median(d)) / _MAD_DIFF if d.size else 0.0
    if point_se is not None:
        se = point_se[np.isfinite(point_se) & (point_se > 0)]
        if se.size:
            scale = max(scale, float(np.median(se)))
    return scale


def tame_outliers(z: np.ndarray) -> np.ndarray:
    """Pull values further than ``CLIP`` noise units from a running median (of 5) back to it.

    Least squares is thrown by a single wild commit (a busy CI runner); a running median
    follows a real step, so clipping the residuals keeps steps and drops outliers.
    """
    center = scipy.ndimage.median_filter(z, size=5, mode="nearest")
    return center + np.clip(z - center, -CLIP, CLIP)


def breakpoints(y: np.ndarray, scale: float, penalty_per_log_n: float = PENALTY_PER_LOG_N,
                min_size: int = MIN_SEGMENT) -> list[int]:
    """Indices where a new level starts (PELT, least-squares cost, penalty c*log n)."""
    n = len(y)
    if n < 2 * min_size or not scale > 0:
        return []
    z = tame_outliers(np.asarray(y, dtype=float) / scale).reshape(-1, 1)
    # KernelCPD with the linear kernel is PELT with the least-squares cost, in C.
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_size).fit(z)
    return [int(b) for b in algo.predict(pen=penalty_per_log_n * math.log(n)) if b < n]


def _welch(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    if before.size < 2 or after.size < 2:
        return math.nan, math.nan
    if np.ptp(before) == 0 and np.ptp(after) == 0:
        d = float(after.mean() - before.mean())
        return d, d
    res = scipy.stats.ttest_ind(after, before, equal_var=False)
    ci = res.confidence_interval(CONFIDENCE)
    return float(ci.low), float(ci.high)


def detect_steps(values: np.ndarray, point_se: np.ndarray | None = None, *, ratio: bool = False,
                 penalty_per_log_n: float = PENALTY_PER_LOG_N) -> list[Step]:
    """Steps in a history, each with its size and a Welch interval over the adjacent segments.

    ``ratio``: the metric changes by factors (timings); analysed on the log scale, the size is
    the ratio of geometric means. ``point_se`` (same scale as ``values``) floors the noise.
    """
    y = np.asarray(values, dtype=float)
    if ratio:
        se = None if point_se is None else np.asarray(point_se, dtype=float) / y
        y = np.log(y)
    else:
        se = None if point_se is None else np.asarray(point_se, dtype=float)
    bps = breakpoints(y, noise_scale(y, se), penalty_per_log_n)
    edges = [0, *bps, len(y)]
    steps = []
    for i, b in enumerate(bps):
        before, after = y[edges[i]:b], y[b:edges[i + 2]]
        low, high = _welch(before, after)
        m0, m1 = float(before.mean()), float(after.mean())
        if ratio:
            steps.append(Step(b, math.exp(m0), math.exp(m1), math.exp(m1 - m0),
                              math.exp(low), math.exp(high), True))
        else:
            steps.append(Step(b, m0, m1, m1 - m0, low, high, False))
    return steps


def false_alarm_rate(n_commits: int, n_histories: int, *, noise: str = "normal", seed: int = 0,
                     penalty_per_log_n: float = PENALTY_PER_LOG_N) -> float:
    """Share of flat simulated histories (no step) in which any step is flagged."""
    rng = np.random.default_rng(seed)
    flagged = 0
    for _ in range(n_histories):
        e = rng.standard_normal(n_commits) if noise == "normal" else rng.standard_t(3, n_commits)
        flagged += bool(breakpoints(1.0 + 0.01 * e, noise_scale(0.01 * e), penalty_per_log_n))
    return flagged / n_histories
