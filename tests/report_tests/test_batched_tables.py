"""The report's tables computed for all (cell, arm) groups at once equal the one-group code.

``reports.tables`` builds its tables column-wise: ``intervals.median_intervals``,
``stats.wilcoxon_ps``, ``stats.p_improves`` and ``stats.paired_logranks`` take every group
in one call (groups of one size as the rows of one array). Each is checked here, group by
group, against the one-sample code it replaced (copied below from main at 71d289d, the
reference), on seeded random groups with ties, NaNs, infinities, censoring, unequal sizes,
one-value and empty groups. Equality is exact: the batched paths perform the same float
operations on the same values in the same order, so no tolerance is needed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports import intervals, stats
from reports.intervals import Interval
from reports.signed_rank import signed_rank_p

# ------------------------------------------------------------------ the reference (main 71d289d)


def _old_per_unit(x: np.ndarray, unit: np.ndarray | None) -> np.ndarray:
    if unit is None:
        return x
    _, first, inverse = np.unique(np.asarray(unit), return_index=True, return_inverse=True)
    return (np.bincount(inverse, weights=x) / np.bincount(inverse))[np.argsort(first)]


def _old_median_interval(data: np.ndarray, unit: np.ndarray | None = None) -> Interval:
    """``intervals.interval(data, unit=unit)`` (the median, method "order") before batching."""
    x = np.asarray(data, dtype=float)
    keep = np.isfinite(x)
    x = _old_per_unit(x[keep], None if unit is None else np.asarray(unit)[keep])
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, n=0, method="order", note="no values")
    x = np.sort(x)
    point = float(np.median(x))
    if n == 1:
        what = "one measurement" if unit is not None else "one value"
        return Interval(point, n=1, method="order", note=f"{what}: no interval")
    if x[0] == x[-1]:
        return Interval(point, point, point, n=n, method="order", note=f"all {n} values are equal")
    k, lam, cover = intervals.order_statistic_bounds(n)
    if k == 0:
        return Interval(point, float(x[0]), float(x[-1]), n=n, method="order",
                        note=f"[min, max] of {n} values covers only {cover:.1%}")
    low = lam * x[k] + (1 - lam) * x[k - 1]
    high = lam * x[n - k - 1] + (1 - lam) * x[n - k]
    return Interval(point, float(low), float(high), n=n, method="order")


def _old_wilcoxon_p(a: np.ndarray, b: np.ndarray) -> stats.TestResult:
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    d = d[np.isfinite(d)]
    name = "Wilcoxon signed-rank"
    if d.size < 2:
        return stats.TestResult(math.nan, name, f"no test possible with {d.size} paired seed(s)")
    if np.all(d == 0):
        return stats.TestResult(math.nan, name, "all paired differences are zero")
    return stats.TestResult(float(signed_rank_p(d)[0]), name)  # one row: signed_rank._one_row_p


def _old_p_improve(a: np.ndarray, b: np.ndarray, higher: bool = True) -> Interval:
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return Interval(math.nan, n=0, note="no paired values")
    k = float(np.sum(d > 0 if higher else d < 0) + 0.5 * np.sum(d == 0))
    low, high = stats._clopper_pearson(k, n)
    return Interval(k / n, low, high, n=n)


def _old_logrank_scores(durations: np.ndarray, events: np.ndarray) -> np.ndarray:
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    times = np.unique(t[e])
    d = np.array([np.sum((t == u) & e) for u in times], dtype=float)
    n = np.array([np.sum(t >= u) for u in times], dtype=float)
    cum = np.cumsum(d / n) if times.size else np.zeros(0)
    idx = np.searchsorted(times, t, side="right") - 1
    hazard = np.where(idx >= 0, cum[np.maximum(idx, 0)] if times.size else 0.0, 0.0)
    return e.astype(float) - hazard


def _old_paired_logrank(t_ref, e_ref, t_b, e_b) -> stats.TestResult:
    name = "paired log-rank (permutation)"
    t_ref, t_b = np.asarray(t_ref, dtype=float), np.asarray(t_b, dtype=float)
    e_ref, e_b = np.asarray(e_ref, dtype=bool), np.asarray(e_b, dtype=bool)
    n = t_ref.size
    if n < 2:
        return stats.TestResult(math.nan, name, f"no test possible with {n} paired seed(s)")
    if not (e_ref.any() or e_b.any()):
        return stats.TestResult(math.nan, name, "no run reached the target")
    a = _old_logrank_scores(np.r_[t_ref, t_b], np.r_[e_ref, e_b])
    delta = a[n:] - a[:n]
    if np.allclose(delta, 0.0, atol=1e-12):
        return stats.TestResult(math.nan, name, "every seed pair reached the target at the same epoch")
    return stats.TestResult(stats._signflip_p(delta[np.abs(delta) > 1e-12]), name)


# ------------------------------------------------------------------------- seeded groups


def _sizes(rng: np.random.Generator, count: int) -> np.ndarray:
    """Unequal group sizes with empty, one-value and two-value groups among them."""
    return np.r_[0, 1, 2, 0, 1, rng.integers(0, 25, size=count)]


def _grouped(rng: np.random.Generator, sizes: np.ndarray, values) -> tuple[np.ndarray, np.ndarray]:
    """Values of each group (group after group, then shuffled: groups need not be contiguous)."""
    group = np.repeat(np.arange(len(sizes)), sizes)
    x = values(group.size)
    order = rng.permutation(group.size)
    return x[order], group[order]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _same_interval(got: Interval, want: Interval) -> bool:
    return (all(_same(getattr(got, k), getattr(want, k)) for k in ("point", "low", "high"))
            and (got.n, got.note) == (want.n, want.note))


def _ties_and_nans(rng: np.random.Generator):
    """Integer-valued values (many ties, equal groups) with NaNs and infinities."""
    def values(m: int) -> np.ndarray:
        x = rng.integers(-3, 4, size=m).astype(float) * 0.25
        x[rng.random(m) < 0.1] = np.nan
        x[rng.random(m) < 0.03] = np.inf
        return x
    return values


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["ties", "continuous"])
def test_median_intervals_equal_one_interval_per_group(seed, kind):
    rng = np.random.default_rng(seed)
    sizes = _sizes(rng, 60)
    values = _ties_and_nans(rng) if kind == "ties" else (lambda m: rng.normal(size=m) * 1e3)
    x, group = _grouped(rng, sizes, values)
    got = intervals.median_intervals(x, group, len(sizes))
    for i in range(len(sizes)):
        want = _old_median_interval(x[group == i])
        assert _same_interval(got.at(i), want), (i, got.at(i), want)
        assert _same_interval(intervals.interval(x[group == i]), want)  # the one-group wrapper
    assert {"no values", "one value: no interval"} <= set(got.note)
    assert any(n.startswith("[min, max]") for n in got.note)
    assert any(n.startswith("all ") for n in got.note) == (kind == "ties")


@pytest.mark.parametrize("seed", [3, 4])
def test_median_intervals_by_unit_equal_one_interval_per_group(seed):
    """Timings reduced to one mean per program first (means of non-integers: order matters)."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(rng, 50)
    x, group = _grouped(rng, sizes, lambda m: np.where(rng.random(m) < 0.08, np.nan, rng.gamma(2.0, 0.3, m)))
    unit = np.array([f"p{u}" for u in rng.integers(0, 6, size=x.size)], dtype=object)
    got = intervals.median_intervals(x, group, len(sizes), unit=unit)
    for i in range(len(sizes)):
        mine = group == i
        want = _old_median_interval(x[mine], unit[mine])
        assert _same_interval(got.at(i), want), (i, got.at(i), want)
        np.testing.assert_array_equal(intervals.per_unit(x[mine], unit[mine]), _old_per_unit(x[mine], unit[mine]))
    assert "one measurement: no interval" in got.note


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_wilcoxon_ps_and_p_improves_equal_one_test_per_group(seed):
    rng = np.random.default_rng(seed)
    sizes = np.r_[_sizes(rng, 70), 3, 3, 20, 20, 55]  # > 16 tied and > 50 untied: normal branches
    x, group = _grouped(rng, sizes, lambda m: rng.integers(-4, 5, size=m).astype(float))
    x[rng.random(x.size) < 0.05] = np.nan
    zero = np.flatnonzero(group == len(sizes) - 4)
    x[zero] = 0.0  # a group of zero differences only
    continuous = group == len(sizes) - 1
    x[continuous] = rng.normal(0.2, 1.0, continuous.sum())
    tests = stats.wilcoxon_ps(x, group, len(sizes))
    for higher in (True, False):
        effects = stats.p_improves(x, group, len(sizes), higher=higher)
        for i in range(len(sizes)):
            d = x[group == i]
            assert _same_interval(effects.at(i), _old_p_improve(np.zeros_like(d), d, higher))
    for i in range(len(sizes)):
        d = x[group == i]
        want = _old_wilcoxon_p(np.zeros_like(d), d)
        assert (tests[i].test, tests[i].note) == (want.test, want.note) and _same(tests[i].p, want.p), (i, d)
    notes = {t.note for t in tests}
    assert "all paired differences are zero" in notes and "no test possible with 1 paired seed(s)" in notes
    assert sum(math.isfinite(t.p) for t in tests) >= len(sizes) // 2


