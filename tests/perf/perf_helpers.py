"""Helpers for the perf suite: the notebook cell on a slice of MNIST."""

from __future__ import annotations

from dataclasses import replace

from bench.spec import RunConfig, parse_spec

TRAIN_LIMIT = 11000  # a fifth of the notebook's 55,000: one epoch is about a second


def notebook_configs(placement: str, seeds: int, epochs: int, **engine) -> list[RunConfig]:
    """The notebook cell (784-300-100-10, SGD 1e-3, batch 32) with these engine settings."""
    spec = parse_spec({
        "grid": {"name": "perf", "seeds": seeds, "epochs": epochs, "train_limit": TRAIN_LIMIT},
        "factors": {"placement": placement},
    })
    return [replace(c, engine=replace(c.engine, **engine)) for c in spec.expand()]
