"""How many seeds a grid needs: power of the report's own test, and the spread it needs.

Placements are compared seed by seed (``reports.tables``), so the quantity that decides
power is the spread of the *paired differences* ``d = acc(placement) - acc(none)`` within a
cell, not the spread of either arm. The report tests each comparison with the two-sided
Wilcoxon signed-rank test (``reports.stats.wilcoxon_p``) and Holm-corrects it together with
every other p-value of the report, so ``bnbench plan`` states the power of *that*:
``report_test_power`` simulates studies by resampling the pilot's own (centred) paired
differences, runs the report's test on each (``reports.signed_rank.signed_rank_p``, the one definition
behind ``wilcoxon_p``, checked against scipy in the tests) and counts ``family * p < alpha``, the level
at which Holm surely rejects (a lower bound of Holm's power, exact when the family's other
comparisons have no effect). Resampling the pilot keeps its tails: a plain SD inflated by a
few wild seeds would ask for too many seeds. With ``n`` seeds the smallest two-sided Wilcoxon
p is ``2 / 2^n`` (0.0625 at 5 seeds), so below ``min_seeds`` nothing can ever be significant.

The paired t formulas (normal approximation and the noncentral t) are kept as textbook
cross-checks. TF-free: reads only pandas frames from the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from bench import cells
from reports.signed_rank import signed_rank_p

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


# ------------------------------------------------------------- the report's own test


def min_possible_p(n: int) -> float:
    """Smallest two-sided p that any test of the report's comparison table can give with ``n``
    pairs, whatever the data: 2 / 2^n (attained when every pair points the same way).

    Each is a paired sign-flip test (Wilcoxon signed-rank, the paired log-rank, exact McNemar
    on at most ``n`` discordant pairs). Exact: the observed signs and their mirror image are 2
    of the 2^n equally likely flips, so p >= 2 / 2^n. A normal approximation, which the tests
    take only above ``reports.signed_rank.EXACT_MAX_TIED`` pairs, has |z| = |sum s_i r_i| / sqrt(sum r_i^2) <= sqrt(n)
    (Cauchy-Schwarz), so p >= 2 Phi(-sqrt(n)), which is above 2 / 2^n from 13 pairs on.
    """
    return min(1.0, 2.0 / 2.0**n)


def min_seeds(alpha: float, family: int = 1) -> int:
    """Fewest seeds whose best possible p (``min_possible_p``) survives Holm over ``family`` p-values.

    Holm rejects anything only if the smallest p times ``family`` is below ``alpha``.
    """
    n = 1
    while family * min_possible_p(n) >= alpha:
        n += 1
    return n


@dataclass(frozen=True)
class ClosedFamily:
    """A Holm family of a report in which no comparison can be significant, whatever its data."""

    family: str  # the question: "accuracy", "time per epoch", ... (reports.tables.METRICS)
    tests: int  # Holm's m: the family's p-values
    max_pairs: int  # the most pairs (or timing measurements) any of its tests has
    best_p: float  # min_possible_p(max_pairs): no test of the family can go below it
    alpha: float

    @property
    def threshold(self) -> float:
        """The p Holm's first step needs to go below."""
        return self.alpha / self.tests


def closed_families(comparisons: pd.DataFrame, alpha: float = 0.05) -> list[ClosedFamily]:
    """The Holm families of a comparison table (``reports.tables``) that cannot reject anything.

    Holm rejects nothing unless the family's smallest p times its size m is below ``alpha``;
    when even ``min_possible_p`` of the family's largest test fails that, every comparison of
    the family reads "not significant" whatever the effect, and the report must say so.
    """
    tested = comparisons[(comparisons["family"] != "") & np.isfinite(comparisons["p"].astype(float))]
    out = []
    for family, rows in tested.groupby("family", sort=False):
        m, n = len(rows), int(rows["n_pairs"].max())
        best = min_possible_p(n)
        if m * best >= alpha:  # as Holm computes it: the first adjusted p is m * p
            out.append(ClosedFamily(str(family), m, n, best, alpha))
    return out


def report_family_size(n_cells: int, n_placements: int) -> int:
    """How many p-values share the report's Holm family for final accuracy.

    The report keeps one Holm family per question (``reports.tables.METRICS``): the accuracy
    family holds one test per comparison cell and non-reference placement, whatever timing or
    epochs-to-target rows the report also holds. tests/test_plan.py checks it against the
    report's tables.
    """
    if n_placements < 2:
        return 0
    return n_cells * (n_placements - 1)


