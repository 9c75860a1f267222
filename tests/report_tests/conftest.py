"""Fixtures: synthetic stores with planted effects, written through the real Store code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/synthetic_store.py

from synthetic_store import build_store, make_spec  # noqa: E402

from synthetic_store import EFFECT, TIME_FACTOR  # noqa: E402


@pytest.fixture
def make_store(tmp_path):
    """Factory: ``make_store(name, spec=..., **build_store kwargs)`` -> store path."""
    counter = iter(range(1000))

    def make(spec=None, **kwargs):
        return build_store(tmp_path / f"store{next(counter)}.sqlite", spec, **kwargs)

    return make


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory):
    """3 placements x 2 activations x 10 seeds; one diverged and one failed run per cell."""
    spec = make_spec(placements=["none", "before", "after"],
                     factors={"activation": ["relu", "tanh"]}, seeds=10)
    return build_store(
        tmp_path_factory.mktemp("planted") / "planted.sqlite", spec,
        effect=EFFECT, time_factor=TIME_FACTOR,
        diverged=[("after", 3)], failed=[("before", 2)],
    )
