"""Synthetic results stores with planted effects, for report tests and benchmarks (no training).

Each run's validation accuracy follows ``final - gap * exp(-rate * (epoch - 1))`` where
``final = base + effect[placement] + seed_noise + run_noise``: the seed noise is shared by
every placement of a seed (as paired initialization does), so paired tests see the effect
through the seed-to-seed spread. Epoch times are ``3 s * time_factor[placement]`` with 2%
noise. The true paired median difference of final accuracy is ``effect[b] - effect[a]``.
An arm's effect may be keyed ``"<normalizer> <placement>"`` ("layer after"); the placement
alone is the fallback (so ``"none"`` and the placement-only dictionaries work as before).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench.results import EpochMetrics, RunResult, TestScores
from bench.spec import GridSpec, RunConfig, parse_spec
from bench.store import Store, result_row

HOST = {"hostname": "synth", "cpu": "Synthetic CPU @ 2.0GHz", "cores": 2, "machine": "x86_64",
        "system": "Linux", "python": "3.12.0"}
VERSIONS = {"tensorflow": "2.21.0", "keras": "3.12.0", "numpy": "2.3.0", "bnbench": "0.1.0"}


#: The planted effects of the report tests' default store.
EFFECT = {"none": 0.0, "before": 0.008, "after": 0.013}
TIME_FACTOR = {"none": 1.0, "before": 1.25, "after": 1.3}

def make_spec(
    name: str = "synthetic",
    placements: Iterable[str] = ("none", "after"),
    factors: dict[str, Any] | None = None,
    seeds: int = 10,
    epochs: int = 10,
    target: float = 0.9,
) -> GridSpec:
    return parse_spec({
        "grid": {"name": name, "seeds": seeds, "epochs": epochs, "target_accuracy": target},
        "factors": {"placement": list(placements), **(factors or {})},
    })


def synth_result(
    cfg: RunConfig,
    *,
    effect: dict[str, float],
    time_factor: dict[str, float],
    base: float = 0.92,
    seed_sd: float = 0.004,
    run_sd: float = 0.002,
    status: str = "ok",
    concurrent_workers: int = 1,
    seeds_in_program: int = 1,
) -> RunResult:
    """One run's epochs drawn from the planted model; deterministic in (cell, seed)."""
    seed_noise = np.random.default_rng([cfg.seed, 7]).normal(0, seed_sd)
    rng = np.random.default_rng([cfg.seed, int(cfg.run_id[:8], 16)])
    # getattr: the perf gate builds this store with the reference commit's bench, whose
    # RunConfig may predate the normalizer factor (all batch normalization then).
    arm = f"{getattr(cfg, 'normalizer', 'batch')} {cfg.placement}"
    final = base + effect.get(arm, effect.get(cfg.placement, 0.0)) + seed_noise + rng.normal(0, run_sd)
    rate = 0.5  # same shape for every placement: the final-epoch difference is exactly the effect
    epoch_time = 3.0 * time_factor.get(arm, time_factor.get(cfg.placement, 1.0))
    epochs = []
    n_epochs = cfg.epochs if status != "diverged" else min(3, cfg.epochs)
    for e in range(1, n_epochs + 1):
        acc = float(min(final - 0.12 * math.exp(-rate * (e - 1)), 1.0))
        loss = float(-math.log(max(acc, 1e-6)))
        if status == "diverged" and e == n_epochs:
            acc, loss = math.nan, math.nan
        epochs.append(EpochMetrics(e, loss, acc, loss, acc, epoch_time * (1 + rng.normal(0, 0.02))))
    if status == "failed":
        epochs = []
    # Test split (1000 examples): the best-validation weights score the planted accuracy
    # plus test-sample noise; a diverged run's final weights get no score.
    best = max((e.val_acc for e in epochs if e.val_acc == e.val_acc), default=None)
    test = None
    if best is not None:
        t = float(min(best + rng.normal(0, 0.003), 1.0))
        final = None if status == "diverged" else t
        test = TestScores(1000, final and -math.log(final), final, -math.log(t), t)
    error = {"ok": "", "diverged": f"loss became NaN at epoch {n_epochs}",
             "failed": "RuntimeError: synthetic failure (out of memory)"}[status]
    return RunResult(
        config=cfg, status=status, epochs=epochs, error=error, compile_s=1.5,
        total_s=1.5 + sum(e.epoch_s for e in epochs), started_at="2026-11-25T10:00:00Z",
        finished_at="2026-11-25T10:01:00Z", seeds_in_program=seeds_in_program,
        concurrent_workers=concurrent_workers, threads=1, host=HOST, versions=VERSIONS,
        test=test, data_fingerprint="synthetic0000000",
    )


def build_store(
    path: str | Path,
    spec: GridSpec | None = None,
    *,
    effect: dict[str, float] | None = None,
    time_factor: dict[str, float] | None = None,
    diverged: Iterable[tuple[str, int]] = (),
    failed: Iterable[tuple[str, int]] = (),
    base: float = 0.92,
    concurrent_workers: int = 1,
    seeds_in_program: int = 1,
    through_store: bool = True,
    replace: bool = False,
) -> Path:
    """Write a synthetic grid into ``path``.

    ``through_store`` writes each run with ``Store.write_result`` (the real code path);
    False inserts the same rows in one transaction, for stores of thousands of runs.
    ``replace`` re-points an existing grid of the same name (``bnbench run --replace``).
    """
    spec = spec or make_spec()
    effect = {"none": 0.0, "after": 0.013, "before": 0.008} if effect is None else effect
    time_factor = {"none": 1.0, "after": 1.3, "before": 1.25} if time_factor is None else time_factor
    bad = {**{k: "diverged" for k in diverged}, **{k: "failed" for k in failed}}
    runs = spec.expand()
    results = [
        synth_result(
            cfg, effect=effect, time_factor=time_factor, base=base,
            status=bad.get((cfg.placement, cfg.seed), "ok"),
            concurrent_workers=concurrent_workers, seeds_in_program=seeds_in_program,
        )
        for cfg in runs
    ]
    with Store(path) as store:
        store.register_grid(spec, runs, replace=replace)
        if through_store:
            for r in results:
                store.write_result(r)
        else:
            rows = [result_row(r) for r in results]
            cols = ", ".join(rows[0])
            marks = ", ".join("?" for _ in rows[0])
            with store.conn:
                store.conn.executemany(
                    f"INSERT OR IGNORE INTO runs ({cols}) VALUES ({marks})",
                    [tuple(row.values()) for row in rows],
                )
                store.conn.executemany(
                    "INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.config.run_id, e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc,
                      e.epoch_s) for r in results for e in r.epochs],
                )
    return Path(path)
