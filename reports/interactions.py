"""Interactions: does BN's effect depend on another factor, and which placement wins overall?

(a) ``bn_effect_by_level``: for every placement other than the reference and every level of
every other varying factor, the seed-paired difference against the reference (median with a
bootstrap CI that resamples pairs), pooled over the cells at that level. ``interaction_tests``
then asks, per factor, whether the effect differs between levels: a permutation test of the
level labels of the paired differences (under "no interaction" the differences are
exchangeable across levels), Holm-corrected, plus a plain flag for non-overlapping CIs.

(b) ``probability_of_improvement``: P(a seed of placement A beats the same seed of B), pooled
over cells, CI from resampling seeds within cells; ``performance_profile``: the fraction of
cells where a placement's median is within tau of the best placement's.

Inputs are ``reports.load.StoreData``; outputs are tidy DataFrames. TF-free.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports import stats
from reports.load import StoreData

#: metric key -> (column of the prepared runs frame, higher is better)
METRICS = {"final_val_acc": ("final_val_acc", True), "epochs_to_target": ("ett_rank", False)}
N_PERMUTATIONS = 5000


@dataclass
class Interactions:
    """Both tables of part (a)."""

    effects: pd.DataFrame  # factor, level, placement, metric, n_pairs, n_dropped, diff, diff_low, diff_high, note
    tests: pd.DataFrame  # factor, placement, metric, levels, stat, p, p_holm, ci_disjoint, flagged


def _analysed(data: StoreData, diverged_value: float | None) -> pd.DataFrame:
    """Analysed runs with ``ett_rank`` (censored = budget + 1, as reports.tables ranks them).

    ``diverged_value``: when given, a diverged run's final accuracy is taken to be this
    (e.g. 0.1, chance on 10 classes) instead of being dropped with its pair.
    """
    runs = data.runs[data.runs["analysed"]].copy()
    runs["ett_rank"] = runs["epochs_to_target"].astype(float).fillna(runs["epochs_budget"] + 1.0)
    if diverged_value is not None:
        runs.loc[runs["status"] == "diverged", "final_val_acc"] = diverged_value
    return runs


def paired_frame(runs: pd.DataFrame, reference: str, other: str, column: str) -> pd.DataFrame:
    """One row per (cell, seed) with both placements: the cell's factor levels and ``d = other - ref``."""
    keep = [c for c in runs.columns if c not in {"placement"}]
    a = runs.loc[runs["placement"] == reference, ["cell", "seed", column]]
    b = runs.loc[runs["placement"] == other, keep]
    pairs = b.merge(a, on=["cell", "seed"], suffixes=("", "_ref"))
    pairs["d"] = pairs[column].astype(float) - pairs[f"{column}_ref"].astype(float)
    return pairs


def _paired_frames(
    data: StoreData, reference: str, metrics: Sequence[str], diverged_value: float | None
) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """(placement, metric, column, seed-paired frame vs ``reference``) for every non-reference placement."""
    runs = _analysed(data, diverged_value)
    for placement in [p for p in data.placements if p != reference]:
        for metric in metrics:
            column, _ = METRICS[metric]
            yield placement, metric, column, paired_frame(runs, reference, placement, column)


def bn_effect_by_level(
    data: StoreData, *, metrics: Sequence[str] = tuple(METRICS), reference: str | None = None,
    diverged_value: float | None = None, n_resamples: int = stats.N_RESAMPLES, seed: int | None = None,
) -> pd.DataFrame:
    """Paired effect of each placement vs ``reference`` at each level of each other varying factor.

    Epochs-to-target is reported only where some run at that level reached the target
    (otherwise every difference is budget+1 - budget+1 = 0, which says nothing).
    """
    reference = reference or data.reference
    rows = []
    for placement, metric, column, pairs in _paired_frames(data, reference, metrics, diverged_value):
        for factor in data.cell_factors:
            for level, g in pairs.groupby(factor, sort=True):
                d = g["d"].to_numpy(float)
                finite = np.isfinite(d)
                note = ""
                if metric == "epochs_to_target" and not (g[column] <= g["epochs_budget"]).any() \
                        and not (g[f"{column}_ref"] <= g["epochs_budget"]).any():
                    est, note = stats.Estimate(math.nan, n=int(finite.sum())), "no run reached the target"
                else:
                    est = stats.bootstrap_ci(d[finite], n_resamples=n_resamples, seed=seed)
                    note = est.note
                rows.append({
                    "factor": factor, "level": level, "placement": placement, "reference": reference,
                    "metric": metric, "n_pairs": int(finite.sum()), "n_dropped": int((~finite).sum()),
                    "diff": est.value, "diff_low": est.low, "diff_high": est.high, "note": note,
                })
    cols = ["factor", "level", "placement", "reference", "metric", "n_pairs", "n_dropped",
            "diff", "diff_low", "diff_high", "note"]
    return pd.DataFrame(rows, columns=cols)


