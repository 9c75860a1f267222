"""Read a results store (read-only) into tidy pandas frames with cell labels.

A *cell* (defined once, in :mod:`bench.cells`) is a set of runs equal in every setting
(factors, engine and its options, budget, target, split sizes, data) except the arm's
factors and the seed: the unit within which *arms* (combinations of the compared factors,
by default normalizer x placement: "none", "batch before", ...) are compared, seed by
seed. Only the settings that vary among the loaded runs appear in the cell's label, so a
one-factor study reads "all runs" rather than a list of defaults; likewise an arm's label
names only the compared factors that vary ("before" when only the placement does).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench import cells as cell_def
from bench.errors import UsageError
from bench.factors import SpecError
from bench.store import FACTOR_COLUMNS, open_readonly, read_epoch_times, read_epochs, read_grids, read_runs

#: How the report words a placement; ``{norm}`` is the normalizer's name (NORMALIZER_WORDS).
PLACEMENT_WORDS = {
    "none": "no {norm}",
    "before": "{norm} before the activation",
    "after": "{norm} after the activation",
    "after+input": "{norm} after the activation and on the input",
}
NORMALIZER_WORDS = {"batch": "BN", "layer": "layer norm", "group": "group norm", "rms": "RMS norm"}
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
    #: one row per run and epoch, plus the run's ``EPOCH_RUN_COLUMNS``; None when loaded
    #: without (``load(with_epochs=False)``, then ``load_epochs``)
    epochs: pd.DataFrame | None
    grids: pd.DataFrame
    cell_factors: list[str] = field(default_factory=list)  # varying factors outside the arms
    arms: list[str] = field(default_factory=list)  # arm labels, the reference's first
    arm_spec: cell_def.Arms = cell_def.DEFAULT_ARMS
    arm_levels: dict[str, dict[str, str]] = field(default_factory=dict)  # label -> levels that apply
    has_reference: bool = False  # the declared reference arm is among the runs
    #: ``bench.cells.settings_frame`` of ``runs``, row for row (None without runs): computed
    #: once per load, the methods section reads it again
    settings: pd.DataFrame | None = None

    @property
    def reference(self) -> str | None:
        """The arm every other is compared with: the declared one (``none`` by default) when
        present, else the first arm."""
        return self.arms[0] if self.arms else None

    @property
    def arm_varying(self) -> list[str]:
        """The arm factors whose level differs between arms, in the arms' factor order."""
        levels = list(self.arm_levels.values())
        return [n for n in self.arm_spec.factors if len({lv[n] for lv in levels if n in lv}) > 1]

    @property
    def arm_word(self) -> str:
        """"placement" while the arms differ in placement only (as before arms existed),
        else "arm"."""
        return "placement" if set(self.arm_varying) <= {"placement"} else "arm"

    def arm_words(self, arm: str) -> str:
        """An arm in words: "BN before the activation", "group norm after the activation"."""
        levels = self.arm_levels.get(arm)
        if levels is None or "placement" not in levels:
            return f"arm {arm!r}"
        norms = {lv.get("normalizer") for lv in self.arm_levels.values()} - {None}
        if levels["placement"] == "none":
            norm = NORMALIZER_WORDS["batch"] if norms <= {"batch"} else "normalization"
        else:
            norm = NORMALIZER_WORDS.get(levels.get("normalizer", "batch"), levels.get("normalizer", ""))
        words = PLACEMENT_WORDS.get(levels["placement"], f"{{norm}} at placement {levels['placement']!r}")
        extra = [f"{n}={v}" for n, v in levels.items()
                 if n not in ("placement", "normalizer") and n in self.arm_varying]
        return words.format(norm=norm) + (f" ({', '.join(extra)})" if extra else "")

    @property
    def cells(self) -> list[str]:
        return list(dict.fromkeys(self.runs["cell"])) if len(self.runs) else []


def load(path: str | Path, grid: str | None = None, arms: cell_def.Arms | None = None, *,
         with_epochs: bool = True) -> StoreData:
    """Load a store; with ``grid``, only the runs that grid requested.

    ``with_epochs=False``: ``data.epochs`` is None, and of the epochs only each run's epoch
    times are read (its ``epoch_s_median``). Only the figures read the epochs, and in the
    report's main process they are drawn by a worker, which reads them itself while this
    process computes (``load_epochs``), or not at all (Markdown): ~0.3 s of a 10,000-run load.

    ``arms``: what to compare; by default the grid's own ``[report]`` table (its spec is
    stored with it), else normalizer x placement against ``none``; without its reference
    among the runs (a grid still training) the first arm is the reference. Raises StoreError
    for a missing or foreign file and UsageError for an unknown grid, or for ``arms`` given
    here whose reference no run is in (a typo on the command line must not pass silently).
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
        epochs = read_epochs(conn, grid) if with_epochs else read_epoch_times(conn, grid)
    finally:
        conn.close()
    explicit = arms is not None
    if arms is None and grid is not None:
        arms = declared_arms(grids, grid)
    data = prepare(path, grid, runs, epochs, grids, arms, with_epochs=with_epochs)
    if explicit and data.arms and not data.has_reference:
        raise UsageError(f"--reference: no run is in arm {data.arm_spec.reference!r} "
                         f"(arms here: {', '.join(data.arms)})")
    return data


def declared_arms(grids: pd.DataFrame, grid: str) -> cell_def.Arms | None:
    """The arms a stored grid's spec declares in ``[report]`` (None: nothing declared)."""
    text = grids.loc[grids["name"] == grid, "spec_toml"] if "spec_toml" in grids else []
    try:
        report = tomllib.loads(text.iloc[0]).get("report") if len(text) else None
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(report, dict):
        return None
    try:
        return cell_def.Arms.parse(report.get("compare"), report.get("reference"))
    except SpecError as exc:
        raise UsageError(f"grid {grid!r}: {exc}") from None


