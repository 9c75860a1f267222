"""Train a grid on a Dask cluster; results stream back to the driver, which alone writes the store.

Why ``client.submit`` (and ``distributed.wait``) rather than joblib's Dask backend:
joblib 1.6 does stream with ``return_as="generator_unordered"`` under
``parallel_config(backend="dask")``, but it auto-batches several tasks into one Dask task
(a killed worker takes the whole batch with it), it hides how often a task was tried, and
a task that exhausts the scheduler's ``allowed-failures`` raises ``KilledWorker`` out of
the whole ``Parallel`` call, aborting every other task in flight. Here each task is its
own future: a death costs that task one attempt, it is resubmitted up to ``retries`` times
and then stored as ``failed`` with the reason, and every other result keeps streaming.

``client.submit(retries=N)`` is not used either: Dask's ``retries`` only re-run tasks that
*raise*, and ``train_task`` never raises (failures come back as ``failed`` results); worker
deaths are counted by the scheduler against ``distributed.scheduler.allowed-failures``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from bench.errors import SchedulerError
from bench.results import RunResult
from bench.runner import DEFAULT_RETRIES, Task, failed_results, train_task
from bench.spec import GridSpec

CONNECT_TIMEOUT_S = 5
POLL_S = 2.0  # how often a waiting driver checks that the scheduler is still there


def _on_worker(task: Task, requested_threads: int, n_workers: int) -> list[RunResult]:
    """Runs on a Dask worker: pin TensorFlow to the worker's thread slots, train the task.

    TensorFlow's pools are per process, so a worker started with ``--nthreads T`` gets T
    TensorFlow threads (unless the spec sets ``engine.threads``); size workers so that
    workers x nthreads <= cores on each machine.
    """
    from distributed import get_worker

    threads = requested_threads or max(1, get_worker().state.nthreads)
    return train_task(task, threads, n_workers)


def _check_on_worker(spec: GridSpec) -> None:
    from bench.runner import check_datasets

    check_datasets(spec)


def _deaths(dask_scheduler: Any, key: str) -> int | None:
    """Runs on the scheduler: how many workers died while running ``key``."""
    ts = dask_scheduler.tasks.get(key)
    return None if ts is None else int(ts.suspicious)


class DaskSource:
    """A results source (see ``bench.runner.run_grid``) backed by a Dask cluster.

    ``address`` is ``tcp://host:port`` of a running scheduler, or ``local`` to start a
    ``LocalCluster`` of ``jobs`` single-threaded worker processes on this machine (its
    scheduler allows no silent re-runs, so ``retries`` counts attempts exactly).
    """

    def __init__(self, address: str, *, jobs: int = 1, retries: int = DEFAULT_RETRIES):
        import dask
        from distributed import Client, LocalCluster

        self.retries = retries
        self.cluster = None
        # The client logs "Failed to reconnect to scheduler ..." at ERROR level from its own
        # thread when the scheduler goes away; bnbench says so itself (SchedulerError, one
        # line), so the client's logger only speaks for CRITICAL from here on, in this process.
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
        try:
            if address == "local":
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self.cluster = LocalCluster(
                        n_workers=jobs, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None,
                    )
                self.client = Client(self.cluster, timeout=f"{CONNECT_TIMEOUT_S}s")
            else:
                self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            raise SchedulerError(f"scheduler {address}: cannot connect ({exc})") from None
        self.address = address

    def close(self) -> None:
        for thing in (getattr(self, "client", None), self.cluster):
            if thing is not None:
                thing.close()

    def __enter__(self) -> DaskSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _slots(self) -> tuple[int, int]:
        """(workers, total worker threads) in the cluster now; waits briefly for a first worker."""
        try:
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S * 3)
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        except TimeoutError:
            raise SchedulerError(f"scheduler {self.address}: no workers joined") from None
        except OSError:  # CommClosedError too: the scheduler went away while we asked
            raise self._lost() from None
        return len(workers), sum(w["nthreads"] for w in workers.values())

    def check_datasets(self, spec: GridSpec) -> None:
        """Load the grid's datasets on a worker (the data lives where training happens)."""
        from distributed.client import FuturesCancelledError

        self._slots()
        try:
            self.client.submit(_check_on_worker, spec, pure=False).result()
        except (OSError, FuturesCancelledError):
            raise self._lost() from None

    def __call__(self, tasks: Iterable[Task], jobs: int, threads: int) -> Iterator[list[RunResult]]:
        n_workers, slots = self._slots()
        pending = iter(tasks)
        meta: dict[str, tuple[Any, Task, int]] = {}  # key -> (future, task, attempts spent before)

        def submit(task: Task, spent: int) -> None:
            key = f"bnbench-{task[0].run_id}-{spent}-{uuid.uuid4().hex[:8]}"
            # engine.threads 0 (the default) lets each worker use its own nthreads.
            fut = self.client.submit(_on_worker, task, task[0].engine.threads, n_workers, key=key, pure=False)
            meta[key] = (fut, task, spent)

        def refill() -> None:
            # Keep about two tasks per worker thread queued: enough to stay busy, and the
            # rest stays unclaimed so that another driver on the same store can take it.
            while len(meta) < 2 * slots:
                task = next(pending, None)
                if task is None:
                    return
                submit(task, 0)

        refill()
        try:
            while meta:
                for fut in self._next_done([m[0] for m in meta.values()]):
                    _, task, spent = meta.pop(fut.key)
                    deaths = self._deaths(fut.key)
                    if fut.status == "finished":
                        results = fut.result()
                        for r in results:
                            r.attempts = spent + (deaths or 0) + 1
                        yield results
                    else:
                        self._check_connected()  # a lost scheduler cancels every future
                        exc = fut.exception()
                        spent += deaths if deaths else 1
                        if spent <= self.retries:
                            submit(task, spent)
                        else:
                            reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
                            yield failed_results(task, f"worker died {spent} times ({reason})", attempts=spent)
                    fut.release()
                refill()
        finally:
            if meta and self.client.status == "running":
                self.client.cancel([m[0] for m in meta.values()], force=True)

    def _next_done(self, futures: list[Any]) -> list[Any]:
        """The futures done now, waiting for at least one; polls so a lost scheduler is noticed.

        (``distributed.as_completed`` waits forever once the client has given up reconnecting.)
        """
        from distributed import wait
        from distributed.client import FuturesCancelledError

        while True:
            self._check_connected()
            try:
                return list(wait(futures, timeout=POLL_S, return_when="FIRST_COMPLETED").done)
            except TimeoutError:
                continue
            except OSError:  # the connection broke during the wait
                raise self._lost() from None
            except FuturesCancelledError:  # the scheduler went away (or someone cancelled them)
                self._check_connected()
                return [f for f in futures if f.done()]

    def _check_connected(self) -> None:
        if self.client.status not in ("running", "connecting"):
            raise self._lost()

    def _lost(self) -> SchedulerError:
        return SchedulerError(
            f"scheduler {self.address}: connection lost; finished runs are in the store, "
            "run again to train the rest"
        )

    def _deaths(self, key: str) -> int | None:
        """Worker deaths the scheduler saw for ``key`` (None if it cannot tell us)."""
        try:
            return self.client.run_on_scheduler(_deaths, key=key)
        except Exception:  # noqa: BLE001 - e.g. a scheduler without bnbench installed
            return None