def report_test_power(n: int, effect: float, alpha: float = 0.05, family: int = 1, *,
                      residuals: np.ndarray | None = None, sd: float | None = None,
                      n_sims: int = 2000, seed: int = 0) -> float:
    """Power of the report's test for one comparison: P(family * Wilcoxon p < alpha).

    Each simulated study has ``n`` seeds whose paired differences are ``effect`` plus draws
    (with replacement) from ``residuals`` (the pilot's centred differences), or, without a
    pilot, normal with standard deviation ``sd``. ``family * p < alpha`` is where Holm over
    ``family`` p-values rejects for sure, so this is its power when the other comparisons
    have no effect, and a lower bound otherwise.
    """
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    if residuals is not None and len(residuals):
        draws = rng.choice(np.asarray(residuals, float), size=(n_sims, n), replace=True)
    elif sd is not None:
        draws = rng.normal(0.0, sd, size=(n_sims, n))
    else:
        raise ValueError("report_test_power needs residuals or sd")
    p = signed_rank_p(effect + draws)
    return float(np.mean(np.nan_to_num(p, nan=1.0) * family < alpha))


def n_for_report_test(effect: float, alpha: float = 0.05, power: float = 0.8, family: int = 1, *,
                      residuals: np.ndarray | None = None, sd: float | None = None,
                      n_max: int = 200, n_sims: int = 2000, seed: int = 0) -> int:
    """Seeds (from ``min_seeds`` up) whose ``report_test_power`` reaches ``power``; n_max + 1 if none.

    Doubling then bisection on the simulated power (same random seed for every n). The exact
    test's power is nearly but not strictly monotone in n (its attainable p-values jump), so
    this is the fewest seeds up to such a wiggle.
    """
    def reaches(k: int) -> bool:
        return report_test_power(k, effect, alpha, family, residuals=residuals, sd=sd,
                                 n_sims=n_sims, seed=seed) >= power

    low = min_seeds(alpha, family)
    if low > n_max:
        return n_max + 1
    high = low
    while not reaches(high):
        if high >= n_max:
            return n_max + 1
        low, high = high + 1, min(n_max, 2 * high)
    while low < high:  # reaches(high); the answer is in [low, high]
        mid = (low + high) // 2
        if reaches(mid):
            high = mid
        else:
            low = mid + 1
    return high


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
    n_groups: int  # (cell, arm) groups that contributed
    #: each group's differences minus the group mean, scaled by sqrt(n / (n - 1)) so that their
    #: spread is the unbiased one: the pilot's distribution of paired differences, centred.
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def usable(self) -> bool:
        return self.df >= 1 and math.isfinite(self.sd)


def paired_spread(runs: pd.DataFrame, metric: str = "final_val_acc", reference: str = "none",
                  cell_keys: list[str] | None = None, arms: cells.Arms | None = None) -> PairedSpread:
    """Pooled within-cell sd of ``metric(arm) - metric(reference arm)`` over paired seeds.

    ``runs`` is the store's runs table (ok runs are used; diverged/failed carry no final
    accuracy). ``arms`` (default: the default compared factors with ``reference``) says what
    an arm is (``bench.cells.Arms``). Cells are the distinct values of ``cell_keys`` (default:
    ``bench.cells``' cells, every setting but the arm's and the seed); each (cell, arm !=
    reference) with >= 2 pairs contributes its variance with weight ``pairs - 1``.
    """
    arms = arms or cells.Arms(reference=reference)
    ok = runs[(runs["status"] == "ok") & np.isfinite(runs[metric].astype(float))]
    by = cell_keys if cell_keys is not None else cells.cell_keys(ok, arms.factors)
    settings = cells.settings_frame(ok)[list(arms.factors)] if len(ok) else pd.DataFrame()
    arm_of = pd.Series(["|".join(k) for k in settings.itertuples(index=False)], index=ok.index, dtype=object)
    ref_key = "|".join(arms.reference_key())
    ss, df, n_pairs, groups, residuals = 0.0, 0, 0, 0, []
    for _, cell in ok.assign(_arm=arm_of).groupby(by, sort=False, dropna=False):
        ref = cell[cell["_arm"] == ref_key].drop_duplicates("seed").set_index("seed")[metric]
        if ref.empty:
            continue
        for _, arm in cell[cell["_arm"] != ref_key].groupby("_arm"):
            b = arm.drop_duplicates("seed").set_index("seed")[metric]
            d = (b - ref).dropna().to_numpy(float)
            if d.size >= 2:
                ss += float(((d - d.mean()) ** 2).sum())
                residuals.append((d - d.mean()) * math.sqrt(d.size / (d.size - 1)))
                df += d.size - 1
                n_pairs += d.size
                groups += 1
    sd = math.sqrt(ss / df) if df else math.nan
    return PairedSpread(sd, df, n_pairs, groups, np.concatenate(residuals) if residuals else np.zeros(0))
