"""Run a grid: expand, skip what the store has, train the rest in parallel, store each run.

The driver process alone writes the store, one transaction per finished run, as results
stream back from the workers; a killed grid therefore loses only the runs in flight and
resumes where it stopped. Workers pin TensorFlow's thread pools so that
workers x threads <= cores and wall times stay meaningful.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from bench.results import RunResult
from bench.spec import GridSpec, RunConfig
from bench.store import Store, StoreError

Task = list[RunConfig]


@dataclass
class GridOutcome:
    """What one ``run_grid`` call did."""

    total: int
    already_stored: int
    statuses: Counter = field(default_factory=Counter)

    @property
    def trained(self) -> int:
        return sum(self.statuses.values())

    def summary(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "none"
        return (
            f"{self.total} runs in grid: {self.already_stored} already in the store, "
            f"{self.trained} trained now ({parts})"
        )


def plan_tasks(runs: Iterable[RunConfig], stored: set[str]) -> list[Task]:
    """Group the runs not yet stored into tasks: seeds of one cell, at most seeds_per_program.

    The Keras engine trains one seed at a time, so its tasks hold one run each.
    """
    todo = [r for r in runs if r.run_id not in stored]
    tasks: list[Task] = []
    for _, cell_runs in groupby(sorted(todo, key=lambda r: (r.cell_id, r.seed)), key=lambda r: r.cell_id):
        cell = list(cell_runs)
        width = cell[0].engine.seeds_per_program if cell[0].engine.name == "stacked" else 1
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


def train_task(task: Task, threads: int, concurrent_workers: int) -> list[RunResult]:
    """Train one task in this process. Any exception becomes ``failed`` results, never a crash."""
    try:
        from bench.datasets import load_dataset
        from bench.engines import get_engine
        from bench.tf_setup import configure_tensorflow

        first = task[0]
        threads = configure_tensorflow(threads, first.engine.deterministic)
        data = load_dataset(first.dataset, first.validation_size, first.train_limit, first.data_path)
        results = get_engine(first.engine.name)(task, data)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback's last line
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        results = failed_results(task, last)
    for r in results:
        r.concurrent_workers = concurrent_workers
        r.threads = r.threads or threads
    return results


def _results_local(tasks: list[Task], jobs: int, threads: int) -> Iterator[list[RunResult]]:
    if jobs == 1:
        for task in tasks:
            yield train_task(task, threads, 1)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(train_task)(t, threads, jobs) for t in tasks)


def run_grid(
    spec: GridSpec,
    store_path: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    results_source: Callable[[list[Task], int, int], Iterator[list[RunResult]]] | None = None,
) -> GridOutcome:
    """Train every run of ``spec`` that ``store_path`` does not hold yet; return the tally."""
    from bench.tf_setup import threads_per_worker

    runs = spec.expand()
    path = Path(store_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create folder {path.parent} ({exc.strerror})") from None
    with Store(path) as store:
        store.register_grid(spec, runs)
        stored = store.stored_run_ids()
        tasks = plan_tasks(runs, stored)
        outcome = GridOutcome(total=len(runs), already_stored=len(runs) - sum(map(len, tasks)))
        if not tasks:
            return outcome
        jobs = max(1, min(jobs, len(tasks)))
        threads = threads_per_worker(jobs, spec.engine.threads)
        source = results_source or _results_local
        bar = _progress_bar(outcome, spec.name, enabled=progress)
        try:
            for results in source(tasks, jobs, threads):
                for result in results:
                    store.write_result(result)
                    outcome.statuses[result.status] += 1
                    bar.update(1)
                bar.set_postfix(dict(outcome.statuses), refresh=False)
        finally:
            bar.close()
    return outcome


def _progress_bar(outcome: GridOutcome, name: str, *, enabled: bool):
    from tqdm import tqdm

    todo = outcome.total - outcome.already_stored
    return tqdm(total=todo, desc=f"{name}", unit="run", disable=not enabled, dynamic_ncols=True)
