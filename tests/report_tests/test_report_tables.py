"""Loading and tables on synthetic stores with planted effects."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_store import EFFECT
from synthetic_store import make_spec

from bench.errors import UsageError
from bench.store import StoreError
from reports.load import load
from reports.tables import build_tables, failures, raw_runs


@pytest.fixture(scope="module")
def planted(planted_store):
    data = load(planted_store)
    return data, build_tables(data, n_resamples=1000)


def test_load_labels_cells_by_varying_factors(planted):
    data, _ = planted
    assert data.cells == ["activation=relu", "activation=tanh"]
    assert data.placements == ["none", "before", "after"]
    assert data.reference == "none"
    assert data.cell_factors == ["activation"]
    assert len(data.runs) == 60


def test_summary_counts_every_status(planted):
    _, t = planted
    s = t.summary.set_index(["cell", "placement"])
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
        true = EFFECT[r["placement"]] - EFFECT["none"]
        assert r["diff_low"] <= true <= r["diff_high"], r.to_dict()
        assert r["p_holm"] < 0.05
    # the failed seed has no pair: 9 pairs; the diverged one has no final accuracy: 9 pairs
    assert set(acc["n_pairs"]) == {9}
    ett = c[c["metric"] == "epochs_to_target"]
    assert (ett["censoring"].str.contains("budget \\+ 1")).all()
    # the diverged run (censored, never reached) is kept in the epochs-to-target pairs
    assert set(ett.loc[ett["placement"] == "after", "n_pairs"]) == {10}
    time = c[c["metric"] == "epoch_s"]
    assert (time["diff"] > 0.5).all() and (time["cliff"] == 1).all()


def test_holm_spans_every_p_value_in_the_report(planted):
    """One family: every comparison and log-rank p; a second: the test-accuracy comparisons."""
    _, t = planted
    test = t.comparisons["metric"] == "test_acc"
    rest = t.comparisons[~test]
    p = np.r_[rest["p"], t.logrank["p"]]
    adj = np.r_[rest["p_holm"], t.logrank["p_holm"]]
    m = np.isfinite(p).sum()
    assert adj[np.argmin(p)] == pytest.approx(min(1.0, p.min() * m))
    tp, tadj = t.comparisons.loc[test, "p"].to_numpy(float), t.comparisons.loc[test, "p_holm"].to_numpy(float)
    assert np.isfinite(tp).sum() == 4  # 2 cells x 2 placements vs none
    assert tadj[np.argmin(tp)] == pytest.approx(min(1.0, tp.min() * 4))


def test_test_accuracy_comparison_pairs_test_scores_at_the_best_epoch(planted):
    """Wiring: the test-accuracy rows pair each seed's test accuracy at its best-validation
    epoch (a diverged run keeps its pre-divergence best), median of the paired differences."""
    data, t = planted
    c = t.comparisons[t.comparisons["metric"] == "test_acc"]
    assert len(c) == 4
    runs = data.runs[data.runs["analysed"]]
    for _, r in c.iterrows():
        cell = runs[runs["cell"] == r["cell"]].set_index(["placement", "seed"])["test_acc_at_best"]
        d = (cell.loc[r["placement"]] - cell.loc["none"]).dropna()
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
    assert acc["p_holm"] >= 0.05
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
    assert t.logrank["p"].isna().all()


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


def test_time_per_epoch_is_not_tested_when_seeds_share_a_program(make_store):
    from reports.load import load as load_store
    from reports.tables import SHARED_TIMING_NOTE, build_tables
    from synthetic_store import make_spec

    shared = build_tables(load_store(make_store(make_spec(seeds=6), seeds_in_program=6)), n_resamples=200)
    timing = shared.comparisons[shared.comparisons["metric"] == "epoch_s"]
    assert timing["p"].isna().all() and (timing["p_note"] == SHARED_TIMING_NOTE).all()
    quality = shared.comparisons[shared.comparisons["metric"] == "final_val_acc"]
    assert quality["p"].notna().all()

    alone = build_tables(load_store(make_store(make_spec(seeds=6))), n_resamples=200)
    assert alone.comparisons.loc[alone.comparisons["metric"] == "epoch_s", "p"].notna().all()