@pytest.mark.parametrize("seed", [8, 9])
def test_paired_logranks_equal_one_test_per_group(seed):
    rng = np.random.default_rng(seed)
    sizes = np.r_[_sizes(rng, 60), 4, 4, 20]  # 20 pairs: the normal approximation
    group = np.repeat(np.arange(len(sizes)), sizes)
    budget = 10
    t = rng.integers(1, budget + 4, size=(4, group.size))  # ties; about a quarter censored
    ta, tb = np.minimum(t[0], budget).astype(float), np.minimum(t[1], budget).astype(float)
    ea, eb = t[0] <= budget, t[1] <= budget
    never = group == len(sizes) - 3  # no run of the group reached the target
    ea[never] = eb[never] = False
    same = group == len(sizes) - 2  # every pair at the same epoch
    tb[same], eb[same] = ta[same], ea[same]
    order = rng.permutation(group.size)
    ta, ea, tb, eb, group = ta[order], ea[order], tb[order], eb[order], group[order]
    got = stats.paired_logranks(ta, ea, tb, eb, group, len(sizes))
    for i in range(len(sizes)):
        mine = group == i
        want = _old_paired_logrank(ta[mine], ea[mine], tb[mine], eb[mine])
        assert (got[i].test, got[i].note) == (want.test, want.note) and _same(got[i].p, want.p), i
        np.testing.assert_array_equal(
            stats.logrank_scores(np.r_[ta[mine], tb[mine]], np.r_[ea[mine], eb[mine]]),
            _old_logrank_scores(np.r_[ta[mine], tb[mine]], np.r_[ea[mine], eb[mine]]))
    notes = {r.note for r in got}
    assert {"no run reached the target", "every seed pair reached the target at the same epoch"} <= notes
    assert sum(math.isfinite(r.p) for r in got) >= len(sizes) // 2


