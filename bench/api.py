"""The Python API for reading results: pandas DataFrames straight from a store.

>>> from bench.api import load_runs, load_epochs
>>> runs = load_runs("results/bnbench.sqlite", grid="seed_notebook")
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pandas as pd

from bench.store import open_readonly, read_epochs, read_grids, read_runs


def load_runs(store: str | Path, grid: str | None = None) -> pd.DataFrame:
    """One row per run: factors, seed, status, epochs-to-target (NaN = censored), timings."""
    with closing(open_readonly(store)) as conn:
        return read_runs(conn, grid)


def load_epochs(store: str | Path, grid: str | None = None) -> pd.DataFrame:
    """One row per run and epoch: train/val loss and accuracy, epoch wall time."""
    with closing(open_readonly(store)) as conn:
        return read_epochs(conn, grid)


def load_grids(store: str | Path) -> pd.DataFrame:
    with closing(open_readonly(store)) as conn:
        return read_grids(conn)
