"""The history store: one summary per commit, machine, series and metric, in SQLite (WAL).

Same conventions as :mod:`bench.store`: WAL mode so readers never block the writer, the
schema created in one IMMEDIATE transaction, a 30 s busy timeout, and one transaction per
``history add``, so two CI jobs appending at once both land (one waits for the other).
Adding a commit again (a re-run) replaces its earlier summaries for the same machine.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import pandas as pd

from bench.store import StoreError, _connect

HISTORY_SCHEMA_VERSION = 1
_OPEN_PATIENCE_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    commit_id TEXT NOT NULL,
    commit_date TEXT NOT NULL,       -- ISO 8601; orders the commits of a series
    branch TEXT NOT NULL,
    fingerprint TEXT NOT NULL,       -- bench.host.machine_fingerprint: one series per machine
    source TEXT NOT NULL,            -- 'gate' (a results store) or 'perf' (pytest-benchmark)
    series TEXT NOT NULL,            -- what was measured: grid / cell / placement, or a benchmark
    metric TEXT NOT NULL,
    value REAL,
    low REAL,                        -- 95% interval of value (NULL: none)
    high REAL,
    n INTEGER NOT NULL,              -- runs (or rounds) summarized
    added_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (commit_id, fingerprint, source, series, metric)
);
CREATE INDEX IF NOT EXISTS points_by_series ON points(fingerprint, source, series, metric, commit_date);
"""


@dataclass(frozen=True)
class Point:
    """One metric of one series at one commit on one machine."""

    commit_id: str
    commit_date: str
    branch: str
    fingerprint: str
    source: str
    series: str
    metric: str
    value: float
    low: float | None
    high: float | None
    n: int


COLUMNS = [f.name for f in fields(Point)]


def _check(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError:
        rows = {}
    if rows.get("kind") != "history":
        raise StoreError(f"{path}: not a bnbench history store")
    if int(rows.get("schema_version", 0)) != HISTORY_SCHEMA_VERSION:
        raise StoreError(f"{path}: history schema version {rows.get('schema_version')} is not "
                         f"{HISTORY_SCHEMA_VERSION}; use the matching bnbench")


def _open_writable(path: Path) -> sqlite3.Connection:
    deadline = time.monotonic() + _OPEN_PATIENCE_S
    while True:
        conn = None
        try:
            conn = _connect(path, readonly=False)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            if not tables:
                conn.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA}; INSERT OR IGNORE INTO meta VALUES ('kind', 'history');"
                    f" INSERT OR IGNORE INTO meta VALUES ('schema_version', '{HISTORY_SCHEMA_VERSION}'); COMMIT;"
                )
            _check(conn, path)
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            # A second process creating the file or switching it to WAL holds a lock that the
            # busy handler does not wait for (as in bench.store.Store): try again for a while.
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StoreError(f"{path}: cannot open history for writing ({exc})") from None
            time.sleep(0.2)
        except BaseException:
            if conn is not None:
                conn.close()
            raise


def add_points(path: str | Path, points: list[Point]) -> int:
    """Append (or replace, for a commit added again) ``points`` in one transaction."""
    path = Path(path)
    conn = _open_writable(path)
    try:
        with conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO points ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                [astuple(p) for p in points],
            )
        # Fold the WAL into the main file, so the file alone can be copied (cache, git).
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot write history ({exc})") from None
    finally:
        conn.close()
    return len(points)


def read_points(path: str | Path) -> pd.DataFrame:
    """Every point, oldest commit first (by commit date, then by when it was added)."""
    path = Path(path)
    conn = _connect(path, readonly=True)
    try:
        _check(conn, path)
        return pd.read_sql_query(
            "SELECT * FROM points ORDER BY commit_date, added_at, commit_id", conn
        )
    finally:
        conn.close()
