"""Bad input: one line on stderr naming the problem, exit code 2, nothing written.

Runs ``bench.cli.main`` in-process. The checks are on the store afterwards: absent,
byte-identical, or still passing ``PRAGMA integrity_check`` with the earlier runs intact.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from spec_helpers import tiny_spec_text

from bench.cli import main
from bench.store import SCHEMA_VERSION, Store

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """Exit code and the single stderr line (asserting there is exactly one)."""
    capsys.readouterr()
    code = main(["run", *map(str, args), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return code, lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "s.sqlite"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[grid\nname = 'x'", "malformed TOML"),
        (tiny_spec_text().replace("batch_size = 32", "batch_size = 32\nwidth = 3"), "factors.width: unknown key"),
        (tiny_spec_text().replace("seeds = 2", 'seeds = "three"'), "grid.seeds"),
        (tiny_spec_text().replace("batch_size = 32", "batch_size = 3.5"), "factors.batch_size"),
        (tiny_spec_text().replace('name = "tiny"', "name = 7"), "grid.name"),
        ("[grid]\nname = 'x'\n[factors]\nplacement = []\n", "factors.placement: empty"),
    ],
    ids=["malformed-toml", "unknown-factor", "seeds-type", "batch-float", "name-type", "empty-levels"],
)
def test_bad_spec(tmp_path, store, capsys, text, expected):
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", text), "--store", store)
    assert code == 2 and expected in line and line.startswith("bnbench run: error:")
    assert not store.exists()


def test_missing_spec_file(tmp_path, store, capsys):
    code, line = run_cli(capsys, tmp_path / "nope.toml", "--store", store)
    assert code == 2 and "no such spec file" in line and not store.exists()


def test_store_from_newer_schema_is_untouched(tmp_path, store, capsys):
    Store(store).close()
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    before = store.read_bytes()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and "newer than this bnbench" in line
    assert store.read_bytes() == before


def test_non_sqlite_store_is_untouched(tmp_path, store, capsys):
    store.write_bytes(b"not a database, just bytes\n" * 200)
    before = store.read_bytes()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and "not a bnbench store" in line
    assert store.read_bytes() == before


def test_corrupted_store_is_refused(tmp_path, store, capsys):
    """A real store with its table pages overwritten: SQLite's header still reads fine."""
    Store(store).close()
    raw = bytearray(store.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    raw[page:] = b"\xa5" * (len(raw) - page)  # every page after the first is garbage
    store.write_bytes(bytes(raw))
    before = store.read_bytes()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and str(store) in line and ("malformed" in line or "not a bnbench store" in line)
    assert store.read_bytes() == before


def test_dataset_with_wrong_shapes_is_checked_before_training(tmp_path, store, capsys):
    bad = tmp_path / "mnist.npz"
    np.savez(bad, x_train=np.zeros((2000, 10), np.uint8), y_train=np.zeros(2000, np.uint8))
    spec = write(tmp_path / "spec.toml", f"""
[grid]
name = "bad-data"
seeds = 1
epochs = 1
data_path = "{bad}"
[factors]
dataset = "mnist"
[engine]
name = "keras"
""")
    code, line = run_cli(capsys, spec, "--store", store)
    assert code == 2 and "wrong shapes" in line and str(bad) in line
    assert not store.exists(), "the driver refuses before creating the store"


def test_store_folder_not_writable_parent_is_a_file(tmp_path, capsys):
    """Root ignores permission bits, so "cannot write here" is simulated by a FILE as parent."""
    (tmp_path / "afile").write_text("x")
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()),
                         "--store", tmp_path / "afile" / "s.sqlite")
    assert code == 2 and "cannot create folder" in line


def test_read_only_database(tmp_path, store, capsys, monkeypatch):
    """Simulated by mocking sqlite3.connect (root can write through any permission bits)."""
    import bench.store

    def readonly(*a, **k):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(bench.store.sqlite3, "connect", readonly)
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and "readonly database" in line and str(store) in line
    assert not store.exists()