def permutation_interaction_p(
    d: np.ndarray, levels: np.ndarray, *, n_permutations: int = N_PERMUTATIONS, seed: int | None = None,
) -> tuple[float, float]:
    """(statistic, p) for "the paired effect is the same at every level".

    Statistic: between-level sum of squares of the mean paired differences,
    ``sum_l n_l (mean_l - mean)^2`` (for two levels, a monotone function of the difference
    of the two effects). Null distribution: the level labels shuffled over the differences.
    p = (1 + #{perm >= observed}) / (1 + n_permutations).
    """
    d = np.asarray(d, float)
    levels = np.asarray(levels)
    keep = np.isfinite(d)
    d, levels = d[keep], levels[keep]
    _, codes = np.unique(levels, return_inverse=True)
    k = codes.max() + 1 if codes.size else 0
    if k < 2 or d.size < 3:
        return math.nan, math.nan

    onehot = (codes[:, None] == np.arange(k)).astype(float)  # n x k, fixed
    n_l = onehot.sum(0)

    def ss(values: np.ndarray) -> np.ndarray:  # values: (P, n) -> (P,)
        means = values @ onehot / n_l
        return ((means - d.mean()) ** 2 * n_l).sum(-1)

    # Shuffling the labels over the differences = shuffling the differences over the labels.
    observed = float(ss(d[None, :])[0])
    rng = stats._rng(seed)
    exceed = 0
    for start in range(0, n_permutations, 1000):
        size = min(1000, n_permutations - start)
        perms = np.argsort(rng.random((size, d.size)), axis=1)
        exceed += int((ss(d[perms]) >= observed - 1e-12 * max(1.0, observed)).sum())
    p = (1.0 + exceed) / (1.0 + n_permutations)
    return observed, p


def interaction_tests(
    data: StoreData, effects: pd.DataFrame | None = None, *, metrics: Sequence[str] = tuple(METRICS),
    reference: str | None = None, diverged_value: float | None = None, alpha: float = 0.05,
    n_permutations: int = N_PERMUTATIONS, seed: int | None = None,
) -> pd.DataFrame:
    """Per (other factor, placement, metric): does BN's paired effect change with the level?

    ``flagged`` when the Holm-corrected permutation p < ``alpha`` or two levels' CIs from
    ``effects`` (``bn_effect_by_level``) do not overlap.
    """
    reference = reference or data.reference
    if effects is None:
        effects = bn_effect_by_level(data, metrics=metrics, reference=reference,
                                     diverged_value=diverged_value, seed=seed)
    rows = []
    for placement, metric, _, pairs in _paired_frames(data, reference, metrics, diverged_value):
        for factor in data.cell_factors:
            stat, p = permutation_interaction_p(pairs["d"].to_numpy(float), pairs[factor].to_numpy(),
                                                n_permutations=n_permutations, seed=seed)
            e = effects[(effects["factor"] == factor) & (effects["placement"] == placement)
                        & (effects["metric"] == metric)]
            rows.append({"factor": factor, "placement": placement, "reference": reference,
                         "metric": metric, "levels": int(pairs[factor].nunique()), "stat": stat,
                         "p": p, "ci_disjoint": _any_disjoint(e)})
    cols = ["factor", "placement", "reference", "metric", "levels", "stat", "p", "ci_disjoint"]
    out = pd.DataFrame(rows, columns=cols)
    out["p_holm"] = stats.holm(out["p"].to_numpy(float)) if len(out) else []
    out["flagged"] = (out["p_holm"] < alpha) | out["ci_disjoint"]
    return out


