"""Run a grid: expand, skip what the store has, train the rest in parallel, store each run.

The driver process alone writes the store, one transaction per finished run, as results
stream back from the workers; a killed grid therefore loses only the runs in flight and
resumes where it stopped. Workers pin TensorFlow's thread pools so that
workers x threads <= cores and wall times stay meaningful.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from bench.progress import EpochBar
from bench.results import RunResult
from bench.spec import GridSpec, RunConfig
from bench.store import Store, StoreError, owner_id

Task = list[RunConfig]


@dataclass
class GridOutcome:
    """What one ``run_grid`` call did."""

    total: int
    already_stored: int
    statuses: Counter = field(default_factory=Counter)
    stored_meanwhile: int = 0  # stored by another driver after this one started
    busy: Counter = field(default_factory=Counter)  # owner -> runs it is training now

    @property
    def trained(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "none"
        text = (
            f"{self.total} runs in grid: {self.already_stored} already in the store, "
            f"{self.trained} trained now ({parts})"
        )
        if self.stored_meanwhile:
            text += f", {self.stored_meanwhile} stored meanwhile by another process"
        return text

    def busy_notices(self) -> list[str]:
        """One line per other live driver whose claimed runs this one skipped."""
        return [
            f"{n} runs are being trained by {owner}; skipping them; "
            "run again later to pick up any it leaves"
            for owner, n in sorted(self.busy.items())
        ]


def plan_tasks(runs: Iterable[RunConfig], stored: set[str]) -> list[Task]:
    """Group the runs not yet stored into tasks: seeds of one cell, at most seeds_per_program.

    The Keras engine trains one seed at a time, so its tasks hold one run each. With
    ``seeds_per_program = "auto"`` a task is the whole cell: the worker sizes its programs
    from the device it trains on (``bench.device.auto_seeds``).
    """
    todo = [r for r in runs if r.run_id not in stored]
    tasks: list[Task] = []
    for _, cell_runs in groupby(sorted(todo, key=lambda r: (r.program_key, r.seed)), key=lambda r: r.program_key):
        cell = list(cell_runs)
        width = cell[0].engine.seeds_per_program if cell[0].engine.name == "stacked" else 1
        width = len(cell) if width == "auto" else width
        tasks += [cell[i : i + width] for i in range(0, len(cell), width)]
    return tasks


def failed_results(task: Task, error: str, *, attempts: int = 1) -> list[RunResult]:
    """Results recording that a task's runs failed, so the grid goes on and the reason is kept."""
    from bench.engines.common import now_iso
    from bench.host import host_info, library_versions

    stamp = now_iso()
    return [
        RunResult(
            config=cfg, status="failed", error=error, started_at=stamp, finished_at=stamp,
            attempts=attempts, host=host_info(), versions=library_versions(),
        )
        for cfg in task
    ]


#: Test-only hook: comma-separated ``RUN_ID`` or ``RUN_ID:FLAG_FILE``. A task holding such a
#: run SIGKILLs its own worker process (every time, or only while FLAG_FILE does not exist
#: yet, creating it). Lets tests kill a worker mid-grid deterministically; never set it otherwise.
TEST_KILL_ENV = "BNBENCH_TEST_KILL_RUN"

#: Default for ``--retries``: extra attempts for a task whose worker process died.
DEFAULT_RETRIES = 2

ResultsSource = Callable[[Iterable[Task], int, int], Iterator[list[RunResult]]]


def _test_kill_hook(task: Task) -> None:
    ids = {c.run_id for c in task}
    for entry in filter(None, os.environ.get(TEST_KILL_ENV, "").split(",")):
        run_id, _, flag = entry.partition(":")
        if run_id not in ids:
            continue
        if flag:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                continue
        os.kill(os.getpid(), signal.SIGKILL)


