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
    assert a.value == pytest.approx(np.median(x))
    assert a.low < a.value < a.high


def test_bootstrap_ci_edge_cases():
    assert math.isnan(stats.bootstrap_ci([]).value)
    one = stats.bootstrap_ci([0.5])
    assert one.value == 0.5 and math.isnan(one.low) and "1 value" in one.note
    const = stats.bootstrap_ci([2.0, 2.0, 2.0])
    assert (const.value, const.low, const.high) == (2.0, 2.0, 2.0)
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


# ----------------------------------------------------------------------- Cliff's delta


def test_cliffs_delta_hand_checked():
    # x=[10,12,14] vs y=[8,11,13]: 6 pairs with x>y, 3 with x<y -> (6-3)/9.
    assert stats.cliffs_delta([10, 12, 14], [8, 11, 13]) == pytest.approx(1 / 3)
    assert stats.cliffs_delta([1, 2, 3], [1, 2, 3]) == 0
    assert stats.cliffs_delta([5, 6], [1, 2]) == 1


def test_cliffs_delta_equals_mann_whitney_identity():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=9), rng.normal(0.4, size=11)
    u = scipy.stats.mannwhitneyu(x, y).statistic
    assert stats.cliffs_delta(x, y) == pytest.approx(2 * u / (9 * 11) - 1)


def test_cliffs_delta_paired_ci_contains_estimate():
    rng = np.random.default_rng(6)
    a = rng.normal(size=10)
    est = stats.cliffs_delta_paired_ci(a, a + 0.8)
    assert est.low <= est.value <= est.high
    assert est.n == 10


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
    allc = stats.km_median_ci([10, 10, 10], [False, False, False])
    assert math.isinf(allc.value) and math.isinf(allc.low) and math.isinf(allc.high)
    one = stats.km_median_ci([4], [True])
    assert one.value == 4 and "1 seed" in one.note


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
    assert stats.cliffs_delta_paired_ci(a, b).low > 0


def test_paired_difference_ci_coverage():
    """Over 100 simulated studies the 95% CI of the median difference covers the truth."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(100):
        a = rng.normal(0, 1, size=20)
        b = a + 0.5 + rng.normal(0, 0.3, size=20)
        est = stats.paired_difference(a, b, n_resamples=400, seed=int(rng.integers(1 << 30)))
        covered += est.low <= 0.5 <= est.high
    assert covered >= 87  # nominal 95; percentile bootstrap of a median undercovers a little


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


def test_cliff_magnitude_words():
    assert stats.cliff_magnitude(0.1) == "negligible"
    assert stats.cliff_magnitude(-0.5) == "large"
    assert stats.cliff_magnitude(math.nan) == "unknown"


@pytest.mark.parametrize("seed", range(5))
def test_wilcoxon_with_ties_and_zeros_matches_scipy_exact_permutation(seed):
    """Integer epochs tie a lot: our enumerated sign flips give scipy's (slow) exact answer."""
    rng = np.random.default_rng(seed)
    a = rng.integers(3, 8, size=10).astype(float)
    b = rng.integers(3, 8, size=10).astype(float)
    if np.all(a == b):
        pytest.skip("all differences zero")
    assert stats.wilcoxon_p(a, b).p == pytest.approx(scipy.stats.wilcoxon(b - a).pvalue)
