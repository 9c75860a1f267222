"""Helpers for engine tests: tiny digits configs and metric comparisons."""

from __future__ import annotations

from dataclasses import replace

from bench.spec import RunConfig, parse_spec


def make_configs(seeds: int | list[int] = 1, *, epochs: int = 2, engine: str = "stacked",
                 engine_opts: dict | None = None, **factors) -> list[RunConfig]:
    """The seeds of one small digits cell (hidden 32-16, lr 0.05 unless overridden)."""
    factors = {"dataset": "digits", "hidden": [32, 16], "learning_rate": 0.05, **factors}
    spec = parse_spec({
        "grid": {"name": "engine-test", "seeds": seeds, "epochs": epochs, "validation_size": 300},
        "factors": factors,
        "engine": {"name": engine, "steps_per_execution": 16, **(engine_opts or {})},
    })
    return spec.expand()


def with_engine(cfgs: list[RunConfig], **changes) -> list[RunConfig]:
    return [replace(c, engine=replace(c.engine, **changes)) for c in cfgs]


def metric_rows(result) -> list[tuple[float, float, float, float]]:
    return [(e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in result.epochs]


def max_abs_diff(a, b) -> float:
    rows_a, rows_b = metric_rows(a), metric_rows(b)
    assert len(rows_a) == len(rows_b)
    return max(abs(x - y) for ra, rb in zip(rows_a, rows_b) for x, y in zip(ra, rb))


def test_scores(result) -> tuple[float, float, float, float]:
    t = result.test
    return (t.final_loss, t.final_acc, t.best_loss, t.best_acc)


def max_abs_test_diff(a, b) -> float:
    assert a.best_val_epoch == b.best_val_epoch and a.test.size == b.test.size
    return max(abs(x - y) for x, y in zip(test_scores(a), test_scores(b)))
