"""Training engines. Each trains the runs of one cell (same config, different seeds).

An engine is a function ``train_cell(configs, data) -> list[RunResult]``: one result per
config, in order. A run that diverges is returned with status ``diverged``; an engine never
raises for one bad seed. Engines are imported lazily so that importing bench stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bench.datasets import Dataset
from bench.results import RunResult
from bench.spec import RunConfig

TrainCell = Callable[[list[RunConfig], Dataset], list[RunResult]]

_MODULES = {"keras": "bench.engines.keras_fit", "stacked": "bench.engines.stacked"}


def get_engine(name: str) -> TrainCell:
    try:
        module = _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r} (allowed: {', '.join(_MODULES)})") from None
    return importlib.import_module(module).train_cell
