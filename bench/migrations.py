"""Store schema migrations: each step takes a store from one schema version to the next.

A writable open upgrades the file in place, all steps in one transaction (a crash leaves
the old version). A read-only open (``bnbench report``, ``compare``) upgrades an in-memory
copy and leaves the file byte-for-byte as it was. Steps only add what older versions did
not record; a value they cannot know is stored as NULL ("unknown"), never guessed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Step = Callable[[sqlite3.Connection], None]


# ----------------------------------------------------------------- step 1 -> 2 (cells11)
#: Columns added to ``runs`` by schema 2 (appended in this order, as a new store has them).
V2_RUN_COLUMNS = (
    ("data_fingerprint", "TEXT"),   # bench.datasets.Dataset.fingerprint; NULL: unknown
    ("best_val_epoch", "INTEGER"),  # first epoch of the highest finite validation accuracy
    ("test_size", "INTEGER"),       # examples in the held-out test split; NULL: not evaluated
    ("test_loss", "REAL"),          # test split, final weights
    ("test_acc", "REAL"),
    ("test_loss_at_best", "REAL"),  # test split, weights of epoch best_val_epoch
    ("test_acc_at_best", "REAL"),
)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Rename ``cell_id`` to ``program_key``; add the test-set and data-fingerprint columns.

    Old runs never saw the test split: their test columns stay NULL (shown as unknown). Their
    best-validation epoch is known from the epochs table and is filled in.
    """
    conn.execute("ALTER TABLE runs RENAME COLUMN cell_id TO program_key")
    for name, kind in V2_RUN_COLUMNS:
        conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    conn.execute(
        "UPDATE runs SET best_val_epoch = (SELECT min(e.epoch) FROM epochs e "
        "WHERE e.run_id = runs.run_id AND e.val_acc = runs.best_val_acc)"
    )
# ----------------------------------------------------------------- end of step 1 -> 2


# ----------------------------------------------------------------- step 2 -> 3 (runs11)
#: Columns added by schema 3 (appended in this order, as a new store has them).
V3_GRID_COLUMNS = (("spec_hash", "TEXT NOT NULL DEFAULT ''"),)  # bench.spec.runs_hash of its runs
V3_RUN_COLUMNS = (("diverged_epoch", "INTEGER"),)  # first epoch with a non-finite loss


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """Grid spec hashes and the epoch a run diverged.

    ``grids.spec_hash`` is filled from the runs each old grid requested (see
    ``bench.spec.runs_hash``), so rerunning an unchanged spec matches it. Runs stored as
    ``ok`` although a loss was not finite (older bnbench stopped them early but kept ``ok``;
    SQLite stores NaN as NULL) become ``diverged``, and every diverged run gets its epoch.
    """
    from bench.spec import runs_hash

    for name, kind in V3_GRID_COLUMNS:
        conn.execute(f"ALTER TABLE grids ADD COLUMN {name} {kind}")
    for name, kind in V3_RUN_COLUMNS:
        conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    for (name,) in conn.execute("SELECT name FROM grids").fetchall():
        ids = [r[0] for r in conn.execute("SELECT run_id FROM grid_runs WHERE grid = ?", (name,))]
        conn.execute("UPDATE grids SET spec_hash = ?, n_runs = ? WHERE name = ?",
                     (runs_hash(ids), len(ids), name))
    bad_epoch = (
        "SELECT min(e.epoch) FROM epochs e WHERE e.run_id = runs.run_id AND ("
        + " OR ".join(f"e.{c} IS NULL OR abs(e.{c}) > 1.7e308" for c in ("train_loss", "val_loss"))
        + ")"
    )
    conn.execute(f"UPDATE runs SET diverged_epoch = ({bad_epoch}) WHERE status IN ('ok', 'diverged')")
    conn.execute(
        "UPDATE runs SET status = 'diverged', error = 'loss not finite in epoch ' || diverged_epoch "
        "WHERE status = 'ok' AND diverged_epoch IS NOT NULL"
    )
# ----------------------------------------------------------------- end of step 2 -> 3


# ----------------------------------------------------------------- step 3 -> 4 (factors12)
def factor_columns(version: int) -> list[tuple[str, str]]:
    """``runs`` columns of the factors declared with ``since_schema == version``.

    A factor added to bench.factors with ``since_schema = N`` (and SCHEMA_VERSION = N) needs no
    other migration code: ``factor_step(N)`` adds its column to older stores.
    """
    from bench.factors import FACTORS

    return [(f.name, f.column) for f in FACTORS.values() if f.since_schema == version]


def factor_step(version: int) -> Step:
    """The step to ``version`` that adds its factors' columns, old rows at the default level.

    Old runs were trained at the default (a factor's default is what bnbench did before the
    factor existed), so the default is known, not guessed.
    """
    def step(conn: sqlite3.Connection) -> None:
        from bench.factors import FACTORS

        for name, kind in factor_columns(version):
            default = FACTORS[name].to_store(FACTORS[name].default)
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind} NOT NULL DEFAULT {_sql_literal(default)}")
    step.__doc__ = f"Add the columns of the factors declared since schema {version}."
    return step


def _sql_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)
# ----------------------------------------------------------------- end of step 3 -> 4


#: version -> the step that upgrades a store of that version by one.
STEPS: dict[int, Step] = {1: _v1_to_v2, 2: _v2_to_v3, 3: factor_step(4), 4: factor_step(5)}


def run_columns_after_v1() -> list[tuple[str, str]]:
    """The ``runs`` columns added since schema 1, in the order migrations append them (a new
    store has the same columns in the same order)."""
    cols = [*V2_RUN_COLUMNS, *V3_RUN_COLUMNS]
    for version in range(4, max(STEPS) + 2):
        cols += [(name, f"{kind} NOT NULL") for name, kind in factor_columns(version)]
    return cols


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def upgrade(conn: sqlite3.Connection, to_version: int) -> None:
    """Apply every step up to ``to_version`` in one transaction (all or none).

    The version is read again under the write lock: another writer may have upgraded the
    store since this one looked.
    """
    if _version(conn) >= to_version:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        from_version = _version(conn)
        missing = [v for v in range(from_version, to_version) if v not in STEPS]
        if missing:
            raise ValueError(f"no migration from schema version {missing[0]}")
        for version in range(from_version, to_version):
            STEPS[version](conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(to_version),))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def in_memory_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """A private in-memory copy of a store, to upgrade without touching the file."""
    copy = sqlite3.connect(":memory:", check_same_thread=False)
    conn.backup(copy)
    return copy
