"""reports.intervals: known answers (binomial arithmetic, scipy) and coverage by simulation."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats

from reports.intervals import as_counts, interval, order_statistic_bounds, two_sample


def test_as_counts_makes_float_ties_exact():
    n_val = 5000
    a = np.array([4851, 4852, 4850]) / n_val
    b = (np.array([4852, 4853, 4851]) + 1e-9) / n_val  # same count, different float
    d = as_counts(b, n_val) - as_counts(a, n_val)
    assert d.tolist() == [1.0, 1.0, 1.0]
    assert np.unique(d).size == 1
    assert np.isnan(as_counts([np.nan, 0.5], 10)[0]) and as_counts([np.nan, 0.5], 10)[1] == 5


def _cover(n: int, k: int) -> Fraction:
    """P(k <= B <= n - k), B ~ Binomial(n, 1/2), in exact arithmetic."""
    return Fraction(sum(math.comb(n, j) for j in range(k, n - k + 1)), 2**n)


@pytest.mark.parametrize("n", [6, 10, 15, 20])
def test_order_statistic_bounds_match_exact_binomial_arithmetic(n):
    """k, the plain interval's coverage and the Hettmansperger–Sheather lambda, from math.comb."""
    k = max(j for j in range(1, n // 2 + 1) if _cover(n, j) >= Fraction(95, 100))
    share = (_cover(n, k) - Fraction(95, 100)) / (_cover(n, k) - _cover(n, k + 1))
    lam = (n - k) * share / (k + (n - 2 * k) * share)
    got_k, got_lam, got_cover = order_statistic_bounds(n)
    assert got_k == k
    assert got_cover == pytest.approx(float(_cover(n, k)), abs=1e-12)
    assert got_lam == pytest.approx(float(lam), abs=1e-9)


def test_order_interval_textbook_n10():
    """n = 10: k = 2, [x(2), x(9)] covers 1 - 22/1024; the interval interpolates inwards."""
    x = np.arange(1.0, 11.0)
    k, lam, cover = order_statistic_bounds(10)
    assert (k, cover) == (2, 1 - 22 / 1024)
    iv = interval(x[::-1])  # order of the input does not matter
    assert iv.method == "order" and iv.point == 5.5
    assert iv.low == pytest.approx(2 + lam) and iv.high == pytest.approx(9 - lam)


def test_order_interval_below_six_values_is_min_max_with_its_coverage():
    iv = interval([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (iv.low, iv.high) == (1.0, 5.0)
    assert "93.8%" in iv.note


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_methods_are_scipy(method):
    x = np.random.default_rng(3).lognormal(size=15)
    iv = interval(x, "mean", method=method, n_resamples=999, seed=7)
    ref = scipy.stats.bootstrap((x,), np.mean, n_resamples=999, method=method, rng=np.random.default_rng(7))
    assert (iv.low, iv.high) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert iv.point == pytest.approx(x.mean())


def test_degenerate_inputs_say_why():
    assert interval([]).note == "no values" and math.isnan(interval([]).point)
    one = interval([0.3, np.nan])
    assert one.point == 0.3 and math.isnan(one.low) and "no interval" in one.note
    flat = interval([2.0] * 6)
    assert (flat.low, flat.high) == (2.0, 2.0) and "equal" in flat.note
    with pytest.raises(ValueError):
        interval([1.0, 2.0], "mean", method="order")
    with pytest.raises(ValueError):
        interval([1.0, 2.0], method="magic")


def test_unit_is_the_resampled_thing_and_one_unit_is_one_measurement():
    """Four seeds in one stacked program share one timing: one measurement, not a zero-width CI."""
    t = np.array([0.003] * 4)
    iv = interval(t, unit=["p1"] * 4)
    assert iv.n == 1 and math.isnan(iv.low) and "one measurement" in iv.note
    t = np.array([0.003] * 4 + [0.004] * 4 + [0.0035] * 4)
    iv = interval(t, unit=np.repeat(["p1", "p2", "p3"], 4))
    assert iv.n == 3 and iv.point == 0.0035
    assert iv.high > iv.low  # three programs: an interval of non-zero width over programs


#: 4000 studies: the Monte-Carlo standard error of a 95% coverage is 0.0034, so the 94-96% band
#: the design asks for is three standard errors wide on either side.
N_SIM = 4000


@pytest.mark.parametrize("name", ["normal", "t3", "counts"])
def test_median_interval_coverage_at_10_seeds(name):
    """Nominal 95% at 10 seeds: the interpolated order interval covers 95% within Monte-Carlo error.

    "counts": paired differences of correct counts on a 5000-example validation set.
    """
    draw = {
        "normal": lambda r: r.normal(0.0, 1.0, 10),
        "t3": lambda r: r.standard_t(3, 10),
        "counts": lambda r: r.binomial(5000, 0.97, 10) - r.binomial(5000, 0.97, 10),
    }[name]
    rng = np.random.default_rng(20261127)
    hits = 0
    for _ in range(N_SIM):
        iv = interval(draw(rng))
        hits += iv.low <= 0.0 <= iv.high
    assert 0.94 <= hits / N_SIM <= 0.96


def _median_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(y, axis=axis) - np.median(x, axis=axis)


def test_two_sample_is_scipys_unpaired_bootstrap():
    """Each side resampled on its own: scipy's replicates, draw for draw, and their percentiles."""
    rng = np.random.default_rng(5)
    b, c = rng.normal(0, 1, 9), rng.normal(0.5, 1, 7)
    iv = two_sample((b,), (c,), _median_diff, n_resamples=999, seed=42)
    ref = scipy.stats.bootstrap((b, c), _median_diff, paired=False, vectorized=True, n_resamples=999,
                                method="percentile", rng=np.random.default_rng(42))
    assert np.array_equal(iv.replicates, ref.bootstrap_distribution)
    low, high = np.quantile(ref.bootstrap_distribution, [0.025, 0.975], method="inverted_cdf")
    assert (iv.low, iv.high) == (low, high)
    assert iv.point == _median_diff(b, c) and iv.n == 16


def test_two_sample_keeps_each_rows_columns_together():
    """(duration, event) rows are resampled as rows: a resample never pairs a duration with
    another run's event (here event == duration is odd, which any mix-up would break)."""
    t = np.arange(1.0, 11.0)
    e = t % 2 == 1

    def consistent(tb, eb, tc, ec, axis=-1):
        ok = np.all(eb == (tb % 2 == 1), axis=axis) & np.all(ec == (tc % 2 == 1), axis=axis)
        return ok.astype(float)

    iv = two_sample((t, e), (t[:6], e[:6]), consistent, n_resamples=500, seed=1)
    assert np.all(iv.replicates == 1.0)


def test_two_sample_without_two_units_a_side_says_so():
    iv = two_sample((np.array([1.0]),), (np.array([1.0, 2.0]),), _median_diff)
    assert iv.point == 0.5 and math.isnan(iv.low) and iv.replicates is None and "2 units" in iv.note
