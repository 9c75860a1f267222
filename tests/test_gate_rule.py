"""The gate's decision rule (issue 10): tests against the limit, counts, permutation log-rank.

Known answers come from scipy and lifelines; the procedure is checked by seeded
simulations with planted truth shaped like the gate grid (tests/gate_sim.py). The
simulation tests use 30 trials per condition to stay within a minute; the larger runs
quoted in docs/ci.md come from ``python tests/gate_sim.py 200``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from lifelines.statistics import logrank_test

import gate_sim as g
from reports import stats
from reports.compare import ALL_CELLS, Thresholds, compare_data
from reports.threshold_tests import assignments, logrank_p, logrank_z, rank_sum_p

TRIALS = 30
#: An exact test rejects at most alpha in expectation; over N seeded trials allow the
#: one-sided 99% binomial margin, 2.33 * sqrt(alpha (1 - alpha) / N).
def _margin(n: int, alpha: float = 0.05) -> float:
    return 2.33 * math.sqrt(alpha * (1 - alpha) / n)


# ----------------------------------------------------------------------- known answers


@pytest.mark.parametrize("higher_is_worse,alternative", [(True, "greater"), (False, "less")])
def test_rank_sum_is_scipys_exact_permutation_mann_whitney(higher_is_worse, alternative):
    rng = np.random.default_rng(3)
    for _ in range(2):
        b, c = rng.integers(0, 6, 8).astype(float), rng.integers(0, 6, 8).astype(float)  # many ties
        exact = scipy.stats.mannwhitneyu(
            c, b, alternative=alternative, method=scipy.stats.PermutationMethod(n_resamples=np.inf)).pvalue
        assert rank_sum_p(b, c, higher_is_worse, 1000, rng) == pytest.approx(exact, rel=1e-12)


def test_logrank_statistic_is_lifelines():
    rng = np.random.default_rng(4)
    t = rng.integers(1, 6, 16).astype(float)
    e = rng.random(16) < 0.7
    labels, _ = assignments(8, 8, 10, rng)
    z = logrank_z(t, e, labels[:1])[0]
    ref = logrank_test(t[:8], t[8:], e[:8], e[8:])
    assert z**2 == pytest.approx(ref.test_statistic, rel=1e-10)


def test_exact_enumeration_is_used_at_8_vs_8():
    labels, exact = assignments(8, 8, 100, np.random.default_rng(0))
    assert exact and labels.shape == (math.comb(16, 8) + 1, 16)
    assert (labels[1:].sum(axis=1) == 8).all() and len({r.tobytes() for r in labels[1:]}) == labels.shape[0] - 1


def test_permutation_logrank_holds_its_size_where_the_chi_square_does_not():
    """A/A at 8 vs 8 with epochs 2..5 and censoring: the permutation test rejects <= alpha."""
    n, rng = 300, np.random.default_rng(5)
    perm = chi2 = 0
    for _ in range(n):
        t = rng.choice([2, 3, 4, 5, 6], size=16, p=[0.2, 0.3, 0.25, 0.15, 0.1]).astype(float)
        e = t <= 5
        t = np.minimum(t, 5)
        perm += logrank_p(t[:8], e[:8], t[8:], e[8:], 1000, rng) < 0.05
        chi2 += stats.logrank(t, e, np.repeat(["b", "c"], 8)).p < 0.05
    assert perm / n <= 0.05 + _margin(n)
    print(f"A/A 8 vs 8: permutation {perm / n:.1%}, chi-square (two-sided) {chi2 / n:.1%}")


# -------------------------------------------------------------------- decision rule


def test_at_the_limit_is_not_a_regression_past_it_is():
    """The shifted test: a change exactly at the limit leaves p large; far past, small."""
    rng = np.random.default_rng(6)
    b = g.side(rng)
    t = g.gate_thresholds()
    same = compare_data(b, b, t, n_resamples=200)
    assert same.passed and (same.rows["p"].dropna() > 0.5).all()
    far = compare_data(b, g.side(rng, acc_drop=0.08), t, n_resamples=200)
    row = far.rows[(far.rows["cell"] == ALL_CELLS) & (far.rows["metric"] == "final_val_acc")].iloc[0]
    assert row["regression"] and row["limit"] == pytest.approx(-0.02)


def test_accuracies_are_compared_as_counts():
    """Equal counts that differ by an ulp as floats give identical p-values and medians."""
    rng = np.random.default_rng(7)
    b, c = g.side(rng), g.side(rng, acc_drop=0.01)
    jitter = c.runs.copy()
    jitter["final_val_acc"] = np.nextafter(jitter["final_val_acc"], np.where(rng.random(len(jitter)) < 0.5, 0, 2))
    assert (jitter["final_val_acc"] != c.runs["final_val_acc"]).all()
    c2 = type(c)(**{**c.__dict__, "runs": jitter})
    t = g.gate_thresholds()
    one, two = (compare_data(b, x, t, n_resamples=200, seed=1).rows for x in (c, c2))
    acc = one["metric"] == "final_val_acc"
    assert one.loc[acc, "p"].tolist() == two.loc[acc, "p"].tolist()
    assert one.loc[acc, "change"].tolist() == two.loc[acc, "change"].tolist()


@pytest.mark.parametrize("per_program", [8, 4])
def test_shared_timings_never_give_zero_width_intervals(per_program):
    rng = np.random.default_rng(8)
    b = g.side(rng, seeds_in_program=per_program)
    c = g.side(rng, seeds_in_program=per_program, slowdown=1.3)
    rows = compare_data(b, c, g.gate_thresholds(), n_resamples=200).rows
    timing = rows[rows["metric"].isin(["epoch_s", "time_to_target_s"])]
    width = (timing["change_high"] - timing["change_low"]).to_numpy()
    assert not (np.isfinite(width) & (width <= 0)).any()
    assert timing.loc[timing["metric"] == "time_to_target_s", "change_low"].isna().all()
    from reports.tables import SHARED_TIMING_NOTE  # the report's note, said once

    assert timing.loc[timing["metric"] == "time_to_target_s", "note"].str.contains(SHARED_TIMING_NOTE).all()
    units = timing.loc[(timing["metric"] == "epoch_s") & (timing["cell"] != ALL_CELLS), "n_baseline"]
    assert (units == 8 // per_program).all()  # one unit per program


def test_time_to_target_limit_is_derived_from_the_other_two():
    t = Thresholds(max_slowdown=0.1, max_epochs_increase=1)
    assert t.limit("time_to_target_s", 4.0) == pytest.approx(1.1 * 1.25)
    assert Thresholds(max_time_to_target_increase=0.3).limit("time_to_target_s", 4.0) == pytest.approx(1.3)


# ----------------------------------------------------- planted truth, gate-sized (8 seeds)


@pytest.mark.slow
@pytest.mark.parametrize("planted", [
    {}, {"acc_drop": 0.9 * g.GATE_ACC_DROP}, {"epoch_shift": 0.9 * g.GATE_EPOCHS},
    {"slowdown": 1 + 0.9 * g.SLOWDOWN},
], ids=["A/A", "accuracy 0.9x", "epochs 0.9x", "time per epoch 0.9x"])
def test_changes_within_the_limit_rarely_fail(planted):
    assert g.failure_rate(TRIALS, 11, g.gate_thresholds(), **planted) <= 0.05


@pytest.mark.slow
def test_a_real_5pct_slowdown_does_not_fail_through_time_to_target():
    """Default limits (10% per epoch, 1 epoch): time to target is no stricter back door."""
    assert g.failure_rate(TRIALS, 12, Thresholds(), slowdown=1.05) <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("planted", [
    {"acc_drop": 2 * g.GATE_ACC_DROP}, {"epoch_shift": 2 * g.GATE_EPOCHS},
    {"slowdown": 1 + 2 * g.SLOWDOWN},
], ids=["accuracy 2x", "epochs 2x", "time per epoch 2x"])
def test_changes_at_twice_the_limit_are_caught_with_8_seeds(planted):
    assert g.failure_rate(TRIALS, 13, g.gate_thresholds(), **planted) >= 0.8


# ------------------------------------------------------------------------------ power


def test_power_statement_says_what_cannot_be_detected():
    rng = np.random.default_rng(9)
    b = g.side(rng, seeds_in_program=8)
    c = compare_data(b, g.side(rng, seeds_in_program=8), g.gate_thresholds(), n_resamples=200, power_sims=20)
    by = {d.metric: d for d in c.detectable}
    assert set(by) == {"final_val_acc", "epochs_to_target", "epoch_s"}
    assert math.isnan(by["epoch_s"].change) and "1 timing measurement" in by["epoch_s"].note
    acc = by["final_val_acc"]
    assert math.isfinite(acc.change) and acc.power[acc.multiple] >= 0.8
    assert all(p < 0.8 for r, p in acc.power.items() if r < acc.multiple)


def test_power_line_names_the_detectable_slowdown():
    from bench.commands.compare import power_line

    rng = np.random.default_rng(10)
    c = compare_data(g.side(rng), g.side(rng), g.gate_thresholds(), n_resamples=200, power_sims=20)
    line = power_line(c)
    assert "this comparison can detect" in line and "a slow-down of" in line and "with 80% power" in line
