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


#: version -> the step that upgrades a store of that version by one.
STEPS: dict[int, Step] = {1: _v1_to_v2}


def upgrade(conn: sqlite3.Connection, from_version: int, to_version: int) -> None:
    """Apply every step from ``from_version`` to ``to_version`` in one transaction."""
    if from_version >= to_version:
        return
    missing = [v for v in range(from_version, to_version) if v not in STEPS]
    if missing:
        raise ValueError(f"no migration from schema version {missing[0]}")
    conn.execute("BEGIN IMMEDIATE")
    try:
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
