"""Loading and tables on synthetic stores with planted effects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.intervals import as_counts
from synthetic_store import EFFECT
from synthetic_store import make_spec

from bench.errors import UsageError
from bench.store import StoreError
from reports import stats
from reports.load import load
from reports.tables import build_tables, failures, raw_runs


@pytest.fixture(scope="module")
def planted(planted_store):
    data = load(planted_store)
    return data, build_tables(data, n_resamples=1000)


def test_load_labels_cells_by_varying_factors(planted):
    data, _ = planted
    assert data.cells == ["activation=relu", "activation=tanh"]
    assert data.arms == ["none", "before", "after"]
    assert data.reference == "none"
    assert data.cell_factors == ["activation"]
    assert len(data.runs) == 60


def test_summary_counts_every_status(planted):
    _, t = planted
    s = t.summary.set_index(["cell", "arm"])
    row = s.loc[("activation=relu", "before")]
    assert (row["n_seeds"], row["n_ok"], row["n_failed"]) == (10, 9, 1)
    row = s.loc[("activation=relu", "after")]
    assert (row["n_ok"], row["n_diverged"]) == (9, 1)
    assert row["n_reached"] == 9 and row["success_rate"] == pytest.approx(0.9)


def test_comparisons_paired_by_seed_cover_planted_effects(planted):
    _, t = planted
    c = t.comparisons
    acc = c[c["metric"] == "final_val_acc"]
    for _, r in acc.iterrows():
        true = EFFECT[r["arm"]] - EFFECT["none"]
        assert r["diff_low"] <= true <= r["diff_high"], r.to_dict()
    # the failed seed has no pair (9); the diverged run is scored at chance and kept (10)
    assert dict(zip(acc["arm"], acc["n_pairs"])) == {"before": 9, "after": 10}
    assert (acc.loc[acc["arm"] == "before", "p_holm"] < 0.05).all()
    assert acc.loc[acc["arm"] == "after", "diff_note"].str.contains("chance").all()
    # sensitivity row: the diverged pair dropped, not tested, covers the effect
    sens = c[c["metric"] == "final_val_acc_no_diverged"]
    assert set(sens["arm"]) == {"after"} and set(sens["n_pairs"]) == {9}
    assert sens["p"].isna().all() and sens["p_holm"].isna().all()
    assert ((sens["diff_low"] <= 0.013) & (0.013 <= sens["diff_high"])).all()
    ett = c[c["metric"] == "epochs_to_target"]
    assert (ett["test"] == "paired log-rank (permutation)").all()
    assert set(ett.loc[ett["arm"] == "after", "n_pairs"]) == {10}
    time = c[c["metric"] == "epoch_s"]
    assert (time["diff"] > 0.5).all() and (time["p_improve"] == 0).all()  # every seed slower


def test_one_holm_family_per_question(planted):
    """Accuracy findings do not depend on how many timing or divergence rows the report has."""
    _, t = planted
    c = t.comparisons
    assert set(c["family"]) == {"accuracy", "test accuracy", "epochs to target", "time per epoch",
                                "divergence", ""}
    for family, g in c[c["family"] != ""].groupby("family"):
        np.testing.assert_allclose(g["p_holm"], stats.holm(g["p"]), err_msg=family)
    acc = c[c["family"] == "accuracy"]
    assert acc["p_holm"].max() <= min(1.0, acc["p"].max() * len(acc))


def test_test_accuracy_comparison_pairs_test_scores_at_the_best_epoch(planted):
    """Wiring: the test-accuracy rows pair each seed's test accuracy at its best-validation
    epoch (a diverged run keeps its pre-divergence best), as counts of the test split, median
    of the paired differences."""
    data, t = planted
    c = t.comparisons[t.comparisons["metric"] == "test_acc"]
    assert len(c) == 4
    runs = data.runs[data.runs["analysed"]]
    for _, r in c.iterrows():
        cell = runs[runs["cell"] == r["cell"]].set_index(["placement", "seed"])
        acc = pd.Series(as_counts(cell["test_acc_at_best"], cell["test_size"]) / cell["test_size"], index=cell.index)
        d = (acc.loc[r["arm"]] - acc.loc["none"]).dropna()
        assert r["n_pairs"] == len(d) and r["diff"] == pytest.approx(np.median(d), abs=1e-12)


def test_failures_are_listed_with_errors(planted):
    data, _ = planted
    f = failures(data)
    assert sorted(f["status"]) == ["diverged", "diverged", "failed", "failed"]
    assert f["error"].str.len().gt(0).all()
    assert len(raw_runs(data)) == 60


def test_no_effect_store_finds_no_accuracy_difference(make_store):
    spec = make_spec(placements=["none", "after"], seeds=10)
    data = load(make_store(spec, effect={"none": 0.0, "after": 0.0}))
    t = build_tables(data, n_resamples=500)
    acc = t.comparisons[t.comparisons["metric"] == "final_val_acc"].iloc[0]
    # One synthetic store is one draw (its Wilcoxon p happens to be 0.02): the A/A rates are
    # measured by simulation in test_report_stats; here only the size of the difference.
    assert abs(acc["diff"]) < 0.005  # run noise only: differences have sd 0.0028


def test_one_seed_store_has_no_statistics(make_store):
    data = load(make_store(make_spec(seeds=1)))
    t = build_tables(data, n_resamples=200)
    assert (t.summary["note"] == "no statistics possible with 1 seed").all()
    assert t.comparisons["p"].isna().all()
    assert t.comparisons["p_note"].str.contains("1 paired seed").all()


def test_all_censored_cell(make_store):
    data = load(make_store(make_spec(seeds=5, target=0.99)))
    t = build_tables(data, n_resamples=200)
    assert (t.summary["n_reached"] == 0).all()
    assert t.summary["km_median"].map(math.isinf).all()
    ett = t.comparisons[t.comparisons["metric"] == "epochs_to_target"].iloc[0]
    assert math.isnan(ett["p"]) and math.isnan(ett["diff"]) and "neither" in ett["diff_note"]


def test_grid_filter_and_errors(planted_store, tmp_path):
    assert len(load(planted_store, grid="synthetic").runs) == 60
    with pytest.raises(UsageError, match="no grid named"):
        load(planted_store, grid="nope")
    with pytest.raises(StoreError, match="no such store"):
        load(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all" * 100)
    with pytest.raises(StoreError):
        load(junk)
    with pytest.raises(UsageError):
        load(tmp_path)


def test_shared_program_timing_is_one_measurement_never_a_zero_width_interval(make_store):
    """All seeds of a placement in one stacked program: one timing measurement per placement."""
    shared = build_tables(load(make_store(make_spec(seeds=6), seeds_in_program=6)), n_resamples=200)
    timing = shared.comparisons[shared.comparisons["metric"] == "epoch_s"].iloc[0]
    assert timing["n_pairs"] == 1 and math.isnan(timing["diff_low"]) and math.isnan(timing["p"])
    assert "one measurement" in timing["diff_note"] and "unit is the program" in timing["p_note"]
    s = shared.summary
    assert s["epoch_s_low"].isna().all() and not (s["epoch_s_low"] == s["epoch_s_high"]).any()
    quality = shared.comparisons[shared.comparisons["metric"] == "final_val_acc"]
    assert quality["p"].notna().all()

    alone = build_tables(load(make_store(make_spec(seeds=6))), n_resamples=200)
    t = alone.comparisons[alone.comparisons["metric"] == "epoch_s"].iloc[0]
    assert t["n_pairs"] == 6 and math.isfinite(t["p"]) and t["diff_high"] > t["diff_low"]


def test_contended_runs_are_excluded_from_timing_inference(make_store):
    data = load(make_store(make_spec(seeds=6), concurrent_workers=2))
    c = build_tables(data, n_resamples=200).comparisons
    timing = c[c["metric"] == "epoch_s"].iloc[0]
    assert timing["n_pairs"] == 0 and math.isnan(timing["p"]) and "6 pair(s) excluded" in timing["p_note"]
    assert c.loc[c["metric"] == "final_val_acc", "p"].notna().all()
    summary = build_tables(data, n_resamples=200).summary
    assert summary["epoch_s"].isna().all() and summary["note"].str.contains("6 run").all()


def test_divergence_is_reported_as_a_paired_outcome(make_store):
    """5 of 10 seeds without BN diverged: the report says so (McNemar) instead of "+1.0 pp"."""
    spec = make_spec(placements=["none", "after"], seeds=10)
    data = load(make_store(spec, diverged=[("none", s) for s in range(5)]))
    c = build_tables(data, n_resamples=200).comparisons.set_index("metric")
    div = c.loc["diverged"]
    assert div["p"] == pytest.approx(2 / 2**5) and div["test"] == "exact McNemar"
    assert "0/10 vs 5/10" in div["diff_note"]
    acc = c.loc["final_val_acc"]
    assert acc["n_pairs"] == 10 and acc["diff"] > 0.4  # diverged seeds at chance: a large gain
    assert c.loc["final_val_acc_no_diverged", "n_pairs"] == 5


def test_censoring_aware_epochs_to_target_says_at_least(make_store):
    """The reference never reaches the target: the difference is only bounded ("at least")."""
    spec = make_spec(placements=["none", "after"], seeds=10, epochs=10, target=0.925)
    data = load(make_store(spec, effect={"none": -0.02, "after": 0.02}))
    assert not data.runs.loc[data.runs["placement"] == "none", "reached"].any()
    ett = build_tables(data, n_resamples=500).comparisons.set_index("metric").loc["epochs_to_target"]
    assert ett["diff_low"] == -math.inf  # not a tight interval such as [-7.5, -7.0]
    assert "at least" in ett["diff_note"] and ett["diff"] < 0


def test_cells_sort_numeric_levels_by_value():
    """Cells read batch 2, 4, ..., 64 (not 16, 2, 32); text levels after numbers, by name."""
    from reports.load import cell_order

    labels = ["batch_size=16", "batch_size=2", "batch_size=64", "batch_size=4"]
    assert sorted(labels, key=cell_order) == ["batch_size=2", "batch_size=4", "batch_size=16", "batch_size=64"]
    two = ["lr=0.1, hidden=300-100", "lr=0.01, hidden=64", "lr=0.01, hidden=300-100", "all runs"]
    assert sorted(two, key=cell_order) == ["all runs", "lr=0.01, hidden=64", "lr=0.01, hidden=300-100",
                                           "lr=0.1, hidden=300-100"]
