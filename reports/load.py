"""Read a results store (read-only) into tidy pandas frames with cell labels.

A *cell* (defined once, in :mod:`bench.cells`) is a set of runs equal in every setting
(factors, engine and its options, budget, target, split sizes, data) except ``placement``
and the seed: the unit within which placements are compared, seed by seed. Only the
settings that vary among the loaded runs appear in the cell's label, so a one-factor study
reads "all runs" rather than a list of defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import cells as cell_def
from bench.errors import UsageError
from bench.store import FACTOR_COLUMNS, open_readonly, read_epochs, read_grids, read_runs

#: Placements in the order the report lists them; unknown ones sort after these.
PLACEMENT_ORDER = ["none", "before", "after", "after+input"]
PLACEMENT_WORDS = {
    "none": "no BN",
    "before": "BN before the activation",
    "after": "BN after the activation",
    "after+input": "BN after the activation and on the input",
}
#: Held-out test-split columns (NULL/NaN: unknown, for runs stored before schema 2).
TEST_COLUMNS = ("test_size", "test_loss", "test_acc", "test_loss_at_best", "test_acc_at_best", "best_val_epoch")
#: Statuses whose outcome is known; ``failed`` runs (an exception) carry no outcome.
ANALYSED = ("ok", "diverged")


@dataclass
class StoreData:
    """Everything the report needs, loaded once."""

    path: Path
    grid: str | None
    runs: pd.DataFrame  # one row per run, plus cell, censored, ett_duration, epoch_s_median
    epochs: pd.DataFrame  # one row per run and epoch, plus cell and placement
    grids: pd.DataFrame
    cell_factors: list[str] = field(default_factory=list)  # varying factors except placement
    placements: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str | None:
        """The placement every other is compared with: ``none`` when present."""
        if not self.placements:
            return None
        return "none" if "none" in self.placements else self.placements[0]

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(self.runs["cell"])) if len(self.runs) else []


def load(path: str | Path, grid: str | None = None) -> StoreData:
    """Load a store; with ``grid``, only the runs that grid requested.

    Raises StoreError for a missing or foreign file and UsageError for an unknown grid.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a store file")
    conn = open_readonly(path)
    try:
        grids = read_grids(conn)
        if grid is not None and grid not in set(grids["name"]):
            known = ", ".join(grids["name"]) or "none"
            raise UsageError(f"{path}: no grid named {grid!r} (grids in this store: {known})")
        runs = read_runs(conn, grid)
        epochs = read_epochs(conn, grid)
    finally:
        conn.close()
    return prepare(path, grid, runs, epochs, grids)


def varying_factors(runs: pd.DataFrame) -> list[str]:
    """Factor columns with more than one level among these runs."""
    return [c for c in FACTOR_COLUMNS if c in runs and runs[c].nunique(dropna=False) > 1]


def prepare(
    path: Path, grid: str | None, runs: pd.DataFrame, epochs: pd.DataFrame, grids: pd.DataFrame
) -> StoreData:
    """Add the derived columns: cell label, censoring, per-run time per epoch."""
    runs = runs.copy()
    cell_factors = [f for f in varying_factors(runs) if f not in cell_def.COMPARED]
    if len(runs):
        runs["cell"] = cell_def.cell_labels(runs)
        dup = cell_def.duplicates(runs)
        if len(dup):
            raise UsageError(
                f"{path}: {len(dup)} runs share a cell, placement and seed with another run "
                f"(e.g. {', '.join(dup['run_id'].astype(str).head(4))}); they cannot be paired"
            )
    else:
        runs["cell"] = pd.Series(dtype=str)
    for col in TEST_COLUMNS:  # tables exported before the test split was evaluated
        if col not in runs:
            runs[col] = np.nan
    runs["reached"] = runs["epochs_to_target"].notna()
    runs["censored"] = ~runs["reached"]
    # Censored runs are at risk until (and censored at) the budget; see stats.kaplan_meier.
    runs["ett_duration"] = runs["epochs_to_target"].astype(float).fillna(
        runs["epochs_budget"].astype(float)
    )
    runs["analysed"] = runs["status"].isin(ANALYSED)

    epochs = epochs.copy()
    per_run = epochs.groupby("run_id")["epoch_s"].median() if len(epochs) else pd.Series(dtype=float)
    runs["epoch_s_median"] = runs["run_id"].map(per_run).astype(float)
    keep = ["run_id", "cell", "placement", "seed", "status"]
    epochs = epochs.merge(runs[keep], on="run_id", how="inner")

    present = list(dict.fromkeys(runs["placement"])) if len(runs) else []
    placements = [p for p in PLACEMENT_ORDER if p in present] + sorted(
        p for p in present if p not in PLACEMENT_ORDER
    )
    if len(runs):
        runs = runs.sort_values(["cell", "placement", "seed"], kind="stable", key=_sort_key(placements))
        runs = runs.reset_index(drop=True)
    return StoreData(path, grid, runs, epochs, grids, cell_factors, placements)


def _sort_key(placements: list[str]):
    rank = {p: i for i, p in enumerate(placements)}

    def key(col: pd.Series) -> pd.Series:
        return col.map(rank) if col.name == "placement" else col

    return key


def json_values(runs: pd.DataFrame, column: str) -> list[dict]:
    """The distinct decoded JSON objects of a column, most frequent first, with counts."""
    if column not in runs or not len(runs):
        return []
    counts = runs[column].value_counts()
    out = []
    for text, n in counts.items():
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = {"raw": text}
        out.append({"value": value, "runs": int(n)})
    return out


def placement_words(placement: str) -> str:
    return PLACEMENT_WORDS.get(placement, f"placement {placement!r}")


def finite(x: pd.Series) -> np.ndarray:
    a = x.to_numpy(dtype=float)
    return a[np.isfinite(a)]
