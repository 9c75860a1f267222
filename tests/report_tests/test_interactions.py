"""reports.interactions against synthetic stores with planted interactions (no training)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/interaction_helpers.py

from interaction_helpers import build_interaction_store  # noqa: E402
from reports import interactions as ix  # noqa: E402

#: BN after the activation helps by 2pp at lr 0.01 and hurts by 1pp at lr 0.1;
#: BN before helps by 1pp at both (no interaction for it).
PLANTED = {0.01: {"none": 0.0, "before": 0.01, "after": 0.02},
           0.1: {"none": 0.0, "before": 0.01, "after": -0.01}}
NO_INTERACTION = {0.01: {"none": 0.0, "before": 0.01, "after": 0.013},
                  0.1: {"none": 0.0, "before": 0.01, "after": 0.013}}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_interaction_store(tmp_path_factory.mktemp("ix") / "planted.sqlite", effects=PLANTED)


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    return build_interaction_store(tmp_path_factory.mktemp("ix") / "flat.sqlite", effects=NO_INTERACTION)


def _effect(effects, placement, level, metric="final_val_acc", factor="learning_rate"):
    row = effects[(effects["arm"] == placement) & (effects["level"] == level)
                  & (effects["metric"] == metric) & (effects["factor"] == factor)]
    assert len(row) == 1
    return row.iloc[0]


def test_effect_per_level_recovers_the_planted_effects(planted):
    effects = ix.bn_effect_by_level(planted, n_resamples=500)
    for level, by_placement in PLANTED.items():
        for placement in ("before", "after"):
            row = _effect(effects, placement, level)
            truth = by_placement[placement]
            assert row["n_pairs"] == 12 and row["n_dropped"] == 0
            assert row["diff_low"] <= truth <= row["diff_high"], (placement, level, row.to_dict())
            assert row["diff"] == pytest.approx(truth, abs=0.003)
    assert set(effects["reference"]) == {"none"}


def test_planted_interaction_is_flagged_and_absent_one_is_not(planted):
    tests = ix.interaction_tests(planted, n_permutations=2000)
    acc = tests[tests["metric"] == "final_val_acc"].set_index("arm")
    assert acc.loc["after", "flagged"] and acc.loc["after", "p_holm"] < 0.01
    assert (tests["flagged"] == (tests["p_holm"] < 0.05)).all()  # the only rule that flags
    assert (tests["n_blocks"] == 12).all()  # one block per seed
    assert not acc.loc["before", "flagged"] and acc.loc["before", "p"] > 0.05
    assert (tests["levels"] == 2).all()


def test_store_without_interaction_flags_nothing(flat):
    tests = ix.interaction_tests(flat, n_permutations=2000)
    acc = tests[tests["metric"] == "final_val_acc"]
    assert not acc["flagged"].any() and (acc["p"] > 0.05).all()


def test_interaction_is_attributed_to_the_right_factor(tmp_path):
    """Two varying factors; only learning_rate changes BN's effect."""
    data = build_interaction_store(
        tmp_path / "two.sqlite", effects=PLANTED, placements=("none", "after"), seeds=10,
        extra_factors={"batch_size": [32, 64]},
    )
    tests = ix.interaction_tests(data, metrics=["final_val_acc"], n_permutations=2000).set_index("factor")
    assert tests.loc["learning_rate", "flagged"]
    assert not tests.loc["batch_size", "flagged"]
    effects = ix.bn_effect_by_level(data, metrics=["final_val_acc"], n_resamples=300)
    # Pooled over batch sizes, each learning rate has 2 cells x 10 seeds of pairs.
    assert _effect(effects, "after", 0.01)["n_pairs"] == 20
    # batch_size marginal: the average of +2pp and -1pp.
    assert _effect(effects, "after", 32, factor="batch_size")["diff"] == pytest.approx(0.005, abs=0.01)


def test_epochs_to_target_is_not_reported_when_nothing_reached(tmp_path):
    data = build_interaction_store(tmp_path / "hi.sqlite", effects=PLANTED, target=0.999, seeds=4)
    effects = ix.bn_effect_by_level(data, metrics=["epochs_to_target"], n_resamples=200)
    assert effects["diff"].isna().all()
    assert (effects["note"] == "no run reached the target").all()


