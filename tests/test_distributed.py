"""Nothing lost: a worker killed mid-grid, on a real Dask cluster and in the local loky pool.

The cluster test starts ``dask scheduler`` and two ``dask worker`` processes bound to
127.0.0.1, runs the smoke grid through the CLI with ``--scheduler tcp://...``, SIGKILLs one
worker's process group mid-grid, and checks every run is stored exactly once with the same
per-epoch metrics as a local run. Everything started here is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from spec_helpers import tiny_spec_text

from bench.api import load_runs
from bench.runner import TEST_KILL_ENV, run_grid
from bench.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "ablations" / "smoke.toml"
DASK = str(Path(sys.executable).with_name("dask"))
EPOCH_COLS = "run_id, epoch, train_loss, train_acc, val_loss, val_acc"

pytestmark = pytest.mark.slow


def _spawn(stack: ExitStack, args: list[str], log: Path, **kw) -> subprocess.Popen:
    """Start a process in its own group; the stack SIGKILLs the group on the way out."""
    out = stack.enter_context(open(log, "wb"))
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True, **kw)

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    stack.callback(kill)
    return proc


def _wait_for(condition, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def _count(store: Path, sql: str = "SELECT count(*) FROM runs") -> int:
    try:
        with sqlite3.connect(store, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _epochs(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        return conn.execute(f"SELECT {EPOCH_COLS} FROM epochs ORDER BY run_id, epoch").fetchall()


def test_worker_killed_mid_grid_on_a_dask_cluster(tmp_path):
    spec = load_spec(SMOKE)
    n_runs = len(spec.expand())
    store, local_store = tmp_path / "dask.sqlite", tmp_path / "local.sqlite"
    run_args = [str(SMOKE), "--engine", "keras", "--no-progress"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with ExitStack() as stack:
        sched_file = tmp_path / "scheduler.json"
        _spawn(stack, [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log", env=env)
        _wait_for(sched_file.exists, 60, "the scheduler file")
        _wait_for(lambda: json.loads(sched_file.read_text() or "{}").get("address"), 10, "an address")
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        workers = [
            _spawn(stack, [DASK, "worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                           "--nthreads", "1", "--no-dashboard", "--death-timeout", "60"],
                   tmp_path / f"worker{i}.log", env=env)
            for i in range(2)
        ]
        driver = _spawn(stack, [sys.executable, "-m", "bench.cli", "run", *run_args, "--store", str(store),
                                "--scheduler", address], tmp_path / "driver.log", env=env)
        # The reference, alongside: the local pool, two workers of one TensorFlow thread each.
        local = _spawn(stack, [sys.executable, "-m", "bench.cli", "run", *run_args, "--store",
                               str(local_store), "--jobs", "2"], tmp_path / "local.log", env=env)
        _wait_for(lambda: _count(store) >= 2 or driver.poll() is not None, 240, "two stored runs")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-2000:]
        os.killpg(workers[0].pid, signal.SIGKILL)
        killed_at = _count(store)
        assert killed_at < n_runs, "the kill should land mid-grid"
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
        # The default engine (several seeds per task) on the surviving worker, already warm.
        stacked_spec = tmp_path / "stacked.toml"
        stacked_spec.write_text(tiny_spec_text(seeds=2, epochs=2, engine="stacked"))
        stacked = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(stacked_spec), "--store",
                                  str(tmp_path / "stacked.sqlite"), "--scheduler", address, "--no-progress"],
                                 capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert stacked.returncode == 0, stacked.stderr[-2000:]
        assert local.wait(timeout=300) == 0, (tmp_path / "local.log").read_text()[-2000:]

    runs = load_runs(store)
    assert sorted(runs.run_id) == sorted(r.run_id for r in spec.with_engine(name="keras").expand())
    assert set(runs.status) == {"ok"} and set(runs.threads) == {1}
    assert runs.attempts.max() >= 2, "the task(s) on the killed worker were counted and re-run"
    assert _count(store, "SELECT count(*) FROM claims") == 0
    assert _epochs(store) == _epochs(local_store), "same seeds, same per-epoch metrics"
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stacked_runs = load_runs(tmp_path / "stacked.sqlite")
    assert len(stacked_runs) == 4 and set(stacked_runs.status) == {"ok"}
    assert set(stacked_runs.seeds_in_program) == {2}


@pytest.fixture
def kill_hook(monkeypatch):
    """Set the test-only kill hook for fresh loky workers (reused ones keep their old env)."""
    from joblib.externals.loky import get_reusable_executor

    def set_hook(value: str) -> None:
        get_reusable_executor().shutdown(wait=True, kill_workers=True)
        monkeypatch.setenv(TEST_KILL_ENV, value)

    yield set_hook
    monkeypatch.delenv(TEST_KILL_ENV, raising=False)
    get_reusable_executor().shutdown(wait=True, kill_workers=True)


def _tiny(tmp_path: Path, **kw):
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_spec_text(seeds=1, epochs=1, **kw))
    return load_spec(path)


def test_loky_workers_killed_are_retried_then_recorded_failed(tmp_path, kill_hook):
    """One run's worker dies once (retried, ok), another's every time (failed after retries)."""
    spec = _tiny(tmp_path, placements='["none", "after", "before"]')
    once, always = spec.expand()[0].run_id, spec.expand()[1].run_id
    kill_hook(f"{once}:{tmp_path / 'killed-once'},{always}")
    outcome = run_grid(spec, tmp_path / "s.sqlite", jobs=2, progress=False, retries=1)
    runs = load_runs(tmp_path / "s.sqlite").set_index("run_id")
    assert outcome.statuses == {"ok": 2, "failed": 1} and (tmp_path / "killed-once").exists()
    assert runs.loc[once, "status"] == "ok" and runs.loc[once, "attempts"] == 2
    assert runs.loc[always, "status"] == "failed" and runs.loc[always, "attempts"] == 2
    assert "worker process died 2 times" in runs.loc[always, "error"]
    assert _count(tmp_path / "s.sqlite", "SELECT count(*) FROM claims") == 0