class _DiskFullAfter:
    """Proxy of a sqlite3 connection whose run inserts fail once ``allowed`` have succeeded."""

    def __init__(self, conn: sqlite3.Connection, allowed: int):
        self._conn, self._allowed = conn, allowed

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT OR IGNORE INTO runs"):
            if self._allowed == 0:
                raise sqlite3.OperationalError("database or disk is full")
            self._allowed -= 1
        return self._conn.execute(sql, *args)

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc):
        return self._conn.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _fake_source(tasks, jobs, threads, **_):
    """Results without training: the store, not TensorFlow, is under test."""
    from bench.results import EpochMetrics, RunResult

    for task in tasks:
        yield [RunResult(config=c, status="ok", started_at="t0", finished_at="t1",
                         epochs=[EpochMetrics(e, 1.0, 0.5, 1.0, 0.5, 0.1) for e in (1, 2)])
               for c in task]


def test_disk_full_while_writing(tmp_path, store, capsys, monkeypatch):
    import bench.runner

    original_init = Store.__init__

    def init(self, path):
        original_init(self, path)
        self.conn = _DiskFullAfter(self.conn, allowed=1)

    monkeypatch.setattr(Store, "__init__", init)
    monkeypatch.setattr(bench.runner, "_results_local", _fake_source)
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and "database or disk is full" in line and "cannot write run" in line
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM epochs").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0, "claims released"
    conn.close()


def test_unreachable_scheduler(tmp_path, store, capsys):
    start = time.monotonic()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()),
                         "--store", store, "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and "tcp://127.0.0.1:1" in line and "cannot connect" in line
    assert time.monotonic() - start < 15
    assert not store.exists()


@pytest.mark.parametrize("args, expected", [
    (["--jobs", "0"], "--jobs"),
    (["--retries", "-1"], "--retries"),
    (["--scheduler", "127.0.0.1:8786"], "--scheduler"),
])
def test_bad_options(tmp_path, store, capsys, args, expected):
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store, *args)
    assert code == 2 and expected in line and not store.exists()


