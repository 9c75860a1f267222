"""Helpers for engine tests: tiny configs on the offline digits data (seconds per run)."""

from __future__ import annotations

import pytest

from bench.datasets import Dataset, load_dataset
from bench.tf_setup import configure_tensorflow


@pytest.fixture(scope="session", autouse=True)
def _tensorflow() -> None:
    configure_tensorflow(2, deterministic=True)


@pytest.fixture(scope="session")
def digits() -> Dataset:
    # 1200 training examples (1500 minus 300 for validation; 297 more are the test split):
    # 37 full batches of 32 and a partial batch of 16.
    return load_dataset("digits", 300)
