"""Baseline/current pairs with planted regressions, built on tests/synthetic_store.py.

``frames`` builds a side in memory (no SQLite) so that hundreds of A/A trials stay fast;
``store`` writes the same runs to a store file for the CLI tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.spec import GridSpec, parse_spec
from bench.store import Store, result_row
from reports.load import StoreData, prepare
from synthetic_store import synth_result

PLACEMENTS = ("none", "before", "after")
EFFECT = {"none": 0.0, "before": 0.008, "after": 0.013}
TIME = {"none": 1.0, "before": 1.25, "after": 1.3}


def spec(seeds: list[int], placements: tuple[str, ...] = PLACEMENTS, epochs: int = 10) -> GridSpec:
    return parse_spec({
        "grid": {"name": "synthetic", "seeds": seeds, "epochs": epochs, "target_accuracy": 0.9},
        "factors": {"placement": list(placements)},
    })


def results(grid: GridSpec, *, slowdown: float = 1.0, accuracy_drop: float = 0.0, **kw: Any) -> list:
    """Runs of the planted model: every epoch ``slowdown`` times slower, accuracy lower."""
    time_factor = {p: f * slowdown for p, f in TIME.items()}
    return [synth_result(cfg, effect=EFFECT, time_factor=time_factor, base=0.92 - accuracy_drop, **kw)
            for cfg in grid.expand()]


def frames(grid: GridSpec, *, fingerprint: str | None = None, **kw: Any) -> StoreData:
    res = results(grid, **kw)
    runs = pd.DataFrame([result_row(r) for r in res])
    if fingerprint:
        runs["machine_fingerprint"] = fingerprint
    epochs = pd.DataFrame(
        [(r.config.run_id, e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.epoch_s)
         for r in res for e in r.epochs],
        columns=["run_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s"],
    )
    return prepare(Path("<memory>"), None, runs, epochs, pd.DataFrame())


def store(path: Path, grid: GridSpec, *, fingerprint: str | None = None, **kw: Any) -> Path:
    res = results(grid, **kw)
    with Store(path) as s:
        s.register_grid(grid, grid.expand())
        for r in res:
            s.write_result(r)
        if fingerprint:
            with s.conn:
                s.conn.execute("UPDATE runs SET machine_fingerprint = ?", (fingerprint,))
    return path
