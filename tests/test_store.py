"""The store: one transaction per run, each run once, schema checked, bad files refused."""

from __future__ import annotations

import sqlite3

import pytest

from bench.results import EpochMetrics, RunResult
from bench.spec import parse_spec
from bench.store import SCHEMA_VERSION, Store, StoreError, count_runs, open_readonly


def result(cfg, accs=(0.4, 0.6, 0.7), status="ok"):
    epochs = [EpochMetrics(i + 1, 1.0 / (i + 1), a, 1.0, a, 0.5) for i, a in enumerate(accs)]
    return RunResult(config=cfg, status=status, epochs=epochs, started_at="t0", finished_at="t1")


@pytest.fixture
def configs():
    spec = parse_spec({"grid": {"name": "s", "seeds": 2, "validation_size": 297, "target_accuracy": 0.55},
                       "factors": {"dataset": "digits", "placement": ["none", "after"]}})
    return spec, spec.expand()


def test_write_and_read_back(tmp_path, configs):
    spec, runs = configs
    with Store(tmp_path / "s.sqlite") as store:
        store.register_grid(spec, runs)
        assert store.write_result(result(runs[0]))
        assert not store.write_result(result(runs[0])), "a run is stored once"
        store.write_result(result(runs[1], accs=(0.1, 0.2, 0.3)))
        frame = store.runs_frame("s")
        epochs = store.epochs_frame("s")
    assert len(frame) == 2 and len(epochs) == 6
    reached = frame.set_index("run_id").loc[runs[0].run_id]
    assert reached.epochs_to_target == 2 and reached.time_to_target_s == pytest.approx(1.0)
    censored = frame.set_index("run_id").loc[runs[1].run_id]
    assert censored.epochs_to_target != censored.epochs_to_target  # NaN: censored, not the budget
    assert set(frame.columns) >= {"placement", "learning_rate", "hidden", "seed", "status", "final_val_acc"}


def test_count_runs_counts_without_reading_them(tmp_path, configs):
    spec, runs = configs
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.register_grid(spec, runs)
        for run in runs[:3]:
            store.write_result(result(run))
    conn = open_readonly(path)
    try:
        assert count_runs(conn) == 3  # stored runs, not the grid's planned ones
        assert count_runs(conn, "s") == 3
        assert count_runs(conn, "nope") is None
    finally:
        conn.close()


def test_newer_schema_is_refused(tmp_path, configs):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer than this bnbench"):
        Store(path)
    with pytest.raises(StoreError, match="newer"):
        open_readonly(path)


def test_not_a_database_is_refused(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a bnbench store"):
        Store(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE x (a)")
    with pytest.raises(StoreError, match="no schema_version"):
        Store(path)


def test_missing_store_for_reading(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        open_readonly(tmp_path / "absent.sqlite")
