"""Synthetic stores whose BN effect depends on another factor's level (planted interactions).

Built on ``synthetic_store.synth_result``: the effect of each placement is looked up per run
from ``effects[level of factor][placement]``, so the true paired effect at each level is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.store import Store
from reports.load import StoreData, load
from synthetic_store import make_spec, synth_result

TIME = {"none": 1.0, "before": 1.25, "after": 1.3}


def build_interaction_store(
    path: str | Path, *, factor: str = "learning_rate", levels: list[Any] | None = None,
    effects: dict[Any, dict[str, float]], placements: tuple[str, ...] = ("none", "before", "after"),
    seeds: int = 12, extra_factors: dict[str, Any] | None = None, statuses: dict[tuple, str] | None = None,
    seed_sd: float = 0.004, run_sd: float = 0.002, target: float = 0.9,
) -> StoreData:
    """Write the grid and load it back as the report would.

    ``statuses``: (placement, level, seed) -> "diverged"/"failed" for chosen runs.
    """
    levels = levels if levels is not None else list(effects)
    spec = make_spec(name="interact", placements=placements, seeds=seeds, target=target,
                     factors={factor: levels, **(extra_factors or {})})
    runs = spec.expand()
    statuses = statuses or {}
    with Store(path) as store:
        store.register_grid(spec, runs)
        for cfg in runs:
            level = getattr(cfg, factor)
            store.write_result(synth_result(
                cfg, effect=effects[level], time_factor=TIME, seed_sd=seed_sd, run_sd=run_sd,
                status=statuses.get((cfg.placement, level, cfg.seed), "ok"),
            ))
    return load(path)
