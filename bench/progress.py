"""Per-epoch progress: engines report finished epochs, the driver's bar counts them.

Engines call :func:`epoch_done` with the run ids that just finished an epoch (a stacked
program reports all its live seeds at once). In the driver's own process (``--jobs 1``)
that updates the bar directly; a pool worker puts the ids on a queue (a Manager queue: one
small message per epoch, drained by a thread of the driver). Runs whose epochs are never
reported (a remote Dask worker, a run that failed or stopped early) are completed when
their result is stored, so the bar always ends at its total. The bar counts epochs, so
tqdm's rate and ETA come from measured epoch times.
"""

from __future__ import annotations

import queue as queue_mod
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

Sink = Callable[[list[str]], None]

_sink: Sink | None = None
_worker_queue: Any = None  # the running bar's queue for pool workers, if any


def epoch_done(run_ids: Iterable[str]) -> None:
    """Report that these runs finished one more epoch. Cheap, and never raises."""
    sink = _sink
    if sink is None:
        return
    try:
        sink(list(run_ids))
    except Exception:  # noqa: BLE001 - progress must never break training
        pass


def set_sink(sink: Sink | None) -> Sink | None:
    """Route :func:`epoch_done` to ``sink`` in this process; returns the previous one."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def worker_queue() -> Any:
    """The queue pool workers should report to (None: no bar, or not made yet)."""
    return _worker_queue


def report_to(q: Any) -> None:
    """In a pool worker: send this process's epochs to the driver's queue ``q``."""
    set_sink(None if q is None else q.put)


class EpochBar:
    """A tqdm bar in epochs over the runs to train; a context manager.

    ``pool=True`` also starts a Manager queue for worker processes and a thread draining it.
    """

    def __init__(self, budgets: dict[str, int], desc: str, *, enabled: bool = True, pool: bool = False):
        from tqdm import tqdm

        self._budget = budgets
        self._seen: Counter = Counter()
        self._done: set[str] = set()
        self._runs = Counter()
        self._lock = threading.Lock()
        self.bar = tqdm(total=sum(budgets.values()), desc=desc, unit="epoch", disable=not enabled,
                        dynamic_ncols=True)
        self._enabled = enabled
        self._pool = pool and enabled
        self._manager = self._thread = None

    def __enter__(self) -> EpochBar:
        global _worker_queue
        if not self._enabled:
            return self
        self._previous = set_sink(self.epochs)
        if self._pool:
            import multiprocessing

            self._manager = multiprocessing.Manager()
            _worker_queue = self._queue = self._manager.Queue()
            self._thread = threading.Thread(target=self._drain, name="bnbench-progress", daemon=True)
            self._thread.start()
        return self

    def _drain(self) -> None:
        while True:
            try:
                ids = self._queue.get(timeout=0.5)
            except queue_mod.Empty:
                continue
            except (EOFError, OSError):  # the manager is gone: the bar is closing
                return
            if ids is None:
                return
            self.epochs(ids)

    def epochs(self, run_ids: list[str]) -> None:
        """Count one epoch of each run (ignored for runs already stored)."""
        with self._lock:
            fresh = [r for r in run_ids if r not in self._done]
            self._seen.update(fresh)
            if fresh:
                self.bar.update(len(fresh))

    def stored(self, run_id: str, status: str) -> None:
        """A run's result is stored: count the epochs it never reported, and its status."""
        with self._lock:
            self._done.add(run_id)
            rest = self._budget.get(run_id, 0) - self._seen.pop(run_id, 0)
            self._runs[status] += 1
            self.bar.set_postfix({"runs": sum(self._runs.values()), **self._runs}, refresh=False)
            self.bar.update(max(0, rest))

    def __exit__(self, *exc: object) -> None:
        global _worker_queue
        if self._enabled:
            set_sink(self._previous)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            _worker_queue = None
            self._manager.shutdown()
        self.bar.close()
