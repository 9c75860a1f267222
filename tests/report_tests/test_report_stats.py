"""Every statistic against a known answer: scipy, lifelines, hand-checked textbook examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test

from reports import stats

# ----------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_deterministic_and_brackets_the_median():
    x = np.random.default_rng(1).normal(10, 2, size=30)
    a, b = stats.bootstrap_ci(x), stats.bootstrap_ci(x)
    assert a == b
    assert a.point == pytest.approx(np.median(x))
    assert a.low < a.point < a.high


def test_bootstrap_ci_edge_cases():
    assert math.isnan(stats.bootstrap_ci([]).point)
    one = stats.bootstrap_ci([0.5])
    assert one.point == 0.5 and math.isnan(one.low) and "one value" in one.note
    const = stats.bootstrap_ci([2.0, 2.0, 2.0])
    assert (const.point, const.low, const.high) == (2.0, 2.0, 2.0)
    assert stats.bootstrap_ci([1.0, np.nan, 3.0]).n == 2  # NaN ignored


# ----------------------------------------------------------------------- Wilcoxon


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=12)
    b = a + rng.normal(0.5, 1, size=12)
    expected = scipy.stats.wilcoxon(b - a).pvalue
    assert stats.wilcoxon_p(a, b).p == pytest.approx(expected)


def test_wilcoxon_textbook_exact():
    # All 8 differences positive, no ties: exact two-sided p = 2 / 2^8.
    assert stats.wilcoxon_p(np.zeros(8), np.arange(1, 9)).p == pytest.approx(2 / 256)


@pytest.mark.parametrize(("a", "b", "reason"), [
    ([1.0], [2.0], "1 paired seed"),
    ([], [], "0 paired seed"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "all paired differences are zero"),
])
def test_wilcoxon_degenerate_gives_nan_with_reason(a, b, reason):
    res = stats.wilcoxon_p(a, b)
    assert math.isnan(res.p) and reason in res.note


# ----------------------------------------------------------------------- paired effect size


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (7, 9), (10, 10)])
def test_p_improve_is_clopper_pearson_for_whole_counts(k, n):
    a = np.zeros(n)
    b = np.r_[np.ones(k), -np.ones(n - k)]
    est = stats.p_improve(a, b)
    ref = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert est.point == k / n
    assert est.low == pytest.approx(ref.low, abs=1e-12) and est.high == pytest.approx(ref.high, abs=1e-12)
    assert est.high > est.low  # never a zero-width interval, even when every seed improves


def test_p_improve_respects_the_pairing_where_cliffs_delta_does_not():
    """A small consistent paired gain under a large seed spread: every seed improves, but the
    cross-seed comparison (Cliff's delta, which the paired table used) sees almost nothing."""
    rng = np.random.default_rng(11)
    a = rng.normal(0, 1.0, size=10)
    b = a + 0.05 + rng.normal(0, 0.005, size=10)
    cliff = float(np.sign(b[:, None] - a[None, :]).mean())
    assert abs(cliff) < 0.2
    est = stats.p_improve(a, b)
    assert est.point == 1.0 and est.low > 0.5
    assert stats.p_improve(a, b, higher=False).point == 0.0  # lower is better: no seed improves


def test_mcnemar_exact_is_binomtest_of_discordant_pairs():
    ref = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)  # 5 of 10 reference seeds diverged
    other = np.zeros(10, bool)
    res = stats.mcnemar_exact(ref, other)
    assert res.p == pytest.approx(2 / 2**5)  # 5 discordant pairs, all one way: 2 * 0.5^5
    assert res.p == pytest.approx(scipy.stats.binomtest(5, 5).pvalue)
    both = stats.mcnemar_exact(np.ones(4, bool), np.ones(4, bool))
    assert math.isnan(both.p) and "no seed pair differs" in both.note


def test_exact_binomial_p_is_scipys_binomtest():
    """Twice the smaller tail from scipy.special equals binomtest's two-sided p at 1/2 for every
    (k, n) up to 120, to the accuracy of Boost's incomplete beta behind both (tens of eps
    relative at worst in its published error tables: 64 eps)."""
    for n in range(1, 121):
        for k in range(n + 1):
            want = scipy.stats.binomtest(k, n, 0.5).pvalue
            assert stats._binomial_p(k, n) == pytest.approx(want, rel=64 * np.finfo(float).eps, abs=0), (k, n)