def test_epochs_to_target_effect_has_the_right_sign(planted):
    """A higher final accuracy reaches the 0.9 target sooner in the synthetic curves."""
    effects = ix.bn_effect_by_level(planted, metrics=["epochs_to_target"], n_resamples=300)
    assert _effect(effects, "after", 0.01, "epochs_to_target")["diff"] < 0
    assert _effect(effects, "after", 0.1, "epochs_to_target")["diff"] > 0


def test_diverged_runs_dropped_or_scored(tmp_path):
    statuses = {("none", 0.1, s): "diverged" for s in range(6)}
    data = build_interaction_store(tmp_path / "div.sqlite", effects=NO_INTERACTION, seeds=6,
                                   placements=("none", "after"), statuses=statuses)
    dropped = ix.bn_effect_by_level(data, metrics=["final_val_acc"], n_resamples=200)
    row = _effect(dropped, "after", 0.1)
    assert row["n_pairs"] == 0 and row["n_dropped"] == 6 and np.isnan(row["diff"])
    scored = ix.bn_effect_by_level(data, metrics=["final_val_acc"], diverged_value=0.1, n_resamples=200)
    assert _effect(scored, "after", 0.1)["diff"] == pytest.approx(0.92 + 0.013 - 0.1, abs=0.02)
    tests = ix.interaction_tests(data, metrics=["final_val_acc"], diverged_value=0.1, n_permutations=1000)
    assert tests["flagged"].all()


def test_interactions_bundle(planted):
    both = ix.interactions(planted, n_resamples=200, n_permutations=500, alpha=0.05)
    assert len(both.effects) == 2 * 2 * 2  # placements x metrics x levels
    assert len(both.tests) == 2 * 2  # placements x metrics (one other factor)


# ------------------------------------------------------------------ permutation test


def test_permutation_p_small_for_shifted_levels_and_large_for_same():
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.normal(0, 1, 15), rng.normal(2, 1, 15)])
    levels = np.repeat(["a", "b"], 15)
    stat, p = ix.permutation_interaction_p(d, levels, n_permutations=2000, seed=1)
    assert stat > 0 and p < 0.01 and p >= 1 / 2001
    same = rng.normal(0, 1, 30)
    assert ix.permutation_interaction_p(same, levels, n_permutations=2000, seed=1)[1] > 0.05


def test_permutation_p_is_calibrated_under_the_null():
    rng = np.random.default_rng(5)
    levels = np.repeat([0, 1, 2], 8)
    ps = [ix.permutation_interaction_p(rng.normal(0, 1, 24), levels, n_permutations=199, seed=i)[1]
          for i in range(200)]
    assert np.mean(np.array(ps) < 0.05) == pytest.approx(0.05, abs=0.04)


def test_permutation_needs_two_levels():
    assert np.isnan(ix.permutation_interaction_p(np.ones(5), np.zeros(5))[1])


# ---------------------------------------------------------------------------- ranking


def test_probability_of_improvement(planted, flat):
    poi = ix.probability_of_improvement(flat, n_resamples=500).set_index(["arm", "versus"])
    row = poi.loc[("after", "none")]
    assert row["p_improve"] > 0.95 and row["n_pairs"] == 24 and row["n_cells"] == 2
    assert row["low"] <= row["p_improve"] <= row["high"]
    for (a, b), r in poi.iterrows():  # ties count 1/2, so the two directions sum to 1
        assert r["p_improve"] + poi.loc[(b, a), "p_improve"] == pytest.approx(1.0)
    # Planted: after beats none at lr 0.01 (+2pp) and loses at lr 0.1 (-1pp): about 1/2 pooled.
    mixed = ix.probability_of_improvement(planted, n_resamples=500).set_index(["arm", "versus"])
    r = mixed.loc[("after", "none")]
    # Every seed wins at lr 0.01 and loses at 0.1: the seeds do not vary, each counts as one trial.
    assert r["p_improve"] == pytest.approx(0.5) and r["n_seeds"] == 12
    assert r["low"] < 0.3 and r["high"] > 0.7


