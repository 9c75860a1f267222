"""Perf suite setup: pinned threads, a slice of MNIST, shared helpers.

Run with ``pytest tests/perf --benchmark-only`` (the project's default ``--benchmark-skip``
skips every benchmark). Keras with XLA needs op determinism off, so this suite turns it off
for the whole process (the stacked engine does not depend on it).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from bench.datasets import Dataset, load_dataset  # noqa: E402
from bench.spec import RunConfig, parse_spec  # noqa: E402
from bench.tf_setup import configure_tensorflow  # noqa: E402

THREADS = 2
TRAIN_LIMIT = 11000  # a fifth of the notebook's 55,000: one epoch is about a second


@pytest.fixture(scope="session", autouse=True)
def _tensorflow() -> None:
    configure_tensorflow(THREADS, deterministic=False)


@pytest.fixture(scope="session")
def mnist_slice() -> Dataset:
    return load_dataset("mnist", 5000, train_limit=TRAIN_LIMIT)


def notebook_configs(placement: str, seeds: int, epochs: int, **engine) -> list[RunConfig]:
    """The notebook cell (784-300-100-10, SGD 1e-3, batch 32) with these engine settings."""
    spec = parse_spec({
        "grid": {"name": "perf", "seeds": seeds, "epochs": epochs, "train_limit": TRAIN_LIMIT},
        "factors": {"placement": placement},
    })
    return [replace(c, engine=replace(c.engine, **engine)) for c in spec.expand()]
