"""Schema 1 -> 2 (bench.migrations), on a copy of a real schema-1 store.

``tests/data/gate_schema1.sqlite`` is a frozen copy of ``ablations/baselines/gate.sqlite``
as committed at schema 1 (16 digits runs): the baseline itself may be rewritten later.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.store import SCHEMA_VERSION, Store, result_row
from reports.load import load
from reports.render import build_context, render_markdown

from synthetic_store import make_spec, synth_result

OLD = Path(__file__).parent / "data" / "gate_schema1.sqlite"


@pytest.fixture
def old_store(tmp_path) -> Path:
    copy = tmp_path / "gate.sqlite"
    shutil.copyfile(OLD, copy)
    return copy


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _v1_runs(path: Path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
        return pd.read_sql_query("SELECT * FROM runs", conn), conn.execute("SELECT run_id, epoch, val_acc FROM epochs").fetchall()
    finally:
        conn.close()


def test_reading_an_old_store_upgrades_a_copy_in_memory_and_leaves_the_file(old_store):
    before = _sha(old_store)
    v1, _ = _v1_runs(old_store)
    data = load(old_store)
    assert _sha(old_store) == before and not Path(f"{old_store}-wal").exists()
    runs = data.runs.set_index("run_id").loc[v1["run_id"]]
    assert (runs["program_key"].to_numpy() == v1["cell_id"].to_numpy()).all()
    for col in ("test_acc", "test_acc_at_best", "test_loss", "test_size", "data_fingerprint"):
        assert runs[col].isna().all(), col
    np.testing.assert_array_equal(runs["final_val_acc"], v1["final_val_acc"])


def test_best_val_epoch_is_recovered_from_the_epochs(old_store):
    _, epochs = _v1_runs(old_store)
    expected = {}
    for run_id, epoch, acc in sorted(epochs):
        if acc == acc and (run_id not in expected or acc > expected[run_id][1]):
            expected[run_id] = (epoch, acc)
    runs = load(old_store).runs.set_index("run_id")
    assert {r: int(runs.loc[r, "best_val_epoch"]) for r in expected} == {r: e for r, (e, _) in expected.items()}


def test_writable_open_migrates_in_place_and_new_runs_get_test_scores(old_store):
    v1, _ = _v1_runs(old_store)
    spec = make_spec("after-upgrade", seeds=2)
    with Store(old_store) as store:
        version = store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        store.register_grid(spec, spec.expand())
        for cfg in spec.expand():
            store.write_result(synth_result(cfg, effect={}, time_factor={}))
        runs = store.runs_frame().set_index("run_id")
    old = runs.loc[v1["run_id"]]
    assert old["test_acc_at_best"].isna().all()
    new = runs.loc[[c.run_id for c in spec.expand()]]
    assert new["test_acc_at_best"].notna().all() and (new["test_size"] == 1000).all()
    with Store(old_store.parent / "fresh.sqlite") as fresh:  # same columns, same order as a new store
        assert list(runs.reset_index().columns) == list(fresh.runs_frame().columns)
    assert set(runs.columns) | {"run_id"} == set(result_row(synth_result(spec.expand()[0], effect={}, time_factor={})))
    with Store(old_store):  # opening again is a no-op
        pass


def test_report_of_an_old_store_shows_test_accuracy_as_unknown(old_store):
    md = render_markdown(build_context(load(old_store), n_resamples=200, with_figures=False))
    assert "test acc at best val [CI]" in md and "| unknown |" in md
    assert "test accuracy unknown (runs stored before" in md


def test_old_runs_get_the_new_factors_at_their_defaults(old_store):
    """Schema 4 added the normalizer factors: every older run was batch normalization (or none);
    schema 5 the architecture and the CNN's widths: every older run was an MLP."""
    from bench.factors import FACTORS

    runs = load(old_store).runs
    for name, version in (("normalizer", 4), ("norm_groups", 4), ("architecture", 5), ("widths", 5)):
        assert FACTORS[name].since_schema == version
        assert (runs[name] == FACTORS[name].to_store(FACTORS[name].default)).all(), name
    with Store(old_store) as store:  # and in place, by a writable open
        frame = store.runs_frame()
        assert set(frame["normalizer"]) == {"batch"} and set(frame["architecture"]) == {"mlp"}
        assert set(frame["widths"]) == {"8-16"}
