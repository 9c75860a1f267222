"""The HTML report's figures, drawn in a second process while this one computes the tables.

A 10,000-run report spends about as long importing matplotlib and drawing its figures (~2.5 s)
as loading the store and computing its tables, interactions and rows, which need no figure.
With a core idle (and ``fork``: the worker starts in milliseconds and inherits the imports
already there) the figures are drawn in one worker process, started before the store is
loaded: it imports matplotlib while this process loads, is sent the loaded runs once, reads
the epochs itself (only its figures need them; this process then loads without them), and
draws each figure as soon as its inputs exist: those of the loaded data at once, the forest
plot once the comparisons are computed, the effects by level once the interaction effects
are. Otherwise (``in_worker``: a small store, one core, a busy machine, no ``fork``) they are
drawn in this process when asked for. Either way the SVG text is the same (``figures`` fixes
its ids with ``svg.hashsalt`` and jitters with its own seeded generator), an error drawing a
figure is raised by ``result``, and a worker that dies (killed, out of memory) leaves the
figures to this process.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from reports.load import StoreData, load_epochs


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def running_tasks() -> int:
    """Tasks running or ready to run now, this process among them (Linux's /proc/loadavg).

    Not the 1-minute load average: that still counts a report that finished seconds ago (three
    reports in a row kept it at 1.0-1.1 on an otherwise idle 2-core machine)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[3].split("/")[0])


def idle_cores() -> int:
    """Cores that nothing runs on right now, besides this process's own."""
    return usable_cores() - running_tasks()


#: Below this many runs the worker does not pay: the tables take about as long as the
#: worker's import of matplotlib plus the fork (measured on 2 cores, fresh process each: 600
#: runs 5.0-5.1 s with the worker against 4.2 s without; 3,000 runs within the noise; 10,020
#: runs 5.3-7.1 s against 6.5-8.5 s; docs/performance.md).
MIN_RUNS = 5000


def in_worker(n_runs: int) -> bool:
    """Whether the figures of ``n_runs`` runs go to a worker process: a large store
    (``MIN_RUNS``), ``fork`` on Linux before Python 3.12, and a core idle besides this
    process's (``idle_cores``). A spawned worker would import pandas and matplotlib afresh;
    from 3.12 on, forking a threaded process (numpy's BLAS threads) is deprecated, with a
    warning; a forked child of a process running TensorFlow crashed (segmentation fault in
    its garbage collector freeing TensorFlow functions, seen in the test suite; the report
    then drew the figures itself), so a process that imported TensorFlow draws them itself;
    and on a busy machine the worker only takes a share of this process's CPU, plus the cost
    of the fork (measured: 5-15% slower at load 3.5-6 on 2 cores)."""
    return (n_runs >= MIN_RUNS and sys.platform == "linux" and sys.version_info < (3, 12)
            and "tensorflow" not in sys.modules and idle_cores() >= 1)


def _data_figures(data: StoreData) -> dict[str, str]:
    from reports import figures  # matplotlib only when drawing (~0.5 s to import)

    if data.epochs is None:  # the main process loaded without them: read them here
        load_epochs(data)

    return {"learning_curves": figures.learning_curves(data), "km": figures.km_curves(data),
            "time_per_epoch": figures.time_per_epoch(data), "interaction": figures.interaction(data),
            "_captions": figures.figure_captions(data)}


def _comparison_figures(data: StoreData, comparisons: pd.DataFrame) -> dict[str, str]:
    from reports import figures

    return {"forest": figures.forest(comparisons), "_notes": figures.figure_notes(data, comparisons)}


def _effect_figure(data: StoreData, effects: pd.DataFrame) -> dict[str, str]:
    from reports import figures

    return {"effect_by_level": figures.effect_by_level(effects, data.arms)}


def _import_figures() -> None:
    """The worker's first task, while this process loads the store: import matplotlib."""
    from reports import figures  # noqa: F401