def train_task(task: Task, threads: int, concurrent_workers: int, slot: int = 0) -> list[RunResult]:
    """Train one task in this process. Any exception becomes ``failed`` results, never a crash.

    ``slot`` numbers this worker among the ``concurrent_workers``; it picks the GPU on a
    GPU machine (see bench.device.assign_gpu).
    """
    _test_kill_hook(task)
    try:
        from bench.datasets import load_dataset
        from bench.engines import get_engine
        from bench.tf_setup import configure_tensorflow

        first = task[0]
        threads = configure_tensorflow(threads, first.engine.deterministic, slot)
        data = load_dataset(first.dataset, first.validation_size, first.train_limit, first.data_path)
        results = get_engine(first.engine.name)(task, data)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback's last line
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        results = failed_results(task, last)
    for r in results:
        r.concurrent_workers = concurrent_workers
        r.threads = r.threads or threads
    return results


def check_datasets(spec: GridSpec) -> None:
    """Load every dataset the grid uses, in this process, before anything is written.

    A missing or malformed dataset file is then one DatasetError for the user, not a grid
    of ``failed`` runs. Loads are cached, so the sequential runner reuses them.
    """
    from bench.datasets import load_dataset

    for dataset in sorted(spec.factors["dataset"]):
        load_dataset(dataset, spec.validation_size, spec.train_limit, spec.data_path)


def _local_task(task: Task, threads: int, jobs: int, started_dir: str, progress_queue=None) -> list[RunResult]:
    """``train_task`` in a pool worker, leaving a mark that the task started (see _results_local).

    Each worker claims a slot (0..jobs-1) for its life: on a GPU machine, its GPU. Epochs are
    reported to ``progress_queue`` (see bench.progress) as they finish.
    """
    from bench.device import claim_slot
    from bench.progress import report_to

    Path(started_dir, task[0].run_id).touch()
    report_to(progress_queue)
    slots = Path(started_dir, "slots")
    slots.mkdir(exist_ok=True)
    return train_task(task, threads, jobs, claim_slot(str(slots), jobs))


def _results_local(
    tasks: Iterable[Task], jobs: int, threads: int, *, retries: int = DEFAULT_RETRIES
) -> Iterator[list[RunResult]]:
    """Train on this machine: in-process for one job, else a loky process pool.

    A worker that dies (SIGKILL, OOM killer, segfault) breaks the whole loky pool: joblib
    raises TerminatedWorkerError out of the Parallel call. Results streamed before that are
    already stored. The tasks that had started and not come back are each charged one
    attempt (the pool cannot say which one killed it) and then retried one at a time, so a
    further death is the culprit's alone; after ``retries`` extra attempts it is recorded as
    failed. Tasks dispatched but not started go back to the queue free.
    """
    if jobs == 1:
        for task in tasks:
            yield train_task(task, threads, 1)
        return
    import tempfile

    from joblib import Parallel, delayed

    from bench.progress import worker_queue
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    died: dict[str, int] = {}  # task key -> attempts that died
    suspects: list[Task] = []  # started when a worker died: retried alone
    requeued: list[Task] = []  # dispatched, not started: retried as usual
    fresh = iter(tasks)

    def done(results: list[RunResult]) -> list[RunResult]:
        n = died.pop(results[0].config.run_id, 0) + 1
        for r in results:
            r.attempts = n
        return results

    def charge(task: Task, reason: str) -> list[RunResult] | None:
        """Count a death; the failed results once the retries are spent, else requeue it."""
        key = task[0].run_id
        died[key] = n = died.get(key, 0) + 1
        if n > retries:
            del died[key]
            return failed_results(task, f"worker process died {n} times ({reason})", attempts=n)
        suspects.append(task)
        return None

    with tempfile.TemporaryDirectory(prefix="bnbench-started-") as started:
        while True:
            while suspects:
                task = suspects.pop(0)
                try:
                    yield done(Parallel(n_jobs=jobs, backend="loky")(
                        [delayed(_local_task)(task, threads, jobs, started, worker_queue())])[0])
                except (TerminatedWorkerError, BrokenProcessPool) as exc:
                    failed = charge(task, str(exc).splitlines()[0])
                    if failed:
                        yield failed
            dispatched: dict[str, Task] = {}  # key -> task handed to the pool, not back yet
            calls = (
                delayed(_local_task)(task, threads, jobs, started, worker_queue())
                for task in itertools.chain(requeued, fresh)
                if dispatched.setdefault(task[0].run_id, task)
            )
            requeued = []
            stream = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")(calls)
            try:
                for results in stream:
                    dispatched.pop(results[0].config.run_id, None)
                    yield done(results)
                return
            except (TerminatedWorkerError, BrokenProcessPool) as exc:
                reason = str(exc).splitlines()[0]
            finally:
                _close_quietly(stream)
            for key, task in dispatched.items():
                mark = Path(started, key)
                if not mark.exists():
                    requeued.append(task)
                    continue
                mark.unlink()
                failed = charge(task, reason)
                if failed:
                    yield failed


