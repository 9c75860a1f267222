"""Interactions: does an arm's effect depend on another factor, and which arm wins overall?

An *arm* is a combination of the compared factors (``bench.cells.Arms``: by default
normalizer x placement, e.g. "none", "batch before", "layer after").

The same seed appears in every cell (seed s gives every cell the same data order and initial
weights), so a seed's effect of an arm is shared across cells. Every test and interval here treats
the *seed* as the random unit: permutations stay within a seed, intervals resample or vary
whole seeds. Nothing here turns into a finding without a test whose error rate is controlled.

(a) ``bn_effect_by_level``: for every arm other than the reference and every level of
every other varying factor, the seed-paired difference against the reference (median with a
bootstrap CI that resamples pairs), pooled over the cells at that level; a description, not a
test. ``interaction_tests`` asks, per factor, whether the effect differs between levels: a
permutation test that reassigns the factor's level labels only *within* a block (one seed at
one combination of the other factors), so a seed-specific effect shared across cells cannot
inflate or deflate the null; Holm-corrected across the interaction tests.

(b) ``probability_of_improvement``: P(a seed of arm A beats the same seed of B), pooled
over cells; its interval treats seeds as clusters (``seed_clustered_proportion``).
``performance_profile``: the fraction of cells where an arm's median is within tau of the
best arm's.

Inputs are ``reports.load.StoreData``; outputs are tidy DataFrames. TF-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import scipy.special

from bench.cells import PairingError
from reports import metrics as metric_table
from reports import stats
from reports.intervals import Interval
from reports.load import StoreData

#: metric key (``reports.metrics``) -> the column of the prepared runs frame it is analysed on
METRICS = {"final_val_acc": "final_val_acc", "epochs_to_target": "ett_rank"}
N_PERMUTATIONS = 5000


@dataclass
class Interactions:
    """Both tables of part (a)."""

    effects: pd.DataFrame  # factor, level, arm, metric, n_pairs, n_dropped, diff, diff_low, diff_high, note
    tests: pd.DataFrame  # factor, arm, metric, levels, n_blocks, stat, p, p_holm, flagged


def _analysed(data: StoreData, diverged_value: float | None) -> pd.DataFrame:
    """Analysed runs with ``ett_rank`` (censored = budget + 1, as reports.tables ranks them).

    ``diverged_value``: when given, a diverged run's final accuracy is taken to be this
    (e.g. 0.1, chance on 10 classes) instead of being dropped with its pair. Columns: cell,
    arm, seed, status, the metrics' and the cell factors'.
    """
    # only what the analyses read: the pairing merges copy every column they are given
    keep = ["cell", "arm", "seed", "status", "epochs_budget", *METRICS, *data.cell_factors]
    runs = data.runs.loc[data.runs["analysed"], list(dict.fromkeys(keep))].copy()
    runs["ett_rank"] = runs["epochs_to_target"].astype(float).fillna(runs["epochs_budget"] + 1.0)
    if diverged_value is not None:
        runs.loc[runs["status"] == "diverged", "final_val_acc"] = diverged_value
    return runs


def paired_frame(runs: pd.DataFrame, reference: str, other: str, column: str) -> pd.DataFrame:
    """One row per (cell, seed) with both arms: the cell's factor levels and ``d = other - ref``."""
    return _Pairs(runs).frame(reference, other, column)


