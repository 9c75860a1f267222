"""The runner: resumes, stores each run once, records divergence, is deterministic."""

from __future__ import annotations

import pytest
from spec_helpers import tiny_spec_text

from bench.api import load_epochs, load_runs
from bench.runner import plan_tasks, run_grid
from bench.spec import load_spec


def spec_file(tmp_path, **kw):
    path = tmp_path / "spec.toml"
    path.write_text(tiny_spec_text(**kw))
    return load_spec(path)


def test_interrupted_grid_resumes_without_duplicates(tmp_path):
    spec = spec_file(tmp_path, seeds=2)
    store = tmp_path / "s.sqlite"

    def dies_after_first(tasks, jobs, threads):
        from bench.runner import train_task

        yield train_task(next(iter(tasks)), threads, 1)
        raise KeyboardInterrupt  # the driver is stopped mid-grid

    with pytest.raises(KeyboardInterrupt):
        run_grid(spec, store, progress=False, results_source=dies_after_first)
    assert len(load_runs(store)) == 1

    outcome = run_grid(spec, store, progress=False)
    assert outcome.already_stored == 1 and outcome.trained == 3
    runs = load_runs(store)
    assert sorted(runs.run_id) == sorted(r.run_id for r in spec.expand())
    assert (load_epochs(store).groupby("run_id").size() == 2).all()
    assert run_grid(spec, store, progress=False).trained == 0


def test_diverged_run_is_recorded_and_grid_goes_on(tmp_path):
    spec = spec_file(tmp_path, seeds=1, lr=1e6, epochs=3)
    outcome = run_grid(spec, tmp_path / "s.sqlite", progress=False)
    runs = load_runs(tmp_path / "s.sqlite")
    assert outcome.trained == 2
    assert "diverged" in set(runs.status)
    div = runs[runs.status == "diverged"].iloc[0]
    assert "loss not finite in epoch" in div.error and div.diverged_epoch >= 1


def test_failed_task_is_recorded_not_fatal(tmp_path, monkeypatch):
    spec = spec_file(tmp_path, seeds=1)
    import bench.engines.keras_fit as kf

    def boom(cfg, data):
        raise MemoryError("out of memory (planted)")

    monkeypatch.setattr(kf, "train_one", boom)
    outcome = run_grid(spec, tmp_path / "s.sqlite", progress=False)
    runs = load_runs(tmp_path / "s.sqlite")
    assert outcome.statuses["failed"] == 2
    assert set(runs.error) == {"MemoryError: out of memory (planted)"}


def test_same_spec_same_seed_same_metrics(tmp_path):
    spec = spec_file(tmp_path, seeds=1, placements='["after"]', epochs=2)
    run_grid(spec, tmp_path / "a.sqlite", progress=False)
    run_grid(spec, tmp_path / "b.sqlite", progress=False)
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    a = load_epochs(tmp_path / "a.sqlite")[cols]
    b = load_epochs(tmp_path / "b.sqlite")[cols]
    assert a.equals(b)


def test_two_workers(tmp_path):
    spec = spec_file(tmp_path, seeds=2)
    outcome = run_grid(spec, tmp_path / "s.sqlite", jobs=2, progress=False)
    runs = load_runs(tmp_path / "s.sqlite")
    assert outcome.trained == 4 and set(runs.status) == {"ok"}
    assert set(runs.concurrent_workers) == {2} and set(runs.threads) == {1}


def test_tasks_group_seeds_of_a_cell():
    from bench.spec import parse_spec

    spec = parse_spec({"grid": {"name": "t", "seeds": 5, "validation_size": 297},
                       "factors": {"dataset": "digits", "placement": ["none", "after"]},
                       "engine": {"name": "stacked", "seeds_per_program": 2}})
    tasks = plan_tasks(spec.expand(), stored=set())
    assert sorted(len(t) for t in tasks) == [1, 1, 2, 2, 2, 2]
    assert all(len({r.program_key for r in t}) == 1 for t in tasks)
    keras_tasks = plan_tasks(spec.with_engine(name="keras").expand(), stored=set())
    assert len(keras_tasks) == 10


def test_claims_respect_live_owners_and_take_over_dead_or_silent_ones(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    from bench.store import Store

    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(tmp_path / "s.sqlite") as store:
        store.conn.executemany("INSERT INTO claims VALUES (?, ?, ?)", [
            ("live", f"{host}:{os.getppid()}", time.time()),
            ("dead", f"{host}:{dead.pid}", time.time()),
            ("remote-fresh", "elsewhere:1", time.time()),
            ("remote-silent", "elsewhere:2", time.time() - 3600),
        ])
        store.conn.commit()
        got = store.claim(["live", "dead", "remote-fresh", "remote-silent", "free"], "me:1")
        assert sorted(got.mine) == ["dead", "free", "remote-silent"]
        assert got.busy == {"live": f"{host}:{os.getppid()}", "remote-fresh": "elsewhere:1"}
        assert store.claim(["free"], "me:1").mine == ["free"], "re-claiming one's own run is fine"
        store.release_claims("me:1")
        assert set(store.claims()) == {"live", "remote-fresh"}


def test_runs_claimed_by_a_live_process_are_skipped_with_a_message(tmp_path, capsys):
    import os
    import socket
    import time

    from bench.cli import main
    from bench.store import Store

    spec = spec_file(tmp_path, seeds=2)
    store_path = tmp_path / "s.sqlite"
    other = f"{socket.gethostname()}:{os.getppid()}"  # alive for the whole test
    with Store(store_path) as store:
        store.conn.executemany("INSERT INTO claims VALUES (?, ?, ?)",
                               [(r.run_id, other, time.time()) for r in spec.expand()])
        store.conn.commit()
    assert main(["run", str(tmp_path / "spec.toml"), "--store", str(store_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"4 runs are being trained by {other}; skipping them; run again later" in err
    assert "0 trained now" in err
    assert len(load_runs(store_path)) == 0
