"""reports.interactions against synthetic stores with planted interactions (no training)."""

from __future__ import annotations

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
    row = effects[(effects["placement"] == placement) & (effects["level"] == level)
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
    acc = tests[tests["metric"] == "final_val_acc"].set_index("placement")
    assert acc.loc["after", "flagged"] and acc.loc["after", "ci_disjoint"]
    assert acc.loc["after", "p_holm"] < 0.01
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
    poi = ix.probability_of_improvement(flat, n_resamples=500).set_index(["placement", "versus"])
    row = poi.loc[("after", "none")]
    assert row["p_improve"] > 0.95 and row["n_pairs"] == 24 and row["n_cells"] == 2
    assert row["low"] <= row["p_improve"] <= row["high"]
    for (a, b), r in poi.iterrows():  # ties count 1/2, so the two directions sum to 1
        assert r["p_improve"] + poi.loc[(b, a), "p_improve"] == pytest.approx(1.0)
    # Planted: after beats none at lr 0.01 (+2pp) and loses at lr 0.1 (-1pp): about 1/2 pooled.
    mixed = ix.probability_of_improvement(planted, n_resamples=500).set_index(["placement", "versus"])
    r = mixed.loc[("after", "none")]
    # Every seed wins at lr 0.01 and loses at 0.1, so within-cell resampling cannot move it.
    assert r["p_improve"] == pytest.approx(0.5) and r["low"] <= 0.5 <= r["high"]


def test_probability_of_improvement_of_equal_placements_is_a_half(tmp_path):
    same = {0.01: {"none": 0.0, "after": 0.0}, 0.1: {"none": 0.0, "after": 0.0}}
    data = build_interaction_store(tmp_path / "eq.sqlite", effects=same, placements=("none", "after"), seeds=20)
    r = ix.probability_of_improvement(data, n_resamples=500).set_index(["placement", "versus"]).loc[("after", "none")]
    assert r["low"] < 0.5 < r["high"]


def test_performance_profile(planted):
    prof = ix.performance_profile(planted, taus=(0.0, 0.015, 0.05)).set_index(["placement", "tau"])["fraction"]
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