# ----------------------------------------------------------------------- Holm


def test_holm_hand_checked():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, max(2*0.03, .), max(1*0.04, 0.06)
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan():
    adj = stats.holm([0.5, np.nan, 0.4])
    assert math.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2]], [0.8, 0.8])
    assert stats.holm([0.9, 0.8]).max() <= 1.0
    assert stats.holm([]).size == 0


# ----------------------------------------------------------------------- Kaplan–Meier


def _censored_sample(seed: int, n: int = 25, budget: int = 10):
    rng = np.random.default_rng(seed)
    t = rng.integers(2, 14, size=n)
    events = t <= budget
    return np.minimum(t, budget), events


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kaplan_meier_matches_lifelines(seed):
    t, e = _censored_sample(seed)
    ours = stats.kaplan_meier(t, e)
    kmf = KaplanMeierFitter().fit(t, e)
    theirs = 1 - kmf.survival_function_["KM_estimate"]
    np.testing.assert_allclose(ours["fraction"].to_numpy(), theirs.to_numpy())
    np.testing.assert_allclose(ours["epoch"].to_numpy(), theirs.index.to_numpy())
    assert stats.km_median(t, e) == kmf.median_survival_time_


def test_km_median_not_reached_when_mostly_censored():
    t = np.array([3, 10, 10, 10, 10])
    e = np.array([True, False, False, False, False])
    assert math.isinf(stats.km_median(t, e))
    assert math.isinf(KaplanMeierFitter().fit(t, e).median_survival_time_)


def test_km_median_bootstrap_matches_one_resample_at_a_time():
    t, e = _censored_sample(4, n=15)
    idx = np.random.default_rng(0).integers(0, 15, size=(50, 15))
    fast = stats.km_medians_boot(t.astype(float), e, idx)
    slow = [stats.km_median(t[i], e[i]) for i in idx]
    np.testing.assert_array_equal(fast, slow)


def test_km_median_ci_all_censored_and_one_seed():
    allc = stats.km_median_ci([10] * 6, [False] * 6)
    assert math.isinf(allc.point) and math.isinf(allc.low) and math.isinf(allc.high)
    one = stats.km_median_ci([4], [True])
    assert one.point == 4 and "1 seed" in one.note
    few = stats.km_median_ci([3, 4, 5], [True] * 3)  # no median interval below 6 seeds
    assert few.point == 4 and math.isnan(few.low) and "6 needed" in few.note


# ----------------------------------------------------------------------- log-rank


def test_logrank_two_groups_matches_lifelines():
    t1, e1 = _censored_sample(10)
    t2, e2 = _censored_sample(11)
    t2 = np.maximum(t2 - 2, 1)
    ours = stats.logrank(np.r_[t1, t2], np.r_[e1, e2], ["a"] * 25 + ["b"] * 25)
    theirs = logrank_test(t1, t2, e1, e2).p_value
    assert ours.p == pytest.approx(theirs, rel=1e-9)


def test_logrank_three_groups_matches_lifelines():
    ts, es, gs = [], [], []
    for k, seed in enumerate([20, 21, 22]):
        t, e = _censored_sample(seed)
        ts.append(np.maximum(t - k, 1))
        es.append(e)
        gs += [f"g{k}"] * len(t)
    t, e = np.concatenate(ts), np.concatenate(es)
    ours = stats.logrank(t, e, gs)
    theirs = multivariate_logrank_test(t, np.array(gs), e).p_value
    assert ours.p == pytest.approx(theirs, rel=1e-9)


def test_logrank_degenerate():
    assert "fewer than two" in stats.logrank([1, 2], [True, True], ["a", "a"]).note
    assert "no run reached" in stats.logrank([5, 5], [False, False], ["a", "b"]).note


# ----------------------------------------------------------------------- simulations


