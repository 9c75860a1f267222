"""End to end through the real CLI: SIGKILL mid-grid, resume, every run exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "ablations" / "smoke.toml"


def bnbench(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, cwd=ROOT, **kw)


def stored_count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras", "stacked"])
def test_sigkill_mid_grid_then_resume(tmp_path, engine):
    store = tmp_path / "smoke.sqlite"
    spec = load_spec(SMOKE).with_engine(name=engine)
    args = ["run", str(SMOKE), "--store", str(store), "--engine", engine, "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while stored_count(store) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = stored_count(store)
    assert 2 <= killed_at < len(spec.expand()), "kill should land mid-grid"

    done = bnbench(*args, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{killed_at} already in the store" in done.stderr
    with sqlite3.connect(store) as conn:
        ids = [r[0] for r in conn.execute("SELECT run_id FROM runs")]
        per_run = conn.execute("SELECT count(DISTINCT run_id), count(*) FROM epochs").fetchone()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(ids) == len(set(ids)) == len(spec.expand())
    assert per_run[0] == len(ids)


def test_help_texts():
    for cmd in ([], ["run"], ["status"], ["export"]):
        out = bnbench(*cmd, "--help")
        assert out.returncode == 0 and "usage: bnbench" in out.stdout


def test_run_help_documents_scheduler_and_retries():
    out = bnbench("run", "--help").stdout
    assert "--scheduler ADDRESS" in out and "tcp://HOST:PORT" in out and "'local'" in out
    assert "--retries N" in out and "default 2" in out


def test_status_and_export_on_missing_store(tmp_path):
    out = bnbench("status", "--store", str(tmp_path / "nope.sqlite"))
    assert out.returncode == 2 and "no such store" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_drivers_on_one_store_share_the_grid(tmp_path):
    """Two `bnbench run` at once: every run stored once, and trained once (claims)."""
    import re

    spec_path = tmp_path / "spec.toml"
    from spec_helpers import tiny_spec_text

    spec_path.write_text(tiny_spec_text(seeds=3, epochs=2))
    store = tmp_path / "shared.sqlite"
    args = [sys.executable, "-m", "bench.cli", "run", str(spec_path), "--store", str(store), "--no-progress"]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    trained = [int(re.search(r"(\d+) trained now", e).group(1)) for e in errs]
    assert sum(trained) == 6, f"each run trained exactly once across both drivers: {trained}"
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [r[0] for r in conn.execute("SELECT run_id FROM runs")]
        assert conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    assert len(ids) == len(set(ids)) == 6