def _any_disjoint(effects: pd.DataFrame) -> bool:
    """True when some two levels' CIs do not overlap (NaN bounds never count)."""
    e = effects[np.isfinite(effects["diff_low"]) & np.isfinite(effects["diff_high"])]
    if len(e) < 2:
        return False
    return bool(e["diff_low"].max() > e["diff_high"].min())


def interactions(data: StoreData, **kwargs) -> Interactions:
    """Both tables of part (a) with shared settings (see the two functions for kwargs)."""
    test_kw = {k: kwargs.pop(k) for k in ("alpha", "n_permutations") if k in kwargs}
    effects = bn_effect_by_level(data, **kwargs)
    kwargs.pop("n_resamples", None)
    return Interactions(effects, interaction_tests(data, effects, **kwargs, **test_kw))


# ----------------------------------------------------------------------------- (b) ranking


def probability_of_improvement(
    data: StoreData, *, metric: str = "final_val_acc", diverged_value: float | None = None,
    n_resamples: int = stats.N_RESAMPLES, seed: int | None = None,
) -> pd.DataFrame:
    """P(A's seed beats B's same seed), ties 1/2, pooled over every cell that has both.

    CI: percentile bootstrap resampling seeds within each cell (cells are fixed design
    points, seeds are the random part).
    """
    column, higher = METRICS[metric]
    runs = _analysed(data, diverged_value)
    rows = []
    for a in data.placements:
        for b in data.placements:
            if a == b:
                continue
            pairs = paired_frame(runs, b, a, column)  # d = a - b
            d = pairs["d"].to_numpy(float)
            keep = np.isfinite(d)
            d, cells = d[keep], pairs["cell"].to_numpy()[keep]
            score = 0.5 * (1 + np.sign(d if higher else -d))
            est = _stratified_mean_ci(score, cells, n_resamples, seed)
            rows.append({"placement": a, "versus": b, "metric": metric, "n_pairs": int(d.size),
                         "n_cells": int(np.unique(cells).size), "p_improve": est.value,
                         "low": est.low, "high": est.high})
    return pd.DataFrame(rows, columns=["placement", "versus", "metric", "n_pairs", "n_cells",
                                       "p_improve", "low", "high"])


def _stratified_mean_ci(x: np.ndarray, strata: np.ndarray, n_resamples: int, seed: int | None) -> stats.Estimate:
    if x.size == 0:
        return stats.Estimate(math.nan, n=0, note="no pairs")
    value = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return stats.Estimate(value, value if x.size > 1 else math.nan,
                              value if x.size > 1 else math.nan, n=int(x.size))
    rng = stats._rng(seed)
    total = np.zeros(n_resamples)
    for s in np.unique(strata):
        xs = x[strata == s]
        total += xs[rng.integers(0, xs.size, size=(n_resamples, xs.size))].sum(axis=1)
    boot = total / x.size
    low, high = np.quantile(boot, [(1 - stats.CONFIDENCE) / 2, (1 + stats.CONFIDENCE) / 2])
    return stats.Estimate(value, float(low), float(high), n=int(x.size))


def performance_profile(
    data: StoreData, *, metric: str = "final_val_acc", taus: Sequence[float] = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02),
    diverged_value: float | None = None,
) -> pd.DataFrame:
    """Fraction of cells where a placement's median over seeds is within ``tau`` of the best.

    For epochs-to-target (lower is better) ``tau`` is in epochs. A placement whose seeds all
    lack a value in a cell is never within tau there.
    """
    column, higher = METRICS[metric]
    runs = _analysed(data, diverged_value)
    med = runs.groupby(["cell", "placement"])[column].median().unstack("placement")
    med = med.reindex(columns=[p for p in data.placements if p in med.columns])
    if not higher:
        med = -med
    gap = med.max(axis=1).to_numpy()[:, None] - med.to_numpy()
    rows = []
    for j, placement in enumerate(med.columns):
        for tau in taus:
            g = gap[:, j]
            rows.append({"placement": placement, "metric": metric, "tau": float(tau),
                         "fraction": float(np.mean(np.isfinite(g) & (g <= tau + 1e-12))) if g.size else math.nan,
                         "n_cells": int(g.size)})
    return pd.DataFrame(rows, columns=["placement", "metric", "tau", "fraction", "n_cells"])
