"""The errors that mean "bad input": the CLI prints them as one line and exits 2."""

from __future__ import annotations

from bench.datasets import DatasetError
from bench.spec import SpecError
from bench.store import StoreError


class UsageError(ValueError):
    """A bad command-line value (a path that does not exist, a malformed threshold...)."""


class SchedulerError(RuntimeError):
    """A Dask scheduler that cannot be reached, or has no workers."""


USER_ERRORS: tuple[type[Exception], ...] = (SpecError, StoreError, DatasetError, UsageError, SchedulerError)