class _Pairs:
    """Seed pairs of one runs frame, arm against arm: what ``paired_frame`` returns, with the
    (cell, seed) keys computed once for every pair of arms.

    The other arm's rows in their order (as an inner merge on cell and seed keeps them),
    ``<column>_ref`` beside them. Why not ``merge``: the report pairs 20 times per load, and
    a lookup of integer (cell, seed) keys is a fraction of a merge
    (tests/report_tests/test_vectorized_interactions.py). A (cell, arm, seed) holds one run
    (``reports.load`` rejects duplicates), so each row pairs with at most one.
    """

    def __init__(self, runs: pd.DataFrame) -> None:
        self.runs = runs
        self.rest = runs[[c for c in runs.columns if c != "arm"]]
        self.arm = runs["arm"].to_numpy()
        cell_codes = pd.factorize(runs["cell"])[0].astype(np.int64)
        seed_codes, seeds = pd.factorize(runs["seed"])
        self.key = cell_codes * (len(seeds) + 1) + seed_codes
        arm_codes = pd.factorize(self.arm)[0].astype(np.int64)
        twice = pd.Index(self.key * (arm_codes.max(initial=0) + 1) + arm_codes).duplicated()
        if twice.any():  # as bench.cells.pair refuses them
            raise PairingError(f"arm {self.arm[twice][0]!r}: several runs share one cell and seed; "
                               "they cannot be paired")

    def rows(self, reference: str, other: str) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the paired runs: the other arm's (in order) and their references'."""
        ref_rows = np.flatnonzero(self.arm == reference)
        rows = np.flatnonzero(self.arm == other)
        match = pd.Index(self.key[ref_rows]).get_indexer(self.key[rows])  # -1: no reference run
        found = match >= 0
        return rows[found], ref_rows[match[found]]

    def frame(self, reference: str, other: str, column: str) -> pd.DataFrame:
        rows, ref_rows = self.rows(reference, other)
        pairs = self.rest.take(rows).reset_index(drop=True)
        pairs[f"{column}_ref"] = self.runs[column].to_numpy()[ref_rows]
        pairs["d"] = pairs[column].astype(float) - pairs[f"{column}_ref"].astype(float)
        return pairs


def _paired_frames(
    data: StoreData, reference: str, metrics: Sequence[str], diverged_value: float | None
) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(arm, metric, column, seed-paired frame vs ``reference``) for every non-reference arm."""
    pairs = _Pairs(_analysed(data, diverged_value))
    return [(arm, metric, METRICS[metric], pairs.frame(reference, arm, METRICS[metric]))
            for arm in data.arms if arm != reference for metric in metrics]


def _by_level(values: pd.Series) -> Iterator[tuple[Any, np.ndarray]]:
    """(level, row positions) for each level in sorted order, missing levels left out: the
    groups of ``groupby(sort=True)`` without building a frame per group."""
    codes, levels = pd.factorize(values, sort=True)
    order = np.argsort(codes, kind="stable")  # rows keep their order within a level
    bounds = np.searchsorted(codes[order], np.arange(len(levels) + 1))  # code -1 (missing) first
    for i, level in enumerate(levels):
        yield level, order[bounds[i]:bounds[i + 1]]


def bn_effect_by_level(
    data: StoreData, *, metrics: Sequence[str] = tuple(METRICS), reference: str | None = None,
    diverged_value: float | None = None, n_resamples: int = stats.N_RESAMPLES, seed: int | None = None,
) -> pd.DataFrame:
    """Paired effect of each arm vs ``reference`` at each level of each other varying factor.

    Epochs-to-target is reported only where some run at that level reached the target
    (otherwise every difference is budget+1 - budget+1 = 0, which says nothing).
    """
    reference = reference or data.reference
    frames = _paired_frames(data, reference, metrics, diverged_value)
    return _effects(frames, data.cell_factors, reference, n_resamples, seed)


def _effects(frames: list[tuple[str, str, str, pd.DataFrame]], factors: Sequence[str], reference: str,
             n_resamples: int, seed: int | None) -> pd.DataFrame:
    """``bn_effect_by_level`` of paired frames (``_paired_frames``)."""
    rows = []
    for arm, metric, column, pairs in frames:
        d_all = pairs["d"].to_numpy(float)
        budget = pairs["epochs_budget"].to_numpy(float)
        reached = ((pairs[column].to_numpy(float) <= budget)
                   | (pairs[f"{column}_ref"].to_numpy(float) <= budget))
        for factor in factors:
            for level, at in _by_level(pairs[factor]):
                d = d_all[at]
                finite = np.isfinite(d)
                if metric == "epochs_to_target" and not reached[at].any():
                    est, note = Interval(math.nan, n=int(finite.sum())), "no run reached the target"
                else:
                    est = stats.bootstrap_ci(d[finite], n_resamples=n_resamples, seed=seed)
                    note = est.note
                rows.append({
                    "factor": factor, "level": level, "arm": arm, "reference": reference,
                    "metric": metric, "n_pairs": int(finite.sum()), "n_dropped": int((~finite).sum()),
                    "diff": est.point, "diff_low": est.low, "diff_high": est.high, "note": note,
                })
    cols = ["factor", "level", "arm", "reference", "metric", "n_pairs", "n_dropped",
            "diff", "diff_low", "diff_high", "note"]
    return pd.DataFrame(rows, columns=cols)


#: Generator.random draws multiples of 2**-53 (53 random bits), exactly integers once scaled
_KEY_BITS = 53