def _close_quietly(stream: Iterator) -> None:
    """Close a joblib result stream. When the driver stops early (an error, Ctrl-C), joblib
    warns that the tasks in flight "have been cancelled": bnbench's own one-line message
    says what happened and that finished runs are stored, so that warning is not repeated."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*tasks which were still being processed", category=UserWarning)
        stream.close()


def _claiming(
    tasks: list[Task], store: Store, owner: str, outcome: GridOutcome, *, retry_failed: bool = True
) -> Iterator[Task]:
    """Yield each task trimmed to the runs this driver could claim, claimed just before dispatch.

    Claiming lazily lets two drivers on one store share a grid instead of one taking it all.
    """
    for task in tasks:
        got = store.claim([c.run_id for c in task], owner, retry_failed=retry_failed)
        outcome.stored_meanwhile += len(got.stored)
        outcome.busy.update(Counter(got.busy.values()))
        mine = set(got.mine)
        if mine:
            yield [c for c in task if c.run_id in mine]


def run_grid(
    spec: GridSpec,
    store_path: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    retries: int = DEFAULT_RETRIES,
    results_source: ResultsSource | None = None,
    retry_failed: bool = True,
    replace: bool = False,
) -> GridOutcome:
    """Train every run of ``spec`` that ``store_path`` does not hold yet; return the tally.

    Runs stored as ``failed`` are trained again unless ``retry_failed`` is False (their
    attempts add up). A grid name already bound to another spec is refused unless
    ``replace`` (see ``Store.register_grid``).

    ``results_source(tasks, jobs, threads)`` trains the (lazily claimed) tasks and yields
    each task's results as they finish; the default trains on this machine. A source with a
    ``check_datasets(spec)`` method validates the data where it trains (e.g. on a worker).
    """
    from bench.tf_setup import threads_per_worker

    source = results_source or functools.partial(_results_local, retries=retries)
    getattr(source, "check_datasets", check_datasets)(spec)  # before anything is written
    runs = spec.expand()
    path = Path(store_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create folder {path.parent} ({exc.strerror})") from None
    owner = owner_id()
    with Store(path) as store:
        store.register_grid(spec, runs, replace=replace)
        stored = store.stored_run_ids(include_failed=not retry_failed)
        tasks = plan_tasks(runs, stored)
        outcome = GridOutcome(total=len(runs), already_stored=len(runs) - sum(map(len, tasks)))
        if not tasks:
            return outcome
        jobs = max(1, min(jobs, len(tasks)))
        threads = threads_per_worker(jobs, spec.engine.threads)
        budgets = {c.run_id: c.epochs for task in tasks for c in task}
        # Epochs come back through a queue only from this machine's pool (not from Dask).
        bar = EpochBar(budgets, spec.name, enabled=progress, pool=jobs > 1 and results_source is None)
        store.start_heartbeat(owner)
        try:
            claimed = _claiming(tasks, store, owner, outcome, retry_failed=retry_failed)
            with bar:
                for results in source(claimed, jobs, threads):
                    for result in results:
                        store.write_result(result)
                        outcome.statuses[result.status] += 1
                        bar.stored(result.config.run_id, result.status)
        finally:
            store.release_claims(owner)
    return outcome
