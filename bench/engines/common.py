"""Pieces every engine shares: timestamps and the result envelope."""

from __future__ import annotations

import datetime as dt
import math

from bench.host import host_info, library_versions
from bench.results import EpochMetrics, RunResult, TestScores, best_val_epoch
from bench.spec import RunConfig


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def diverged(m: EpochMetrics) -> bool:
    """A run diverged when any of its losses (training or validation) is not a finite number."""
    return not (math.isfinite(m.train_loss) and math.isfinite(m.val_loss))


def make_result(
    cfg: RunConfig,
    epochs: list[EpochMetrics],
    *,
    compile_s: float,
    total_s: float,
    started_at: str,
    seeds_in_program: int,
    threads: int,
    test: TestScores | None = None,
    data_fingerprint: str = "",
) -> RunResult:
    """Wrap an engine's per-epoch metrics; a NaN/inf loss (training or validation) marks the run diverged.

    Test scores of weights that are not finite (a diverged run's final weights, or no
    best-validation epoch) are dropped rather than stored as a meaningless accuracy.
    """
    status, error = "ok", ""
    bad = next((e for e in epochs if diverged(e)), None)
    if bad is not None:
        status = "diverged"
        error = (f"loss not finite in epoch {bad.epoch} "
                 f"(training loss {bad.train_loss}, validation loss {bad.val_loss})")
    if test is not None:
        final_ok = bad is None and test.final_loss is not None and math.isfinite(test.final_loss)
        best_ok = (best_val_epoch(epochs) is not None and test.best_loss is not None
                   and math.isfinite(test.best_loss))
        test = TestScores(test.size, *(test.final_loss, test.final_acc) if final_ok else (None, None),
                          *(test.best_loss, test.best_acc) if best_ok else (None, None))
    return RunResult(
        config=cfg,
        status=status,
        epochs=epochs,
        error=error,
        compile_s=compile_s,
        total_s=total_s,
        started_at=started_at,
        finished_at=now_iso(),
        seeds_in_program=seeds_in_program,
        threads=threads,
        host=host_info(),
        versions=library_versions(),
        test=test,
        data_fingerprint=data_fingerprint,
    )