def test_planted_effect_is_found_and_covered():
    """Paired seeds with a +1.3 pp effect: CI covers it, Wilcoxon finds it."""
    rng = np.random.default_rng(42)
    seed_effect = rng.normal(0.92, 0.004, size=10)
    a = seed_effect + rng.normal(0, 0.002, size=10)
    b = seed_effect + 0.013 + rng.normal(0, 0.002, size=10)
    diff = stats.paired_difference(a, b)
    assert diff.low <= 0.013 <= diff.high
    assert stats.wilcoxon_p(a, b).p < 0.01
    assert stats.p_improve(a, b).low > 0.5


@pytest.mark.parametrize("n", [8, 10])
def test_paired_difference_ci_coverage_at_8_and_10_seeds(n):
    """The report's interval of the median paired difference covers 94-96% (nominal 95%) with
    heavy-tailed (t, 3 df) per-seed noise. Measured: 94.7% / 94.4%; the percentile bootstrap it
    replaced: 93.2% / 93.3% on these same studies. 2000 studies, seeded (the order-statistic
    interval involves only sorting and one interpolation, so the count is the same on any CPU).
    """
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(2000):
        a = rng.normal(0, 1, size=n)
        b = a + 0.5 + 0.3 * rng.standard_t(3, size=n)
        est = stats.paired_difference(a, b)
        covered += est.low <= 0.5 <= est.high
    assert 0.94 <= covered / 2000 <= 0.96


def test_aa_holm_family_wise_error_rate():
    """No effect anywhere: over 200 grids (6 paired comparisons each), Holm keeps FWER <= 5%.

    (With 3000 simulated grids the rate is about 2.7%: exact Wilcoxon at n=10 and Holm on
    correlated comparisons are both conservative.)
    """
    rng = np.random.default_rng(0)
    false_positive_grids = 0
    for _ in range(200):
        seed_effect = rng.normal(size=(1, 10))
        arms = seed_effect + rng.normal(0, 0.5, size=(7, 10))  # reference + 6 others
        p = [stats.wilcoxon_p(arms[0], arms[k]).p for k in range(1, 7)]
        false_positive_grids += bool((stats.holm(p) < 0.05).any())
    assert false_positive_grids / 200 <= 0.05


@pytest.mark.parametrize("seed", range(5))
def test_wilcoxon_with_ties_and_zeros_matches_scipy_exact_permutation(seed):
    """Integer epochs tie a lot: our enumerated sign flips give scipy's (slow) exact answer."""
    rng = np.random.default_rng(seed)
    a = rng.integers(3, 8, size=10).astype(float)
    b = rng.integers(3, 8, size=10).astype(float)
    if np.all(a == b):
        pytest.skip("all differences zero")
    assert stats.wilcoxon_p(a, b).p == pytest.approx(scipy.stats.wilcoxon(b - a).pvalue)


# ----------------------------------------------------------------------- ties, small samples


def _accuracy_pairs(count_a: np.ndarray, count_b: np.ndarray, n_val: int):
    """Seed pairs as tables.accuracy_rows reads them; accuracies as a float32 metric stores them."""
    import pandas as pd

    return pd.DataFrame({
        "validation_size_a": n_val, "status_a": "ok", "status_b": "ok",
        "final_val_acc_a": (count_a.astype(np.float32) / np.float32(n_val)).astype(float),
        "final_val_acc_b": (count_b.astype(np.float32) / np.float32(n_val)).astype(float),
    })


def test_accuracy_ties_are_compared_as_counts():
    """10-seed studies with count-valued accuracies: the report's p is the signed-rank p of the
    integer count differences in every study, while float differences (ulp apart for equal
    counts) break ties and move the p-value in some of them (the old behaviour)."""
    from reports.tables import accuracy_rows

    rng = np.random.default_rng(2026)
    n_val, moved = 5000, 0
    for _ in range(10):
        seed = rng.integers(4700, 4800, size=10)
        count_a = seed + rng.integers(0, 4, size=10)
        count_b = seed + rng.integers(1, 5, size=10)
        pairs = _accuracy_pairs(count_a, count_b, n_val)
        row = accuracy_rows(pairs)[0]
        expected = stats.wilcoxon_p(count_a.astype(float), count_b.astype(float)).p
        assert row["p"] == expected
        assert row["diff"] * n_val == pytest.approx(np.median(count_b - count_a), abs=1e-9)
        floats = stats.wilcoxon_p(pairs["final_val_acc_a"], pairs["final_val_acc_b"]).p
        moved += abs(floats - expected) > 0.01
    assert moved >= 1  # the float comparison really is different: this test can fail