def _sorted_positions(keys: np.ndarray) -> np.ndarray:
    """Each block's positions ordered by their keys: ``keys`` (P, blocks, width) of
    ``Generator.random`` -> (P, blocks, width) int64, equal to a stable ``argsort`` on the
    last axis (for width up to 1,024).

    Why not ``argsort``: each key scaled to its 53-bit integer with its position in the low
    bits is one int64 whose plain ``np.sort`` (several times faster than ``argsort``) gives
    the order, ties broken by position as a stable sort would; blocks of two are ordered by
    one comparison. Works in place on one array: at thousands of pairs each fresh array of
    that size costs as much as a pass.
    """
    width = keys.shape[-1]
    if width == 2:  # the second first exactly when its key is smaller
        out = np.empty(keys.shape, np.int64)
        np.less(keys[..., 1], keys[..., 0], out=out[..., 0])
        np.subtract(1, out[..., 0], out=out[..., 1])
        return out
    pos_bits = (width - 1).bit_length()
    out = np.empty(keys.shape, np.int64)
    np.multiply(keys, 2.0 ** (_KEY_BITS + pos_bits), out=out, casting="unsafe")  # exact: key << pos_bits
    out |= np.arange(width)
    out.sort(axis=-1)
    out &= (1 << pos_bits) - 1
    return out