def test_probability_of_improvement_of_equal_placements_is_a_half(tmp_path):
    same = {0.01: {"none": 0.0, "after": 0.0}, 0.1: {"none": 0.0, "after": 0.0}}
    data = build_interaction_store(tmp_path / "eq.sqlite", effects=same, placements=("none", "after"), seeds=20)
    r = ix.probability_of_improvement(data, n_resamples=500).set_index(["arm", "versus"]).loc[("after", "none")]
    assert r["low"] < 0.5 < r["high"]


def test_performance_profile(planted):
    prof = ix.performance_profile(planted, taus=(0.0, 0.015, 0.05)).set_index(["arm", "tau"])["fraction"]
    # lr 0.01: after best (before -1pp, none -2pp); lr 0.1: before best (none -1pp, after -2pp).
    assert prof[("after", 0.0)] == 0.5 and prof[("before", 0.0)] == 0.5 and prof[("none", 0.0)] == 0.0
    assert prof[("before", 0.015)] == 1.0 and prof[("after", 0.015)] == 0.5 and prof[("none", 0.015)] == 0.5
    assert (prof.xs(0.05, level="tau") == 1.0).all()


def test_performance_profile_for_epochs_lower_is_better(planted):
    prof = ix.performance_profile(planted, metric="epochs_to_target", taus=(0.0, 100.0))
    assert prof.loc[prof["tau"] == 100.0, "fraction"].eq(1.0).all()
    assert prof.loc[prof["tau"] == 0.0, "fraction"].max() > 0


