"""What one training run produces, independent of the engine that trained it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.spec import RunConfig

STATUSES = ("ok", "diverged", "failed")


@dataclass
class EpochMetrics:
    """One epoch of one run. ``epoch`` counts from 1; ``epoch_s`` excludes compilation."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    epoch_s: float


@dataclass
class TestScores:
    """Loss and accuracy on the test split: of the final weights and of the best-validation ones."""

    size: int
    final_loss: float | None
    final_acc: float | None
    best_loss: float | None  # weights of epoch ``best_val_epoch`` (validation picks, test reports)
    best_acc: float | None


@dataclass
class RunResult:
    """A finished run, ready for the store. ``status`` is ok, diverged (NaN/inf in any loss,
    training or validation) or failed."""

    config: RunConfig
    status: str
    epochs: list[EpochMetrics] = field(default_factory=list)
    error: str = ""
    compile_s: float = 0.0
    total_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    seeds_in_program: int = 1
    concurrent_workers: int = 1
    threads: int = 0
    attempts: int = 1
    host: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: The held-out test split, evaluated once with the final weights and once with the weights
    #: of the best-validation epoch (kept from then). None: not evaluated (no finite weights).
    test: TestScores | None = None
    data_fingerprint: str = ""  # Dataset.fingerprint of the data it trained on

    @property
    def best_val_epoch(self) -> int | None:
        return best_val_epoch(self.epochs)

    @property
    def epochs_to_target(self) -> int | None:
        """First epoch whose validation accuracy reaches the target; None when censored."""
        return epochs_to_target(self.epochs, self.config.target_accuracy)

    @property
    def time_to_target_s(self) -> float | None:
        """Training wall time (compilation excluded) up to and including the target epoch."""
        reached = self.epochs_to_target
        if reached is None:
            return None
        return float(sum(e.epoch_s for e in self.epochs[:reached]))

    @property
    def diverged_epoch(self) -> int | None:
        """The first epoch with a non-finite training or validation loss; None if none."""
        return next((e.epoch for e in self.epochs if not is_finite(e.train_loss, e.val_loss)), None)

    @property
    def train_s(self) -> float:
        return float(sum(e.epoch_s for e in self.epochs))


def epochs_to_target(epochs: list[EpochMetrics], target: float) -> int | None:
    """The censoring-aware definition used everywhere: None means "not within the budget"."""
    for e in epochs:
        if not math.isnan(e.val_acc) and e.val_acc >= target:
            return e.epoch
    return None


def best_val_epoch(epochs: list[EpochMetrics]) -> int | None:
    """The first epoch with the highest finite validation accuracy (None: no finite one).

    Engines keep a copy of the weights whenever validation accuracy strictly improves,
    which is the same epoch.
    """
    best, best_acc = None, -math.inf
    for e in epochs:
        if math.isfinite(e.val_acc) and e.val_acc > best_acc:
            best, best_acc = e.epoch, e.val_acc
    return best


def is_finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)