def figure_data(data: StoreData) -> StoreData:
    """What the figures read of the data: the runs without their JSON records (the machine,
    versions, engine and configuration of each run, ~40% of what the worker would be sent)
    and without the settings frame, which only the methods section reads. The epochs, if
    the main process loaded without them, the worker reads itself (``_data_figures``)."""
    records = [c for c in data.runs.columns if c.endswith("_json")]
    return dataclasses.replace(data, runs=data.runs.drop(columns=records), settings=None)


#: The worker's copy of the report's data: sent once, with the first figures.
_DATA: StoreData | None = None


def _keep_and_draw(data: StoreData) -> dict:
    global _DATA
    _DATA = data
    return _data_figures(data)


def _with_data(fn: Callable[..., dict], *args: object) -> dict:
    return fn(_DATA, *args)


#: The figures in the report's order (that of ``figures.all_figures``, then the effects).
ORDER = ("learning_curves", "km", "time_per_epoch", "forest", "interaction", "effect_by_level")


class Drawing:
    """The figures of one report. Made before the store is loaded, with its number of runs
    (the worker, if any, starts then and imports matplotlib while this process loads); then
    given the data, the comparisons and the interaction effects as they are computed; then
    ``result``."""

    def __init__(self, n_runs: int) -> None:
        self._pool = (ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
                      if in_worker(n_runs) else None)
        self._data: StoreData | None = None
        self._calls: list[functools.partial] = []  # what to draw, in order
        self._futures: list[Future] = []  # the worker's drawings of them
        self.drawn_here = self._pool is None  # by this process (no worker, or it died)
        self._broken = False  # the worker died before a submit
        self.importing: Future | None = None  # the worker's import of matplotlib
        if self._pool is not None:
            # The first submit forks. Frozen (as Python's documentation advises before a fork
            # without exec), the inherited objects are never visited by the worker's
            # collector: it neither copies their pages nor runs finalizers of objects that
            # belong to this process (a library's threads, locks and handles do not survive a
            # fork).
            gc.freeze()
            try:
                self.importing = self._send(_import_figures)  # an import error: raised by each figure
            finally:
                gc.unfreeze()

    def data(self, data: StoreData) -> None:
        """The loaded store: sent to the worker (``figure_data``, pickled by the pool's
        feeder thread while this process goes on), which draws its figures at once."""
        self._data = data
        self._calls.append(functools.partial(_data_figures, data))
        self._draw(self._send(_keep_and_draw, figure_data(data)))

    def _submit(self, fn: Callable[..., dict], *args: object) -> None:
        """Draw ``fn(data, *args)``: in the worker at once, else here in ``result``."""
        self._calls.append(functools.partial(fn, self._data, *args))
        self._draw(self._send(_with_data, fn, *args))

    def _draw(self, future: Future | None) -> None:
        if future is not None:
            self._futures.append(future)

    def _send(self, fn: Callable[..., object], *args: object) -> Future | None:
        """``fn(*args)`` in the worker, if there is one and it lives."""
        if self._pool is None or self._broken:
            return None
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool:  # it died before this submit
            self._broken = True
            return None

    def comparisons(self, comparisons: pd.DataFrame) -> None:
        self._submit(_comparison_figures, comparisons)

    def effects(self, effects: pd.DataFrame) -> None:
        self._submit(_effect_figure, effects)

    def close(self) -> None:
        """Stop the worker without its figures (the report failed before asking for them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _drawn(self) -> list[dict]:
        """Each call's figures: the worker's, or drawn here without one or if it died (killed,
        out of memory): the report is not lost for the want of a second process. An error
        drawing a figure is raised either way."""
        if self._pool is None:
            return [call() for call in self._calls]
        try:
            if self._broken:
                raise BrokenProcessPool
            return [future.result() for future in self._futures]
        except BrokenProcessPool:
            self.drawn_here = True
            return [call() for call in self._calls]
        finally:
            self._pool.shutdown(cancel_futures=True)

    def result(self) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """(figures, captions, notes) as ``build_context`` puts them in the report."""
        out: dict = {}
        for part in self._drawn():
            out.update(part)
        figs = {k: out[k] for k in ORDER if k in out}
        return figs, out["_captions"], out["_notes"]
