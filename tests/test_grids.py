"""A grid is its spec; failed runs are retried; ``rm`` removes runs; old stores are upgraded.

The store, not TensorFlow, is under test: results come from a fake source that trains nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from spec_helpers import tiny_spec_text

from bench.cli import main
from bench.factors import FACTORS
from bench.results import EpochMetrics, RunResult
from bench.runner import run_grid
from bench.spec import load_spec, runs_hash
from bench.store import SCHEMA_VERSION, GridChangedError, Store, open_readonly, read_grids, read_runs

ROOT = Path(__file__).resolve().parents[1]


def fake_source(status_of=lambda cfg: "ok"):
    """A results source: every run ends with ``status_of(cfg)`` after two planted epochs."""

    def source(tasks, jobs, threads):
        for task in tasks:
            yield [RunResult(config=c, status=status_of(c), started_at="t0", finished_at="t1",
                             error="planted" if status_of(c) == "failed" else "",
                             epochs=[EpochMetrics(e, 1.0, 0.5, 1.0, 0.5, 0.1) for e in (1, 2)])
                   for c in task]

    return source


def spec(tmp_path, name="spec.toml", **kw):
    path = tmp_path / name
    path.write_text(tiny_spec_text(**kw))
    return load_spec(path)


def status_lines(capsys, store) -> list[str]:
    capsys.readouterr()
    assert main(["status", "--store", str(store)]) == 0
    return capsys.readouterr().out.splitlines()


def test_same_spec_again_is_the_same_grid(tmp_path):
    store = tmp_path / "s.sqlite"
    run_grid(spec(tmp_path), store, progress=False, results_source=fake_source())
    reordered = spec(tmp_path, "b.toml", placements='["after", "none"]')  # same runs, other order
    assert run_grid(reordered, store, progress=False, results_source=fake_source()).trained == 0


def test_edited_spec_under_the_same_name_is_refused_and_changes_nothing(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    run_grid(spec(tmp_path, seeds=3), store, progress=False, results_source=fake_source())
    with sqlite3.connect(store) as conn:
        before = conn.execute("SELECT * FROM grids").fetchall(), conn.execute("SELECT * FROM grid_runs").fetchall()
    conn.close()
    edited = spec(tmp_path, "edited.toml", seeds=3, epochs=3)
    with pytest.raises(GridChangedError, match="new grid.name, or pass --replace"):
        run_grid(edited, store, progress=False, results_source=fake_source())
    with sqlite3.connect(store) as conn:
        after = conn.execute("SELECT * FROM grids").fetchall(), conn.execute("SELECT * FROM grid_runs").fetchall()
    conn.close()
    assert after == before, "the stored spec row and run list are kept"
    assert status_lines(capsys, store)[1].strip().startswith("tiny: 6/6 runs done")


def test_replace_repoints_the_grid_and_keeps_old_runs(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    run_grid(spec(tmp_path, seeds=3), store, progress=False, results_source=fake_source())
    edited = spec(tmp_path, "edited.toml", seeds=3, epochs=3)
    out = run_grid(edited, store, progress=False, results_source=fake_source(), replace=True)
    assert out.trained == 6
    conn = open_readonly(store)
    assert len(read_runs(conn)) == 12, "old runs stay in the store"
    grid_runs = read_runs(conn, "tiny")
    assert len(grid_runs) == 6 and set(grid_runs.epochs_budget) == {3}, "the grid holds only the new runs"
    (row,) = read_grids(conn).itertuples()
    assert row.n_runs == 6 and row.spec_hash == runs_hash(r.run_id for r in edited.expand())
    conn.close()
    # Never "12/6": done counts the grid's own runs.
    assert status_lines(capsys, store)[1].strip().startswith("tiny: 6/6 runs done")


def test_edited_spec_is_one_line_exit_2_on_the_command_line(tmp_path, capsys, monkeypatch):
    import bench.runner

    monkeypatch.setattr(bench.runner, "_results_local", lambda tasks, j, t, **_: fake_source()(tasks, j, t))
    store = tmp_path / "s.sqlite"
    (tmp_path / "a.toml").write_text(tiny_spec_text())
    (tmp_path / "b.toml").write_text(tiny_spec_text(epochs=5))
    assert main(["run", str(tmp_path / "a.toml"), "--store", str(store), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path / "b.toml"), "--store", str(store), "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "grid 'tiny'" in line and "--replace" in line
    assert main(["run", str(tmp_path / "b.toml"), "--store", str(store), "--no-progress", "--replace"]) == 0


def test_failed_runs_are_retried_with_attempts_counted(tmp_path):
    store = tmp_path / "s.sqlite"
    grid = spec(tmp_path)
    first = grid.expand()[0].run_id
    flaky = fake_source(lambda c: "failed" if c.run_id == first else "ok")
    assert run_grid(grid, store, progress=False, results_source=flaky).statuses["failed"] == 1

    # --skip-failed keeps it; a plain rerun retries it (and only it).
    assert run_grid(grid, store, progress=False, results_source=flaky, retry_failed=False).trained == 0
    again = run_grid(grid, store, progress=False, results_source=flaky)
    assert again.trained == 1 and again.already_stored == 3
    fixed = run_grid(grid, store, progress=False, results_source=fake_source())
    assert fixed.statuses == {"ok": 1}
    conn = open_readonly(store)
    runs = read_runs(conn).set_index("run_id")
    epochs = conn.execute("SELECT count(*) FROM epochs WHERE run_id = ?", (first,)).fetchone()[0]
    conn.close()
    assert runs.loc[first, "status"] == "ok" and runs.loc[first, "attempts"] == 3
    assert epochs == 2, "the failed attempts' epochs are replaced, not added"
    assert run_grid(grid, store, progress=False, results_source=flaky).trained == 0


def test_a_stored_ok_run_is_never_replaced(tmp_path):
    grid = spec(tmp_path)
    cfg = grid.expand()[0]
    with Store(tmp_path / "s.sqlite") as store:
        store.register_grid(grid, grid.expand())
        ok = RunResult(config=cfg, status="ok", started_at="t0", finished_at="t1")
        assert store.write_result(ok)
        assert not store.write_result(RunResult(config=cfg, status="failed", started_at="t", finished_at="t"))
        assert store.runs_frame().status.tolist() == ["ok"]


def rm(capsys, store, *args) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()
    code = main(["rm", "--store", str(store), *args])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err.splitlines()


def test_rm_by_grid_and_filter_dry_run_first(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    grid = spec(tmp_path, seeds=3)
    run_grid(grid, store, progress=False, results_source=fake_source())
    before = store.read_bytes()
    code, out, err = rm(capsys, store, "--grid", "tiny", "placement=after", "seed=1", "--dry-run")
    assert code == 0 and len(out) == 1 and "would remove 1 runs" in err[0]
    assert store.read_bytes() == before, "a dry run changes nothing"
    code, out, err = rm(capsys, store, "--grid", "tiny", "placement=after")
    assert code == 0 and len(out) == 3 and err == [f"removed 3 runs and their epochs from {store}"]
    conn = open_readonly(store)
    left = read_runs(conn)
    assert set(left.placement) == {"none"} and len(left) == 3
    assert conn.execute("SELECT count(*) FROM epochs").fetchone()[0] == 6
    conn.close()
    assert run_grid(grid, store, progress=False, results_source=fake_source()).trained == 3, "retrained"


@pytest.mark.parametrize("args, expected", [
    ([], "refusing to remove every run"),
    (["colour=red"], "filter 'colour': unknown key"),
    (["placement"], "is not KEY=VALUE"),
    (["seed=one"], "seed is a number"),
    (["--grid", "nope"], "--grid: no grid 'nope'"),
])
def test_rm_bad_input(tmp_path, capsys, args, expected):
    store = tmp_path / "s.sqlite"
    run_grid(spec(tmp_path), store, progress=False, results_source=fake_source())
    before = store.read_bytes()
    code, out, err = rm(capsys, store, *args)
    assert code == 2 and len(err) == 1 and expected in err[0] and out == []
    assert store.read_bytes() == before


def test_migration_of_the_committed_gate_store(tmp_path):
    """An old (version 1) store, the gate baseline as committed before schema 2 (a frozen copy):
    readers accept it as is; the first writer upgrades it through every step."""
    old = tmp_path / "gate.sqlite"
    shutil.copy(ROOT / "tests/data/gate_schema1.sqlite", old)
    conn = sqlite3.connect(old)
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    runs_before = conn.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    conn.close()
    assert version == "1", "the committed baseline predates this schema"

    reader = open_readonly(old)
    frame = read_runs(reader)
    reader.close()
    assert len(frame) == len(runs_before) and frame.diverged_epoch.isna().all()

    Store(old).close()  # a writer opens it: upgraded
    conn = open_readonly(old)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert conn.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall() == runs_before
    grids = read_grids(conn)
    for g in grids.itertuples():
        ids = [r[0] for r in conn.execute("SELECT run_id FROM grid_runs WHERE grid = ?", (g.name,))]
        assert g.spec_hash == runs_hash(ids) and g.n_runs == len(ids)
    conn.close()

    # The unchanged gate spec is the migrated grid: registering it again is no refusal.
    gate = load_spec(ROOT / "ablations/gate.toml")
    assert runs_hash(r.run_id for r in gate.expand()) == grids.set_index("name").loc[gate.name, "spec_hash"]
    with Store(old) as store:
        store.register_grid(gate, gate.expand())


def test_migration_marks_ok_runs_with_a_nan_loss_diverged(tmp_path):
    """Before schema 3 a run was stopped at a NaN validation loss but stored ok; the upgrade fixes it."""
    store = tmp_path / "s.sqlite"
    run_grid(spec(tmp_path), store, progress=False, results_source=fake_source())
    conn = sqlite3.connect(store)
    run_id = conn.execute("SELECT run_id FROM runs LIMIT 1").fetchone()[0]
    with conn:  # make it a version-2 store with one such run
        conn.execute("UPDATE epochs SET val_loss = NULL WHERE run_id = ? AND epoch = 2", (run_id,))
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        conn.execute("ALTER TABLE runs DROP COLUMN diverged_epoch")
        conn.execute("ALTER TABLE grids DROP COLUMN spec_hash")
        for name in [n for n, f in FACTORS.items() if f.since_schema > 2]:  # factors added later
            conn.execute(f"ALTER TABLE runs DROP COLUMN {name}")
    conn.close()
    Store(store).close()
    conn = open_readonly(store)
    rows = dict(conn.execute("SELECT run_id, status || ':' || ifnull(diverged_epoch, '-') FROM runs"))
    conn.close()
    assert rows.pop(run_id) == "diverged:2"
    assert set(rows.values()) == {"ok:-"}