def within_block_order(block_codes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row indices that sort each block (adjacent rows of equal ``block_codes``) by ``keys``.

    ``keys``: (P, n) draws of ``numpy.random.Generator.random`` (multiples of 2**-53 in [0, 1)).
    Equals ``np.argsort(block_codes + keys, axis=1)`` (barring float ties, which a 53-bit
    uniform makes negligible) but sorts P x blocks short rows, padded to the largest block,
    instead of P rows of length n (tests/report_tests/test_vectorized.py); see
    ``_sorted_positions``.
    """
    n = block_codes.size
    starts = np.flatnonzero(np.r_[True, block_codes[1:] != block_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    block = np.repeat(np.arange(starts.size), sizes)
    pos = np.arange(n) - starts[block]  # each row's position in its block
    width = int(sizes.max())
    pos_bits = (width - 1).bit_length()
    if _KEY_BITS + pos_bits > 63:  # blocks over 1,024 rows: positions do not fit beside the key
        padded = np.full((keys.shape[0], starts.size, width), np.inf)
        padded[:, block, pos] = keys
        return starts[block] + np.argsort(padded, axis=2, kind="stable")[:, block, pos]
    if (sizes == width).all():  # every block as long (a full factorial): no padding needed
        out = _sorted_positions(keys.reshape(keys.shape[0], starts.size, width))
        out += starts[:, None]
        return out.reshape(keys.shape)
    encoded = (keys * 2.0**_KEY_BITS).astype(np.int64) << pos_bits
    padded = np.full((keys.shape[0], starts.size, width), np.iinfo(np.int64).max)
    padded[:, block, pos] = encoded | pos
    local = (np.sort(padded, axis=2) & ((1 << pos_bits) - 1))[:, block, pos]
    return starts[block] + local


#: Keys per draw on the full-factorial path: a few permutations at a time (512 KB of keys,
#: within a core's L2 cache). 1,000 permutations of 3,000 pairs at once went through memory
#: and paid page faults on a fresh 24 MB array: about twice as slow. The generator fills
#: arrays in order, so any split into draws gives the same keys.
_CACHE_VALUES = 1 << 16


def _level_sums(d: np.ndarray, codes: np.ndarray, block_codes: np.ndarray, k: int
                ) -> Callable[[np.ndarray], np.ndarray] | None:
    """For blocks that each hold every level once (a full factorial, e.g. one seed's cells
    across a factor): ``sums(keys)``, the (P, k) level sums of the differences shuffled
    within blocks by ``keys`` (P, n) as ``within_block_order`` shuffles them; else None.

    Why: the (P x n) @ (n x k) product with the one-hot level matrix is mostly zeros; here
    the shuffled values are gathered by position and summed over blocks (the same sums up
    to rounding, within the test's margin ``_rounding_bound``;
    tests/report_tests/test_vectorized_interactions.py).
    """
    n, width = d.size, k
    if n % width or not (np.bincount(block_codes) == width).all():
        return None
    if width > 2 and _KEY_BITS + (width - 1).bit_length() > 63:  # beyond _sorted_positions
        return None
    blocks = n // width
    layout = codes.reshape(blocks, width)  # levels by position (a block's rows are adjacent)
    if not (np.sort(layout, axis=1) == np.arange(width)).all():
        return None
    slot = np.argsort(layout, axis=1)  # slot[b, l]: the position of level l in block b
    d_level = np.take_along_axis(d.reshape(blocks, width), slot, axis=1)  # d by block and level
    if width == 2:  # the second row first exactly when its key is smaller: the two swap
        first, second = d_level[:, 0], d_level[:, 1]
        change, first_sum, second_sum = second - first, first.sum(), second.sum()

        def rows_sums(keys: np.ndarray) -> np.ndarray:  # a swap moves change from level 1 to 0
            moved = (keys[:, 1::2] < keys[:, ::2]).astype(float) @ change
            return np.stack([first_sum + moved, second_sum - moved], axis=1)
    else:
        offsets = (np.arange(blocks) * width)[:, None]
        same_layout = (layout == layout[0]).all()
        by_level = (offsets + slot).ravel()

        def rows_sums(keys: np.ndarray) -> np.ndarray:
            rows = _sorted_positions(keys.reshape(keys.shape[0], blocks, width))
            rows += offsets  # position j of block b receives row rows[p, b, j] of d
            values = np.take(d, rows)
            if same_layout:  # the sums by position, then each position's level
                return values.sum(axis=1)[:, slot[0]]
            values = np.take(values.reshape(keys.shape[0], n), by_level, axis=1)
            return values.reshape(keys.shape[0], blocks, width).sum(axis=1)

    return rows_sums


def _rounding_bound(d: np.ndarray, k: int) -> float:
    """How far from its exact value the statistic ``sum_l S_l^2 / n_l`` can be computed, in any
    summation order: a level sum S_l of n values errs by at most n eps sum|d| (|S_l| <= sum|d|),
    so each of the k terms by at most 2 n eps (sum|d|)^2 plus second order; doubled for the
    comparison of two computed values. An observed statistic below it is zero for all the
    arithmetic can tell (every level's mean the same), which every permutation ties or exceeds.
    """
    return 4.0 * k * d.size * float(np.finfo(float).eps) * float(np.abs(d).sum()) ** 2


def permutation_interaction_p(
    d: np.ndarray, levels: np.ndarray, blocks: np.ndarray | None = None, *,
    n_permutations: int = N_PERMUTATIONS, seed: int | None = None,
) -> tuple[float, float]:
    """(statistic, p) for "the paired effect is the same at every level".

    ``blocks``: the exchangeable units. Under "no interaction" only differences of one block
    (one seed, same levels of every other factor) are exchangeable across levels, so the level
    labels are reassigned within each block; ``None`` treats all differences as one block
    (right only for independent differences). Statistic: between-level sum of squares of the
    mean *block-centred* differences, ``sum_l n_l mean_l^2``; centring removes each block's
    own (seed) effect, which the within-block reassignment leaves unchanged anyway.
    p = (1 + #{perm >= observed}) / (1 + n_permutations), ">=" up to ``_rounding_bound``.
    """
    d = np.asarray(d, float)
    levels = np.asarray(levels)
    blocks = np.zeros(d.size, int) if blocks is None else np.asarray(blocks)
    keep = np.isfinite(d)
    d, levels, blocks = d[keep], levels[keep], blocks[keep]
    _, codes = np.unique(levels, return_inverse=True)
    _, block_codes = np.unique(blocks, return_inverse=True)
    k = codes.max() + 1 if codes.size else 0
    if k < 2 or d.size < 3:
        return math.nan, math.nan
    order = np.argsort(block_codes, kind="stable")  # rows of a block are adjacent
    d, codes, block_codes = d[order], codes[order], block_codes[order]
    d = d - (np.bincount(block_codes, d) / np.bincount(block_codes))[block_codes]

    n_l = np.bincount(codes, minlength=k).astype(float)

    def ss(level_sums: np.ndarray) -> np.ndarray:  # (P, k) -> (P,)
        return ((level_sums / n_l) ** 2 * n_l).sum(-1)

    # Not a BLAS product: one call starts OpenBLAS's threads, whose spinning afterwards
    # halved the speed of the sorts below on this 2-core machine.
    observed = float(ss(np.bincount(codes, d, minlength=k)[None, :])[0])
    rounding = _rounding_bound(d, int(k))
    if observed <= rounding:  # zero up to rounding: every permutation ties or exceeds it
        return observed, 1.0
    factorial = _level_sums(d, codes, block_codes, int(k))
    onehot = (codes[:, None] == np.arange(k)).astype(float) if factorial is None else None  # n x k
    rng = stats._rng(seed)
    exceed = 0
    step = 1000 if factorial is None else max(1, _CACHE_VALUES // d.size)
    keys = np.empty((min(step, n_permutations), d.size))  # reused: same draws as fresh arrays
    values = np.empty(keys.shape) if factorial is None else None
    for start in range(0, n_permutations, step):
        size = min(step, n_permutations - start)
        rng.random(out=keys[:size])
        if factorial is not None:
            level_sums = factorial(keys[:size])
        else:
            # mode="wrap": np.take buffers ``out`` in its default mode (the indices are valid)
            np.take(d, within_block_order(block_codes, keys[:size]), out=values[:size], mode="wrap")
            level_sums = values[:size] @ onehot
        exceed += int((ss(level_sums) >= observed - rounding).sum())  # ties despite rounding
    p = (1.0 + exceed) / (1.0 + n_permutations)
    return observed, p


def interaction_tests(
    data: StoreData, *, metrics: Sequence[str] = tuple(METRICS),
    reference: str | None = None, diverged_value: float | None = None, alpha: float = 0.05,
    n_permutations: int = N_PERMUTATIONS, seed: int | None = None,
) -> pd.DataFrame:
    """Per (other factor, arm, metric): does the arm's paired effect change with the level?

    Permutation within blocks of (seed, levels of the other varying factors); ``flagged``
    exactly when the Holm-corrected p (over all rows of this table) is below ``alpha``.
    """
    reference = reference or data.reference
    frames = _paired_frames(data, reference, metrics, diverged_value)
    return _tests(frames, data.cell_factors, reference, alpha, n_permutations, seed)


def _tests(frames: list[tuple[str, str, str, pd.DataFrame]], factors: Sequence[str], reference: str,
           alpha: float, n_permutations: int, seed: int | None) -> pd.DataFrame:
    """``interaction_tests`` of paired frames (``_paired_frames``)."""
    rows = []
    for arm, metric, _, pairs in frames:
        for factor in factors:
            others = [f for f in factors if f != factor]
            blocks = pairs.groupby(["seed", *others], sort=False, dropna=False).ngroup().to_numpy()
            stat, p = permutation_interaction_p(pairs["d"].to_numpy(float), pairs[factor].to_numpy(),
                                                blocks, n_permutations=n_permutations, seed=seed)
            rows.append({"factor": factor, "arm": arm, "reference": reference,
                         "metric": metric, "levels": int(pairs[factor].nunique()),
                         "n_blocks": int(np.unique(blocks).size), "stat": stat, "p": p})
    cols = ["factor", "arm", "reference", "metric", "levels", "n_blocks", "stat", "p"]
    out = pd.DataFrame(rows, columns=cols)
    out["p_holm"] = stats.holm(out["p"].to_numpy(float)) if len(out) else []
    out["flagged"] = out["p_holm"] < alpha
    return out


def interactions(data: StoreData, *, metrics: Sequence[str] = tuple(METRICS), reference: str | None = None,
                 diverged_value: float | None = None, n_resamples: int = stats.N_RESAMPLES,
                 alpha: float = 0.05, n_permutations: int = N_PERMUTATIONS,
                 seed: int | None = None) -> Interactions:
    """Both tables of part (a) with shared settings (see the two functions), the runs paired once."""
    reference = reference or data.reference
    frames = _paired_frames(data, reference, metrics, diverged_value)
    return Interactions(_effects(frames, data.cell_factors, reference, n_resamples, seed),
                        _tests(frames, data.cell_factors, reference, alpha, n_permutations, seed))


# ----------------------------------------------------------------------------- (b) ranking


def probability_of_improvement(
    data: StoreData, *, metric: str = "final_val_acc", diverged_value: float | None = None,
    n_resamples: int = stats.N_RESAMPLES, seed: int | None = None,
) -> pd.DataFrame:
    """P(A's seed beats B's same seed), ties 1/2, pooled over every cell that has both.

    Interval: ``seed_clustered_proportion`` (seeds are the random unit and a seed's effect is
    shared by its cells). ``n_resamples`` and ``seed`` are accepted for a uniform call
    signature and unused: the interval is closed-form.
    """
    column, higher = METRICS[metric], metric_table.METRICS[metric].higher_is_better
    runs = _analysed(data, diverged_value)
    pairing = _Pairs(runs)
    values = runs[column].to_numpy(float)
    cell_codes = pd.factorize(runs["cell"])[0]
    seed_all = runs["seed"].to_numpy()
    rows = []
    for a in data.arms:
        for b in data.arms:
            if a == b:
                continue
            at, ref = pairing.rows(b, a)  # d = a - b, as paired_frame(runs, b, a, column)
            d = values[at] - values[ref]
            keep = np.isfinite(d)
            d, cells, seeds = d[keep], cell_codes[at][keep], seed_all[at][keep]
            score = 0.5 * (1 + np.sign(d if higher else -d))
            est = seed_clustered_proportion(score, seeds)
            rows.append({"arm": a, "versus": b, "metric": metric, "n_pairs": int(d.size),
                         "n_cells": int(np.unique(cells).size), "n_seeds": int(np.unique(seeds).size),
                         "p_improve": est.point, "low": est.low, "high": est.high})
    return pd.DataFrame(rows, columns=["arm", "versus", "metric", "n_pairs", "n_cells", "n_seeds",
                                       "p_improve", "low", "high"])


def seed_clustered_proportion(score: np.ndarray, seeds: np.ndarray,
                              confidence: float = stats.CONFIDENCE) -> Interval:
    """Mean of 0 / 1/2 / 1 scores with a Wilson interval whose sample size is the seeds' worth.

    The scores of one seed are correlated (its effect is shared by every cell), so the
    variance of the mean comes from the seeds as clusters (ratio estimator over per-seed
    sums), and the Wilson interval uses the effective size ``p(1-p) / var`` (at most the
    number of pairs) with a t quantile on ``seeds - 1`` df. When the seeds do not vary at
    all (e.g. every pair won), each seed counts as one trial. Coverage with seed effects
    carried across cells is measured in tests/report_tests/test_interactions.py and stated
    in docs/report.md; a percentile bootstrap of seeds covered less at 10 seeds.
    """
    x = np.asarray(score, float)
    if x.size == 0:
        return Interval(math.nan, n=0, note="no pairs")
    value = float(x.mean())
    _, cluster = np.unique(np.asarray(seeds), return_inverse=True)
    k = int(cluster.max()) + 1
    if k < 2:
        return Interval(value, n=int(x.size), note="no interval with 1 seed")
    totals, sizes = np.bincount(cluster, x, k), np.bincount(cluster, minlength=k)
    var = k / (k - 1) * float(((totals - value * sizes) ** 2).sum()) / x.size**2
    n_eff = k if var == 0 or value in (0.0, 1.0) else min(x.size, value * (1 - value) / var)
    q = _t_quantile((1 + confidence) / 2, k - 1)
    centre = (value + q * q / (2 * n_eff)) / (1 + q * q / n_eff)
    half = q * math.sqrt(value * (1 - value) / n_eff + q * q / (4 * n_eff**2)) / (1 + q * q / n_eff)
    return Interval(value, max(0.0, centre - half), min(1.0, centre + half), n=int(x.size))


@lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> float:
    """Student's t quantile (cached: a report asks for the same few seed counts many times);
    scipy.special's, as scipy.stats.t.ppf (no scipy.stats import: ``intervals.binomial_half_cdf``)."""
    return float(scipy.special.stdtrit(df, q))


def performance_profile(
    data: StoreData, *, metric: str = "final_val_acc", taus: Sequence[float] = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02),
    diverged_value: float | None = None,
) -> pd.DataFrame:
    """Fraction of cells where an arm's median over seeds is within ``tau`` of the best.

    For epochs-to-target (lower is better) ``tau`` is in epochs. An arm whose seeds all
    lack a value in a cell is never within tau there.
    """
    column, higher = METRICS[metric], metric_table.METRICS[metric].higher_is_better
    runs = _analysed(data, diverged_value)
    med = runs.groupby(["cell", "arm"])[column].median().unstack("arm")
    med = med.reindex(columns=[p for p in data.arms if p in med.columns])
    if not higher:
        med = -med
    gap = med.max(axis=1).to_numpy()[:, None] - med.to_numpy()
    rows = []
    for j, arm in enumerate(med.columns):
        for tau in taus:
            g = gap[:, j]
            rows.append({"arm": arm, "metric": metric, "tau": float(tau),
                         "fraction": float(np.mean(np.isfinite(g) & (g <= tau + 1e-12))) if g.size else math.nan,
                         "n_cells": int(g.size)})
    return pd.DataFrame(rows, columns=["arm", "metric", "tau", "fraction", "n_cells"])
