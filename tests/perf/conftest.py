"""Perf suite setup: pinned threads, a slice of MNIST, shared helpers.

Run with ``pytest tests/perf --benchmark-only`` (the project's default ``--benchmark-skip``
skips every benchmark). Keras with XLA needs op determinism off, so this suite turns it off
for the whole process (the stacked engine does not depend on it).
"""

from __future__ import annotations

import pytest

from bench.datasets import Dataset, load_dataset
from bench.tf_setup import configure_tensorflow

from .perf_helpers import TRAIN_LIMIT

THREADS = 2


@pytest.fixture(autouse=True)
def _tensorflow(request: pytest.FixtureRequest) -> None:
    """Pinned threads before a benchmark's first op; the gate's unit tests never load TensorFlow."""
    if "benchmark" in request.fixturenames:
        configure_tensorflow(THREADS, deterministic=False)  # idempotent: the first call wins


@pytest.fixture(scope="session")
def mnist_slice() -> Dataset:
    return load_dataset("mnist", 5000, train_limit=TRAIN_LIMIT)
