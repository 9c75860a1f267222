"""What a comparison can detect: the power of the gate's own tests, by simulation.

For each gated metric, current runs are simulated by resampling the baseline's runs of
every cell (the same seed positions in every cell, so the cells keep their seed
correlation), a change of r times the limit is planted (r in :data:`MULTIPLES`), and the
gate's per-cell tests of :mod:`reports.compare` are run at the first Holm step,
alpha / (number of tests in the comparison). The smallest planted change caught in at
least :data:`POWER` of the simulations is what the comparison "can detect with 80%
power". The pooled row is left out, so this is a lower bound on the gate's power (an
upper bound on the detectable change) for a change that hits every cell.
Time to target is not simulated: its limit is derived from the two metrics it combines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reports import compare as cmp
from reports.threshold_tests import logrank_p, rank_sum_p

#: Planted changes, in multiples of the metric's allowed change.
MULTIPLES = (1.5, 2.0, 3.0, 4.0, 6.0, 10.0)
POWER = 0.8
N_SIMS = 100
#: Permutations per simulated test (Monte Carlo: p >= 1/1000, well below alpha / tests).
N_PERMS = 999


@dataclass(frozen=True)
class Detectable:
    """The smallest planted change (in the metric's terms) caught with >= 80% power."""

    metric: str
    change: float  # diff or ratio; NaN when none of MULTIPLES x limit reaches 80%
    multiple: float  # that change in multiples of the allowed change
    power: dict[float, float] = field(default_factory=dict)  # multiple -> simulated power
    note: str = ""


def _plant(metric: str, b: pd.DataFrame, idx: np.ndarray, step: float, rng: np.random.Generator):
    """Current runs of one cell: baseline runs at ``idx`` changed by ``step`` (metric terms)."""
    if metric == "final_val_acc":
        k = cmp.accuracy_counts(b)
        k = k[np.isfinite(k)]  # diverged runs have no accuracy
        return np.rint(k[idx] + step * float(b["validation_size"].iloc[0])), None
    if metric == "epochs_to_target":
        t, e = b["ett_duration"].to_numpy(float)[idx], b["reached"].to_numpy(bool)[idx]
        budget = float(b["epochs_budget"].max())
        whole = math.floor(step)
        t = t + np.where(e, whole + (rng.random(t.size) < step - whole), 0)  # censored stay censored
        late = e & (t > budget)
        return np.where(late, budget, t), e & ~late
    units = cmp.timing_units(b)["epoch_s_median"].to_numpy(float)
    return units[idx] * step, None


def _p(metric: str, b: pd.DataFrame, cur: np.ndarray, events: np.ndarray | None, limit: float,
       rng: np.random.Generator) -> float:
    """The gate's per-cell test (reports.compare.compare_cell) on simulated current runs."""
    shifted = cmp.shift_current(metric, cur, limit, float(b["validation_size"].iloc[0]))
    if metric == "final_val_acc":
        kb = cmp.accuracy_counts(b)
        return rank_sum_p(kb[np.isfinite(kb)], shifted, False, N_PERMS, rng, exact_max=0)
    if metric == "epochs_to_target":
        tb, eb = cmp._durations(b, metric)
        return logrank_p(tb, eb, shifted, events, N_PERMS, rng, exact_max=0)
    units = cmp.timing_units(b)["epoch_s_median"].to_numpy(float)
    return rank_sum_p(units, shifted, True, N_PERMS, rng, exact_max=0)


def _size(metric: str, b: pd.DataFrame) -> int:
    if metric == "epoch_s":
        return len(cmp.timing_units(b))
    if metric == "final_val_acc":
        return int(np.isfinite(cmp.accuracy_counts(b)).sum())
    return len(b)


def detectable(
    cells: list[tuple[pd.DataFrame, pd.DataFrame]], metric: str, thresholds: cmp.Thresholds,
    n_tests: int, rng: np.random.Generator, n_sims: int = N_SIMS,
) -> Detectable:
    """Power of the per-cell tests of ``metric`` for changes of MULTIPLES x its limit.

    ``cells`` are the matched (baseline, current) runs; the simulated current side has as
    many runs (timing units) per cell as the real one.
    """
    level = thresholds.alpha / max(n_tests, 1)
    limit = thresholds.limit(metric)
    null = 0.0 if cmp.METRICS[metric].kind == "diff" else 1.0
    sizes = [(_size(metric, b), _size(metric, c)) for b, c in cells]
    best = max((math.comb(nb + nc, nc) for nb, nc in sizes if nb and nc), default=1)
    if 1 / best >= level:
        n_min = min((max(nb, nc) for nb, nc in sizes), default=0)
        unit = "timing measurement" if metric == "epoch_s" else "run"
        return Detectable(metric, math.nan, math.nan, {}, f"with {n_min} {unit}(s) a side per cell no "
                          f"test can reach p < {level:.2g} = alpha / {n_tests} tests")
    power: dict[float, float] = {}
    for r in MULTIPLES:
        step = null + r * (limit - null)  # the planted change, e.g. -r x 0.5 pp or 1 + r x 10%
        caught = 0
        for _ in range(n_sims):
            pos = rng.integers(0, 1 << 30, size=max(nc for _, nc in sizes))
            hit = False
            for (b, _), (nb, nc) in zip(cells, sizes):
                if nb == 0 or nc == 0:
                    continue
                cur, events = _plant(metric, b, pos[:nc] % nb, step, rng)
                hit = hit or _p(metric, b, cur, events, limit, rng) < level
            caught += hit
        power[r] = caught / n_sims
        if power[r] >= POWER:
            return Detectable(metric, step, r, power)
    return Detectable(metric, math.nan, math.nan, power,
                      f"not even {MULTIPLES[-1]:g}x the limit reaches {POWER:.0%} power")