def _aa_epochs(rng: np.random.Generator, n: int, budget: int = 10):
    """Two placements with the same epochs-to-target law; many runs censored at the budget."""
    t = rng.geometric(0.12, size=(2, n)).astype(float)
    return np.minimum(t[0], budget), t[0] <= budget, np.minimum(t[1], budget), t[1] <= budget


def test_logrank_scores_sum_to_observed_minus_expected():
    """Textbook log-rank numerator: sum over event times of d_1j - n_1j * d_j / n_j."""
    ta, ea, tb, eb = _aa_epochs(np.random.default_rng(3), 12)
    t, e, g = np.r_[ta, tb], np.r_[ea, eb], np.r_[np.zeros(12), np.ones(12)]
    o_minus_e = 0.0
    for u in np.unique(t[e]):
        at_risk = t >= u
        d_j = np.sum((t == u) & e)
        o_minus_e += np.sum((t == u) & e & (g == 1)) - np.sum(at_risk & (g == 1)) * d_j / np.sum(at_risk)
    assert stats.logrank_scores(t, e)[g == 1].sum() == pytest.approx(o_minus_e, abs=1e-12)


def test_paired_logrank_aa_size_at_8_seeds():
    """A/A at 8 seed pairs, integer epochs, budget 10 (about 28% censored): the permutation
    log-rank rejects at most 5% (exact test) within 3 Monte-Carlo standard errors (0.015 at 2000
    studies). Measured: 4.1% (3000 studies); the chi-square log-rank: 5.8% in the same setting."""
    rng = np.random.default_rng(8)
    rejected = 0
    for _ in range(2000):
        p = stats.paired_logrank(*_aa_epochs(rng, 8)).p
        rejected += bool(p < 0.05)
    assert rejected / 2000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)


def test_paired_logrank_finds_a_planted_speed_up():
    t = np.array([5, 6, 7, 8, 9, 5, 6, 7, 8, 9], dtype=float)
    reached = np.ones(10, bool)
    res = stats.paired_logrank(t, reached, t - 2, reached)
    assert res.p == pytest.approx(2 / 2**10)  # every pair faster: the most extreme of 1024 flips


def test_km_median_difference_is_a_bound_when_the_reference_never_reaches():
    """Reference censored at 10 epochs in every seed, the other reaches at epoch 3: the data say
    "at least 8 fewer" (3 - 11); the interval's low end is unbounded, never [-7.5, -7.0]."""
    n = 8
    est = stats.km_median_difference(np.full(n, 10.0), np.zeros(n, bool), np.full(n, 3.0),
                                     np.ones(n, bool), budget=10, n_resamples=300)
    assert est.point == -8 and est.low == -math.inf and est.high == -8
    none = stats.km_median_difference(np.full(n, 10.0), np.zeros(n, bool), np.full(n, 10.0),
                                      np.zeros(n, bool), budget=10, n_resamples=300)
    assert math.isnan(none.point) and none.low == -math.inf and none.high == math.inf
    t = np.arange(2.0, 2.0 + n)
    both = stats.km_median_difference(t, np.ones(n, bool), t + 1, np.ones(n, bool), budget=10,
                                      n_resamples=300)
    assert both.point == 1 and both.low == both.high == 1  # every pair exactly one epoch slower


def test_paired_logrank_aa_size_above_the_exact_range():
    """Above 16 pairs the permutation distribution's normal approximation is used: its A/A size
    at 30 pairs stays within 3 Monte-Carlo standard errors of 5% (measured 4.6-4.9%)."""
    rng = np.random.default_rng(30)
    rejected = sum(bool(stats.paired_logrank(*_aa_epochs(rng, 30)).p < 0.05) for _ in range(2000))
    assert rejected / 2000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)
