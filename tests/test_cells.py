"""Cells and pairs (bench.cells): runs pair only when every setting but placement and seed agree.

The two traps of issue 11, on synthetic stores (no training): the same grid trained by both
engines in one store, and a reduced and a full version of a grid in one store. Each must
give separate cells with 5 pairs each, never 20 pairs built from 5 seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench import cells
from bench.errors import UsageError
from reports import compare, power
from reports.load import load
from reports.tables import comparison_table

from synthetic_store import build_store, make_spec

SEEDS = 5


def _two_engine_store(tmp_path):
    path = tmp_path / "s.sqlite"
    spec = make_spec("g", seeds=SEEDS)
    build_store(path, spec)
    # `bnbench run --engine keras` of the same spec: refused without --replace (a grid is its
    # spec); with it the grid points at the keras runs and the stacked ones stay in the store.
    build_store(path, spec.with_engine(name="keras"), replace=True)
    return path


def _accuracy_rows(path):
    data = load(path)
    comps = comparison_table(data, n_resamples=200)
    return data, comps[comps["metric"] == "final_val_acc"]


def test_engine_override_never_pairs_across_engines(tmp_path):
    data, acc = _accuracy_rows(_two_engine_store(tmp_path))
    assert len(data.runs) == 4 * SEEDS
    assert sorted(data.cells) == ["engine.name=keras", "engine.name=stacked"]
    assert len(acc) == 2 and acc["n_pairs"].tolist() == [SEEDS, SEEDS]


def test_reduced_and_full_grid_never_pair_across_budgets(tmp_path):
    path = tmp_path / "s.sqlite"
    build_store(path, make_spec("full", seeds=SEEDS, epochs=10))
    build_store(path, make_spec("reduced", seeds=SEEDS, epochs=4))
    data, acc = _accuracy_rows(path)
    assert sorted(data.cells) == ["epochs_budget=10", "epochs_budget=4"]
    assert acc["n_pairs"].tolist() == [SEEDS, SEEDS]
    # Each grid alone is one cell, as before.
    assert load(path, grid="reduced").cells == ["all runs"]


@pytest.mark.parametrize("column, other", [
    ("validation_size", 1000), ("train_limit", 500), ("target_accuracy", 0.5),
    ("data_fingerprint", "another-data"), ("engine_json", '{"name": "stacked", "threads": 3}'),
])
def test_every_setting_separates_cells(column, other):
    runs = pd.DataFrame({
        "placement": ["none", "after", "none", "after"], "seed": [0, 0, 0, 0],
        "validation_size": 5000, "train_limit": 0, "target_accuracy": 0.9,
        "data_fingerprint": "abc", "engine_json": '{"name": "stacked", "threads": 0}',
    })
    runs[column] = runs[column].astype(object)
    runs.loc[2:, column] = other
    keys = cells.cell_keys(runs)
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    labels = cells.cell_labels(runs)
    assert labels[0] != labels[2]


def test_placement_and_seed_do_not_separate_cells():
    runs = pd.DataFrame({"placement": ["none", "after", "none"], "seed": [0, 0, 1],
                         "learning_rate": [0.01, 0.01, 0.010000000000001]})
    assert cells.cell_keys(runs).nunique() == 1
    assert cells.cell_labels(runs).tolist() == ["all runs"] * 3


def test_missing_settings_read_unknown_and_stay_apart_from_known():
    runs = pd.DataFrame({"placement": ["none", "none"], "seed": [0, 0],
                         "data_fingerprint": [None, "abc"]})
    assert cells.settings_frame(runs)["data_fingerprint"].tolist() == ["unknown", "abc"]
    assert cells.cell_keys(runs).nunique() == 2


def test_pair_joins_one_to_one_and_refuses_duplicates():
    runs = pd.DataFrame({"cell": ["c"] * 4, "placement": ["none", "after"] * 2, "seed": [0, 0, 1, 1],
                         "v": [1.0, 2.0, 3.0, 5.0]})
    pairs = cells.pair(runs, "none", "after", ["v"], factor="placement")
    assert pairs[["seed", "v_a", "v_b"]].values.tolist() == [[0, 1, 2], [1, 3, 5]]
    twice = pd.concat([runs, runs.iloc[[0]]])
    with pytest.raises(cells.PairingError, match="several runs share one cell and seed"):
        cells.pair(twice, "none", "after", ["v"], factor="placement")


def test_report_refuses_runs_that_cannot_pair(tmp_path):
    from reports.load import prepare

    data = load(_two_engine_store(tmp_path))
    runs = pd.concat([data.runs, data.runs.iloc[[0]].assign(run_id="dup")])
    with pytest.raises(UsageError, match="share a cell, arm and seed"):
        prepare(data.path, None, runs.drop(columns=["cell"]), data.epochs, data.grids)


def test_spec_side_cells_match_the_stored_ones():
    spec = make_spec("g", placements=("none", "after"), factors={"learning_rate": [0.01, 0.1]}, seeds=3)
    keyed = {cells.config_cell_key(r) for r in spec.expand()}
    assert len(keyed) == 2  # learning rates, not placements or seeds
    assert {cells.config_cell_key(r) for r in spec.with_engine(name="keras").expand()}.isdisjoint(keyed)
    # program_key (what one program may train together) keeps placement apart
    assert len({r.program_key for r in spec.expand()}) == 4


def test_power_spread_never_mixes_engines(tmp_path):
    runs = load(_two_engine_store(tmp_path)).runs
    spread = power.paired_spread(runs, reference="none")
    assert spread.n_groups == 2 and spread.n_pairs == 2 * SEEDS
    # Mixed into one group, 5 seeds would be paired with 10 runs: not what was measured.
    by_engine = [power.paired_spread(g, reference="none") for _, g in runs.groupby("engine")]
    pooled = np.sqrt(sum(s.sd ** 2 * s.df for s in by_engine) / sum(s.df for s in by_engine))
    assert spread.sd == pytest.approx(pooled, rel=1e-12)


def test_compare_matches_cells_on_the_engine_too(tmp_path):
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    spec = make_spec("g", seeds=SEEDS)
    build_store(a, spec)
    build_store(b, spec.with_engine(name="keras"))
    with pytest.raises(UsageError, match="no common cells.*engine"):
        compare.compare_data(load(a), load(b), n_resamples=100)
    same = compare.compare_data(load(a), load(a), n_resamples=100)
    assert set(same.rows["cell"]) >= {"placement=after", "placement=none"}


def test_text_settings_stay_text_through_a_csv_round_trip(tmp_path):
    """A data fingerprint like "12e4..." must not be read back as the number 1.2e5."""
    runs = pd.DataFrame({"placement": ["none"], "seed": [0], "hidden": ["300"], "learning_rate": [0.01],
                         "data_fingerprint": ["1200000000000e45"]})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    back = compare._read_csv(tmp_path / "runs.csv")
    assert cells.cell_keys(back, compared=()).tolist() == cells.cell_keys(runs, compared=()).tolist()


def test_norm_all_equals_norm_of_each_value_whatever_the_dtype():
    """The batched normalization (factorized numeric columns, all-text columns kept) gives
    what ``_norm`` gives value by value; True and 1 stay apart in a mixed column."""
    import numpy as np

    from bench.cells import _norm, _norm_all

    columns = [
        pd.Series([0.1, np.nan, 0.1, 3.0, 1e-12]),
        pd.Series([32, 64, 32], dtype="int64"),
        pd.Series([True, False, True]),
        pd.Series(["64-32", "12e4", "64-32"]),
        pd.Series([True, 1, 1.0, "1", None, np.nan, "x"], dtype=object),
        pd.Series([1, 2, None], dtype="Int64"),
    ]
    for values in columns:
        assert _norm_all(values) == [_norm(v) for v in values], values.tolist()
