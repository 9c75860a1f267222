"""How many seeds a grid needs: power of the seed-paired comparison, and the variance it needs.

Placements are compared seed by seed (``reports.tables``), so the quantity that decides
power is the spread of the *paired differences* ``d = acc(placement) - acc(none)`` within a
cell, not the spread of either arm. Two answers are given: the textbook normal
approximation ``n = ((z_{1-a/2} + z_{1-b}) * sd / delta)^2`` (optimistic for small n) and
the exact paired t-test power from the noncentral t distribution (what the plan uses).
The report tests with Wilcoxon, whose efficiency relative to t is >= 0.864 for any
distribution and 0.955 for normal data, so the t answer is a slight underestimate there;
the plan says so. TF-free: reads only pandas frames from the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from bench import cells

#: Largest seed count the searches consider; beyond it the answer is "more than N_MAX".
N_MAX = 100_000


def z(p: float) -> float:
    """Standard normal quantile (stdlib, so known answers need no scipy)."""
    return NormalDist().inv_cdf(p)


def n_paired_normal(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8,
                    *, two_sided: bool = True) -> float:
    """Pairs needed by the normal approximation (not rounded): ((z_a + z_b) * sd / delta)^2."""
    _check(sd, delta, alpha, power)
    za = z(1 - alpha / 2) if two_sided else z(1 - alpha)
    return ((za + z(power)) * sd / abs(delta)) ** 2


def power_paired_t(n: int, sd: float, delta: float, alpha: float = 0.05,
                   *, two_sided: bool = True) -> float:
    """Power of the paired (one-sample) t-test with ``n`` pairs: noncentral t, df = n - 1."""
    import scipy.stats

    if n < 2:
        return math.nan
    if sd <= 0:
        return 1.0 if delta else alpha
    df, ncp = n - 1, abs(delta) * math.sqrt(n) / sd
    if two_sided:
        t_crit = scipy.stats.t.ppf(1 - alpha / 2, df)
        return float(scipy.stats.nct.sf(t_crit, df, ncp) + scipy.stats.nct.cdf(-t_crit, df, ncp))
    t_crit = scipy.stats.t.ppf(1 - alpha, df)
    return float(scipy.stats.nct.sf(t_crit, df, ncp))


def n_paired_t(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8,
               *, two_sided: bool = True) -> int:
    """Smallest number of pairs (>= 2) whose paired t-test reaches ``power``.

    Starts at the normal approximation (never above the t answer) and steps up.
    Returns ``N_MAX + 1`` when even N_MAX pairs are not enough.
    """
    _check(sd, delta, alpha, power)
    if sd == 0:
        return 2
    n = max(2, math.floor(n_paired_normal(sd, delta, alpha, power, two_sided=two_sided)))
    while n <= N_MAX:
        if power_paired_t(n, sd, delta, alpha, two_sided=two_sided) >= power:
            return n
        n += 1 if n < 1000 else max(1, n // 1000)
    return N_MAX + 1


def simulate_power(n: int, sd: float, delta: float, alpha: float = 0.05, *,
                   n_sims: int = 4000, seed: int = 0) -> float:
    """Monte Carlo power of the two-sided paired t-test on normal differences (for checks)."""
    import scipy.stats

    rng = np.random.default_rng(seed)
    d = rng.normal(delta, sd, size=(n_sims, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    return float(np.mean(np.abs(t) > scipy.stats.t.ppf(1 - alpha / 2, n - 1)))


def _check(sd: float, delta: float, alpha: float, power: float) -> None:
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd {sd!r} is not a finite number >= 0")
    if not (math.isfinite(delta) and delta != 0):
        raise ValueError(f"effect {delta!r} is not a finite non-zero number")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha!r} is not in (0, 1)")
    if not 0 < power < 1:
        raise ValueError(f"power {power!r} is not in (0, 1)")


# ------------------------------------------------------------- variance from the store


@dataclass(frozen=True)
class PairedSpread:
    """Pooled sd of paired differences and where it came from."""

    sd: float
    df: int  # sum over groups of (pairs - 1)
    n_pairs: int
    n_groups: int  # (cell, placement) groups that contributed

    @property
    def usable(self) -> bool:
        return self.df >= 1 and math.isfinite(self.sd)


def paired_spread(runs: pd.DataFrame, metric: str = "final_val_acc", reference: str = "none",
                  cell_keys: list[str] | None = None) -> PairedSpread:
    """Pooled within-cell sd of ``metric(placement) - metric(reference)`` over paired seeds.

    ``runs`` is the store's runs table (ok runs are used; diverged/failed carry no final
    accuracy). Cells are the distinct values of ``cell_keys`` (default: ``bench.cells``'
    cells, every setting but placement and seed); each (cell, placement != reference)
    with >= 2 pairs contributes its variance with weight ``pairs - 1``.
    """
    ok = runs[(runs["status"] == "ok") & np.isfinite(runs[metric].astype(float))]
    by = cell_keys if cell_keys is not None else cells.cell_keys(ok)
    ss, df, n_pairs, groups = 0.0, 0, 0, 0
    for _, cell in ok.groupby(by, sort=False, dropna=False):
        ref = cell[cell["placement"] == reference].drop_duplicates("seed").set_index("seed")[metric]
        if ref.empty:
            continue
        for _, arm in cell[cell["placement"] != reference].groupby("placement"):
            b = arm.drop_duplicates("seed").set_index("seed")[metric]
            d = (b - ref).dropna().to_numpy(float)
            if d.size >= 2:
                ss += float(((d - d.mean()) ** 2).sum())
                df += d.size - 1
                n_pairs += d.size
                groups += 1
    sd = math.sqrt(ss / df) if df else math.nan
    return PairedSpread(sd, df, n_pairs, groups)


def parse_effect(text: str) -> float:
    """An accuracy effect: ``0.5pp`` or ``0.5%`` (percentage points) or ``0.005`` (a fraction)."""
    s = text.strip().lower()
    try:
        if s.endswith("pp") or s.endswith("%"):
            value = float(s.rstrip("%").removesuffix("pp")) / 100.0
        else:
            value = float(s)
            if value >= 1:
                raise ValueError
    except ValueError:
        raise ValueError(f"{text!r} is not an accuracy effect like 0.5pp, 0.5% or 0.005") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{text!r} is not a positive accuracy effect")
    return value