def cli(capsys, *args: str) -> tuple[int, str]:
    """Any subcommand: exit code and the single stderr line (asserting there is exactly one)."""
    capsys.readouterr()
    code = main([*map(str, args)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return code, lines[0]


def _fake_run(store: Path, spec: Path, monkeypatch) -> None:
    import bench.runner

    monkeypatch.setattr(bench.runner, "_results_local", _fake_source)
    assert main(["run", str(spec), "--store", str(store), "--no-progress"]) == 0


def _grid_rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT * FROM grids").fetchall() + conn.execute("SELECT * FROM grid_runs").fetchall()
    conn.close()
    return rows


def test_truncated_npz_is_one_line(tmp_path, store, capsys):
    good = tmp_path / "full.npz"
    np.savez_compressed(good, x_train=np.zeros((2000, 28, 28), np.uint8), y_train=np.zeros(2000, np.uint8))
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    spec = write(tmp_path / "spec.toml", f"""
[grid]
name = "truncated"
seeds = 1
epochs = 1
data_path = "{bad}"
[factors]
dataset = "mnist"
""")
    code, line = run_cli(capsys, spec, "--store", store)
    assert code == 2 and "not a readable mnist.npz" in line and str(bad) in line
    assert not store.exists()


def test_foreign_sqlite_file_is_left_byte_for_byte(tmp_path, store, capsys):
    """Another program's database (rollback journal): refused before WAL mode is switched on."""
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany("INSERT INTO notes (text) VALUES (?)", [("a",), ("b",)])
    conn.close()
    before = store.read_bytes()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", tiny_spec_text()), "--store", store)
    assert code == 2 and "not a bnbench store" in line and str(store) in line
    assert store.read_bytes() == before
    assert not Path(f"{store}-wal").exists()
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


@pytest.mark.parametrize("key, value, bound", [
    ("epochs", 1_000_000_000, "grid.max_epochs = 10_000"),
    ("seeds", 1_000_000_000, "grid.max_runs = 100_000"),
])
def test_what_cannot_be_meant_is_refused_and_the_grid_row_kept(tmp_path, store, capsys, monkeypatch,
                                                                 key, value, bound):
    _fake_run(store, write(tmp_path / "ok.toml", tiny_spec_text()), monkeypatch)
    before = _grid_rows(store)
    huge = tiny_spec_text().replace(f"{key} = 2", f"{key} = {value}")
    tracemalloc.start()
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", huge), "--store", store)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # A billion seeds held anywhere take >= 8 GB; 1% of that expanded would exceed 80 MB.
    assert peak < 80e6, f"refused before anything is expanded (peak {peak / 1e6:.0f} MB)"
    assert code == 2 and f"grid.{key}: 1_000_000_000 is above the bound {bound}" in line
    assert "for a real need set" in line
    assert _grid_rows(store) == before, "the stored spec row is not replaced by a refused spec"


def test_grid_of_too_many_cells_is_refused_without_expanding(tmp_path, store, capsys):
    many = tiny_spec_text().replace("learning_rate = 0.05", f"learning_rate = {[0.001 * i for i in range(1, 400)]}")
    many = many.replace("batch_size = 32", f"batch_size = {list(range(2, 300))}")
    code, line = run_cli(capsys, write(tmp_path / "spec.toml", many), "--store", store)
    assert code == 2 and "is above the bound grid.max_runs = 100_000" in line and not store.exists()


def test_export_into_read_only_folder(tmp_path, store, capsys, monkeypatch):
    """Root ignores permission bits, so for root the OS's refusal is simulated at the write."""
    import os

    import pandas as pd

    _fake_run(store, write(tmp_path / "ok.toml", tiny_spec_text()), monkeypatch)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:
        def denied(self, path, *a, **k):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(pd.DataFrame, "to_csv", denied)
    code, line = cli(capsys, "export", "--store", store, "-o", out)
    assert code == 2 and "--output: cannot write" in line and "Permission denied" in line
    assert list(out.iterdir()) == []


def test_report_of_a_store_without_runs(tmp_path, store, capsys):
    Store(store).close()
    before = store.read_bytes()
    out = tmp_path / "r.html"
    code, line = cli(capsys, "report", store, "-o", out)
    assert code == 2 and "nothing to report" in line and not out.exists()
    assert store.read_bytes() == before


# ----------------------------------------------------------------- one line, even from libraries
# Library noise (a logger, a warning) reaches a user's terminal only in a real process, not under
# pytest's capture: these run bnbench as a subprocess and read its whole stderr.


def _bnbench(args: list, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600, **kw)


@pytest.mark.slow
def test_lost_scheduler_is_one_line(tmp_path, store):
    """The scheduler dies while the driver waits for workers: no distributed.client ERROR line."""
    log = tmp_path / "scheduler.log"
    with open(log, "wb") as out:
        sched = subprocess.Popen([Path(sys.executable).with_name("dask"), "scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard"], stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Scheduler at:" not in log.read_text():
            assert time.monotonic() < deadline and sched.poll() is None, log.read_text()
            time.sleep(0.2)
        address = re.search(r"Scheduler at:\s+(tcp://\S+)", log.read_text()).group(1)
        driver = subprocess.Popen(
            [sys.executable, "-m", "bench.cli", "run", write(tmp_path / "spec.toml", tiny_spec_text()),
             "--store", store, "--no-progress", "--scheduler", address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)},
        )
        while "Receive client connection" not in log.read_text():  # the driver waits for workers
            assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
            time.sleep(0.2)
    finally:
        os.killpg(sched.pid, signal.SIGKILL)
        sched.wait()
    _, err = driver.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert driver.returncode == 2 and len(lines) == 1, lines
    # "Receive client connection" can be logged before the client's handshake completes: a
    # scheduler killed in that window gives "cannot connect" instead of "connection lost".
    # Either way it must be bnbench's one line, not distributed's ERROR lines.
    assert lines[0].startswith("bnbench run: error: scheduler tcp://")
    assert "connection lost" in lines[0] or "cannot connect" in lines[0], lines[0]


@pytest.mark.slow
def test_disk_full_with_workers_is_one_line(tmp_path, store):
    """Disk full while two loky workers train: no joblib "tasks ... cancelled" warning after the error."""
    script = write(tmp_path / "full.py", f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from test_bad_inputs import _DiskFullAfter
from bench.store import Store
from bench.cli import main
original = Store.__init__
def init(self, path):
    original(self, path)
    self.conn = _DiskFullAfter(self.conn, allowed=1)
Store.__init__ = init
sys.exit(main(sys.argv[1:]))
""")
    spec = write(tmp_path / "spec.toml", tiny_spec_text(seeds=3, epochs=1))
    done = _bnbench([script, "run", spec, "--store", store, "--no-progress", "--jobs", "2"])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, lines
    assert "database or disk is full" in lines[0]