def test_logrank_scores_of_float_durations():
    """Non-integer durations with ties, as ``stats.logrank`` callers may pass."""
    rng = np.random.default_rng(10)
    for _ in range(50):
        t = rng.choice(rng.gamma(2.0, 3.0, 6), size=rng.integers(1, 15))
        e = rng.random(t.size) < 0.7
        np.testing.assert_array_equal(stats.logrank_scores(t, e), _old_logrank_scores(t, e))


def test_row_means_equal_np_mean_of_each_row():
    """``summary_columns`` takes the mean epochs to target of groups of one size as row means:
    numpy reduces each contiguous row as it would the row alone (pairwise sums), float values."""
    rng = np.random.default_rng(12)
    for n in [*range(1, 40), 127, 128, 129, 1000]:
        x = rng.normal(size=(5, n)) * 10.0 ** rng.uniform(-6, 6, size=(5, n))
        rows = x[[4, 0, 2]]
        np.testing.assert_array_equal(np.mean(rows, axis=1), [np.mean(r) for r in rows])



def test_test_accuracy_rows_of_groups_with_and_without_test_accuracies():
    """A group whose runs predate the test split gets main's row (NaN, no note but the test's);
    a group without pairs gets none; a group with test accuracies gets the one-group row."""
    from reports import tables

    rng = np.random.default_rng(13)
    n = 7
    acc = rng.integers(900, 960, size=(2, 2 * n)) / 1000
    acc[:, :n] = np.nan  # group 0: unknown
    pairs = tables.Columns({"test_size_a": np.full(2 * n, 1000), "test_acc_at_best_a": acc[0],
                            "test_acc_at_best_b": acc[1]}, 2 * n)
    block = tables.test_accuracy_block(pairs, np.repeat([0, 2], n), 3)
    rows = tables._records([block])
    assert block["group"].tolist() == [0, 2]
    unknown = rows[0]
    assert (unknown["n_pairs"], unknown["diff_note"], unknown["test"], unknown["p_note"]) == \
        (0, "", "", tables.TEST_UNKNOWN_NOTE)
    assert all(math.isnan(unknown[k]) for k in ("diff", "diff_low", "diff_high", "p", "p_improve",
                                                "p_improve_low", "p_improve_high"))
    known = tables.Columns({k: v[n:] for k, v in pairs.cols.items()}, n)
    assert rows[1] == tables.test_accuracy_row(known)
    counts = np.rint(acc[:, n:] * 1000)
    assert rows[1]["p"] == _old_wilcoxon_p(counts[0], counts[1]).p and rows[1]["n_pairs"] == n


def test_logrank_refuses_a_nan_duration():
    """A NaN would sort last and count as at risk at every time (the one-group code left it
    out of every risk set): refused, so no caller gets a silently different score."""
    with pytest.raises(ValueError, match="NaN"):
        stats.logrank_scores(np.array([3.0, 5.0, np.nan, 7.0]), np.array([True, False, True, True]))
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_logrank(np.array([3.0, np.nan]), np.array([True, True]),
                             np.array([4.0, 5.0]), np.array([True, False]))