def test_module_is_tensorflow_free():
    import subprocess

    code = ("import sys, reports.interactions, reports.power; "
            "sys.exit(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------- seed-blocked simulations (issue 16, measured)
#
# The same seed appears in every cell, and a seed's BN effect is shared by its cells (u below).
# Each simulation plants the truth, counts outcomes and checks them against a band derived
# from the binomial distribution of that count (99% two-sided unless said otherwise).

SEED_SD, NOISE_SD = 0.004, 0.002  # a seed's own BN effect; each run's noise


def _binomial_band(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    import scipy.stats

    return tuple(int(v) for v in scipy.stats.binom.interval(level, n, p))


def _sim_data(rng, *, seeds: int, factors: dict, effect, placements=("none", "after")):
    """An in-memory StoreData: acc = 0.9 + seed baseline + effect(placement, levels) + u + noise."""
    import itertools

    import pandas as pd

    from reports.load import StoreData

    names = list(factors)
    base = rng.normal(0, SEED_SD, seeds)
    u = {p: rng.normal(0, SEED_SD, seeds) if p != placements[0] else np.zeros(seeds) for p in placements}
    rows = []
    for levels in itertools.product(*factors.values()):
        cell = ", ".join(f"{n}={v}" for n, v in zip(names, levels))
        for p in placements:
            eff = 0.0 if p == placements[0] else effect(p, dict(zip(names, levels)))
            acc = 0.9 + base + eff + u[p] + rng.normal(0, NOISE_SD, seeds)
            rows += [{"cell": cell, "placement": p, "arm": p, "seed": s, "status": "ok", "analysed": True,
                      "epochs_to_target": 3.0, "epochs_budget": 10, "final_val_acc": acc[s],
                      **dict(zip(names, levels))} for s in range(seeds)]
    runs = pd.DataFrame(rows)
    return StoreData(Path("simulated"), None, runs, pd.DataFrame(), pd.DataFrame(), names, list(placements))


def _seed_shared_differences(rng, n_sims: int, seeds: int, gamma: float) -> np.ndarray:
    """(n_sims, 2 levels x seeds) paired differences: effect + u_seed (shared) + noise (+gamma at level 1)."""
    u = rng.normal(0, SEED_SD, (n_sims, 1, seeds))
    noise = rng.normal(0, NOISE_SD * math.sqrt(2), (n_sims, 2, seeds))  # d = noise_b - noise_a
    return (0.01 + u + noise + np.array([0.0, gamma])[None, :, None]).reshape(n_sims, -1)


def test_interaction_size_is_nominal_only_when_permuting_within_seeds():
    """No interaction, 10 seeds, 2 levels: within-seed permutation rejects ~5%; the pooled one ~1%."""
    rng = np.random.default_rng(16)
    n_sims, seeds = 1000, 10
    d = _seed_shared_differences(rng, n_sims, seeds, gamma=0.0)
    levels, blocks = np.repeat([0, 1], seeds), np.tile(np.arange(seeds), 2)
    within = np.array([ix.permutation_interaction_p(x, levels, blocks, n_permutations=999, seed=i)[1]
                       for i, x in enumerate(d)])
    pooled = np.array([ix.permutation_interaction_p(x, levels, None, n_permutations=999, seed=i)[1]
                       for i, x in enumerate(d)])
    low, high = _binomial_band(n_sims, 0.049)  # p < 0.05 with 999 permutations: exact size 49/1000
    assert low <= int((within < 0.05).sum()) <= high
    assert int((pooled < 0.05).sum()) < low  # the old test: far below nominal (issue 16: ~1%)


def test_interaction_power_matches_a_reference_within_seed_test(tmp_path):
    """Planted interaction (+2.5 pp... at one level): the report's test vs a textbook sign-flip test.

    Reference: per seed, the difference of the two levels' paired effects; statistic |mean|;
    null by flipping each seed's sign. Same data, so only Monte Carlo noise separates them:
    the report's power must not fall below the reference by more than 3 standard errors of a
    paired difference of proportions. The pooled permutation is clearly weaker.
    """
    rng = np.random.default_rng(1616)
    n_sims, seeds, n_perm = 200, 10, 499
    ours, ref, pooled = [], [], []
    for i in range(n_sims):
        data = _sim_data(rng, seeds=seeds, factors={"learning_rate": [0.01, 0.1]},
                         effect=lambda p, lv: 0.01 + (0.0025 if lv["learning_rate"] == 0.1 else 0.0))
        t = ix.interaction_tests(data, metrics=["final_val_acc"], n_permutations=n_perm, seed=i)
        ours.append(t["p"].iloc[0] < 0.05)
        pairs = ix.paired_frame(ix._analysed(data, None), "none", "after", "final_val_acc")
        wide = pairs.pivot(index="seed", columns="learning_rate", values="d")
        x = (wide[0.1] - wide[0.01]).to_numpy()
        flips = np.random.default_rng(i).choice([-1.0, 1.0], size=(n_perm, x.size))
        ref.append((1 + (np.abs((flips * x).mean(1)) >= abs(x.mean()) * (1 - 1e-9)).sum()) / (1 + n_perm) < 0.05)
        _, p_pool = ix.permutation_interaction_p(pairs["d"].to_numpy(), pairs["learning_rate"].to_numpy(),
                                                 None, n_permutations=n_perm, seed=i)
        pooled.append(p_pool < 0.05)
    ours, ref, pooled = (np.array(v) for v in (ours, ref, pooled))
    se = math.sqrt((ours != ref).sum()) / n_sims
    assert ours.mean() >= ref.mean() - 3 * se - 1e-12
    assert ours.mean() > pooled.mean()
    assert 0.2 < ref.mean() < 0.95  # a scenario where power can differ at all


def test_interaction_holm_family_wise_error_per_store():
    """No interaction, two factors, two BN placements: 4 tests per store; Holm keeps FWER <= 5%."""
    rng = np.random.default_rng(2016)
    n_stores, any_flag, raw = 150, 0, 0
    for i in range(n_stores):
        data = _sim_data(rng, seeds=8, factors={"learning_rate": [0.01, 0.1], "batch_size": [32, 64]},
                         effect=lambda p, lv: 0.01 if p == "after" else 0.005,
                         placements=("none", "before", "after"))
        t = ix.interaction_tests(data, metrics=["final_val_acc"], n_permutations=199, seed=i)
        assert len(t) == 4 and (t["n_blocks"] == 16).all()  # 8 seeds x 2 levels of the other factor
        any_flag += bool(t["flagged"].any())
        raw += int((t["p"] < 0.05).sum())
    assert any_flag <= _binomial_band(n_stores, 0.05)[1]  # one-sided: not above 5% beyond chance
    assert raw >= _binomial_band(4 * n_stores, 0.045)[0]  # the raw tests are not dead either


def test_no_finding_from_overlap_without_a_significant_test():
    """Intervals that do not overlap but Holm p >= 0.05: no interaction sentence in the Findings."""
    import pandas as pd

    from reports.render import findings
    from reports.tables import Tables

    data = _sim_data(np.random.default_rng(3), seeds=4, factors={"learning_rate": [0.01, 0.1]},
                     effect=lambda p, lv: 0.0)
    effects = pd.DataFrame([
        {"factor": "learning_rate", "level": lv, "arm": "after", "reference": "none",
         "metric": "final_val_acc", "n_pairs": 4, "n_dropped": 0, "diff": d, "diff_low": d - 0.001,
         "diff_high": d + 0.001, "note": ""} for lv, d in ((0.01, 0.02), (0.1, -0.01))])
    tests = pd.DataFrame([{"factor": "learning_rate", "arm": "after", "reference": "none",
                           "metric": "final_val_acc", "levels": 2, "n_blocks": 4, "stat": 1.0,
                           "p": 0.0625, "p_holm": 0.0625, "flagged": False}])
    empty = Tables(pd.DataFrame(columns=["note"]), pd.DataFrame(), 10)
    text = " ".join(findings(data, empty, ix.Interactions(effects, tests)))
    assert "depend" not in text
    flagged = tests.assign(p=0.001, p_holm=0.004, flagged=True)
    assert "depends on learning_rate" in " ".join(findings(data, empty, ix.Interactions(effects, flagged)))


@pytest.mark.parametrize(("seeds", "cells", "delta", "upper"),
                         [(10, 8, 1.0, 0.97), (20, 4, 0.0, 0.97), (10, 4, 0.5, 0.99), (10, 2, 1.0, 0.99)])
def test_probability_of_improvement_interval_covers_with_shared_seed_effects(seeds, cells, delta, upper):
    """d = delta + u_seed (shared by the seed's cells, sd 1) + noise (sd 1): at least 93% coverage.

    Truth: P(d > 0) = Phi(delta / sqrt(2)). 2000 simulated studies (99% binomial spread of the
    count: +-0.012 around 0.95). With 8+ cells it stays within the 93-97% band; with 2-4 cells
    a seed's mean score takes few values and the interval is conservative (measured up to 0.98).
    """
    import scipy.stats

    rng = np.random.default_rng(seeds * 100 + cells)
    truth = scipy.stats.norm.cdf(delta / math.sqrt(2))
    seed_ids = np.tile(np.arange(seeds), cells)
    covered = 0
    n_sims = 2000
    for _ in range(n_sims):
        d = delta + np.tile(rng.normal(0, 1, seeds), cells) + rng.normal(0, 1, seeds * cells)
        est = ix.seed_clustered_proportion((d > 0).astype(float), seed_ids)
        covered += est.low <= truth <= est.high
    assert 0.93 <= covered / n_sims <= upper, covered / n_sims


def test_probability_of_improvement_interval_known_answers():
    # One pair per seed: the cluster variance is p(1-p)/(n-1) (ddof 1), so the Wilson interval
    # has effective size n - 1 = 9, with a t quantile on n - 1 df.
    import scipy.stats

    x = np.array([1, 1, 1, 0, 1, 0, 1, 1, 1, 1], float)
    est = ix.seed_clustered_proportion(x, np.arange(10))
    q, n, p = scipy.stats.t.ppf(0.975, 9), 9, 0.8
    half = q * math.sqrt(p * (1 - p) / n + q * q / (4 * n * n)) / (1 + q * q / n)
    centre = (p + q * q / (2 * n)) / (1 + q * q / n)
    assert est.point == pytest.approx(0.8)
    assert (est.low, est.high) == pytest.approx((centre - half, centre + half), rel=1e-12)
    # The same scores repeated in 3 cells per seed carry no more information than 10 seeds.
    again = ix.seed_clustered_proportion(np.repeat(x, 3), np.repeat(np.arange(10), 3))
    assert (again.low, again.high) == pytest.approx((est.low, est.high), rel=1e-9)
    # Every pair won: each seed one trial; the bound is below 1.
    allwin = ix.seed_clustered_proportion(np.ones(30), np.repeat(np.arange(10), 3))
    assert allwin.point == 1.0 and allwin.high == 1.0 and 0.6 < allwin.low < 0.95
    assert np.isnan(ix.seed_clustered_proportion(np.ones(3), np.zeros(3)).low)