def varying_factors(runs: pd.DataFrame) -> list[str]:
    """Factor columns with more than one level among these runs."""
    return [c for c in FACTOR_COLUMNS if c in runs and runs[c].nunique(dropna=False) > 1]


def prepare(
    path: Path, grid: str | None, runs: pd.DataFrame, epochs: pd.DataFrame, grids: pd.DataFrame,
    arms: cell_def.Arms | None = None, with_epochs: bool = True,
) -> StoreData:
    """Add the derived columns: cell and arm labels, censoring, per-run time per epoch.
    ``with_epochs=False``: ``epochs`` holds only ``run_id`` and ``epoch_s`` (``load``), read for
    the per-run medians and not kept."""
    arms = arms or cell_def.DEFAULT_ARMS
    runs = runs.reset_index(drop=True)  # a copy; positions as labels, for the settings below
    cell_factors = [f for f in varying_factors(runs) if f not in arms.factors]
    # Every settings-based step reads one settings frame: normalizing 10,000 runs' settings
    # is most of loading a large store.
    settings = cell_def.settings_frame(runs) if len(runs) else None
    table = arms.table(runs, settings) if len(runs) else pd.DataFrame(columns=["key", "label", "levels", "reference"])
    if len(runs):
        runs["cell"] = cell_def.cell_labels(runs, arms.factors, settings)
        runs["arm"] = arms.labels(runs, table, settings)
        dup = cell_def.duplicates(runs, settings)
        if len(dup):
            raise UsageError(
                f"{path}: {len(dup)} runs share a cell, arm and seed with another run "
                f"(e.g. {', '.join(dup['run_id'].astype(str).head(4))}); they cannot be paired"
            )
    else:
        runs["cell"] = pd.Series(dtype=str)
        runs["arm"] = pd.Series(dtype=str)
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

    # (``epochs`` is not copied first: ``_with_runs`` returns a new frame, the caller's stays)
    per_run = (epochs.groupby("run_id", sort=False)["epoch_s"].median() if len(epochs)
               else pd.Series(dtype=float))
    runs["epoch_s_median"] = runs["run_id"].map(per_run).astype(float)
    epochs = _with_runs(epochs, runs, EPOCH_RUN_COLUMNS) if with_epochs else None

    labels = list(table["label"])
    if len(runs):
        runs = runs.sort_values(["cell", "arm", "seed"], kind="stable", key=_sort_key(labels))
        settings = settings.loc[runs.index].reset_index(drop=True)
        runs = runs.reset_index(drop=True)
    return StoreData(path, grid, runs, epochs, grids, cell_factors, labels, arms,
                     dict(zip(table["label"], table["levels"])), bool(table["reference"].any()),
                     settings)


#: The run's columns each epoch row carries.
EPOCH_RUN_COLUMNS = ["cell", "arm", "placement", "seed", "status"]


def load_epochs(data: StoreData) -> None:
    """Read the epochs of ``data``'s runs into ``data.epochs`` (loaded with
    ``with_epochs=False``), as ``load`` would have: the epochs of other runs, such as runs a
    grid stored since, are left out."""
    conn = open_readonly(data.path)
    try:
        epochs = read_epochs(conn, data.grid)
    finally:
        conn.close()
    data.epochs = _with_runs(epochs, data.runs, EPOCH_RUN_COLUMNS)


def _with_runs(epochs: pd.DataFrame, runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``epochs.merge(runs[["run_id", *columns]], on="run_id", how="inner")``: the epochs of
    known runs in their order, with their run's ``columns``. By position (each run_id is one
    run; the merge's key matching and block copies were ~0.15 s of 100,000 epochs)."""
    ids = pd.Index(runs["run_id"])
    if not len(epochs) or not ids.is_unique or set(columns) & set(epochs.columns):  # as merge does
        return epochs.merge(runs[["run_id", *columns]], on="run_id", how="inner")
    at = ids.get_indexer(epochs["run_id"])
    found = at >= 0
    out = epochs.iloc[np.flatnonzero(found)].reset_index(drop=True)
    for col in columns:
        out[col] = runs[col].to_numpy()[at[found]]
    return out


def _sort_key(arms: list[str]):
    rank = {p: i for i, p in enumerate(arms)}

    def key(col: pd.Series) -> pd.Series:
        if col.name == "arm":
            return col.map(rank)
        if col.name == "cell":  # batch_size=2 before batch_size=16
            order = {c: i for i, c in enumerate(sorted(col.unique(), key=cell_order))}
            return col.map(order)
        return col

    return key


def cell_order(label: str) -> tuple:
    """Sort key of a cell label (``"batch_size=16, lr=0.1"``): setting by setting, numeric
    levels by value and before text, so cells read 2, 4, ..., 64 rather than 16, 2, 32."""
    out = []
    for part in str(label).split(", "):
        name, _, value = part.partition("=")
        try:
            out.append((name, 0, float(value), ""))
        except ValueError:
            out.append((name, 1, 0.0, value))
    return tuple(out)


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


def finite(x: pd.Series) -> np.ndarray:
    a = x.to_numpy(dtype=float)
    return a[np.isfinite(a)]
