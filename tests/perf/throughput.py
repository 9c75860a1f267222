"""FLOP counts of the MLP and a timed stacked-engine cell, shared by the device check and the
CPU-limit measurement (so both report GFLOP/s by one definition)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.spec import RunConfig, parse_spec


def train_flops_per_sample(sizes: Sequence[int], placement: str) -> int:
    """FLOPs of one SGD step per sample (multiply-add = 2), as tabled in docs/performance.md.

    Forward GEMMs, weight gradients (same shapes), input gradients of every layer but the
    first (its input is data), and for ``after+input`` the first layer's input gradient too
    (the input BN's gamma/beta need it). BN's elementwise work (about 2%) is not counted.
    """
    gemms = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    flops = 2 * sum(gemms) + 2 * sum(gemms) + 2 * sum(gemms[1:])
    return flops + (2 * gemms[0] if placement == "after+input" else 0)


def run_flops(sizes: Sequence[int], placement: str, n_train: int, n_val: int, epochs: int) -> float:
    """FLOPs of one run: ``epochs`` of training plus a validation forward pass per epoch."""
    forward = 2 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    return float(epochs * (n_train * train_flops_per_sample(sizes, placement) + n_val * forward))


def notebook_configs(placement: str, seeds: int | list[int], epochs: int, *, dataset: str = "mnist",
                     train_limit: int = 0, validation_size: int = 5000, **engine) -> list[RunConfig]:
    """The notebook cell (784-300-100-10 on MNIST, SGD 1e-3, batch 32) with these engine settings."""
    spec = parse_spec({
        "grid": {"name": "device-check", "seeds": seeds, "epochs": epochs, "train_limit": train_limit,
                 "validation_size": validation_size},
        "factors": {"placement": placement, "dataset": dataset},
    })
    return [replace(c, engine=replace(c.engine, **engine)) for c in spec.expand()]


@dataclass
class CellTiming:
    """One cell trained by one engine: speed and the per-seed results."""

    label: str
    placement: str
    seeds: int
    wall_s: float  # the whole train_cell call: building, compiling, training, validating
    train_s: float  # sum of the epochs' wall times over the programs (compilation excluded)
    compile_s: float  # sum over the programs
    seeds_in_program: int
    gflop: float  # of all runs
    final_acc: list[float]
    first_epoch: list[tuple[float, float, float, float]]  # per seed: losses and accuracies

    @property
    def runs_per_hour(self) -> float:
        return 3600 * self.seeds / self.wall_s

    @property
    def gflops(self) -> float:
        """GFLOP per second of training time."""
        return self.gflop / self.train_s if self.train_s else float("nan")

    @property
    def mean_acc(self) -> float:
        return statistics.fmean(self.final_acc)


def train_timed(label: str, cfgs: list[RunConfig], data, train_cell) -> tuple[list, float]:
    """Train ``cfgs`` (one cell) with ``train_cell``: the results and the call's wall seconds.
    Raises if any run did not end ok (a timing of failed runs means nothing)."""
    t0 = time.perf_counter()
    results = train_cell(cfgs, data)
    wall = time.perf_counter() - t0
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise RuntimeError(f"{label}: {len(bad)} run(s) {bad[0].status}: {bad[0].error}")
    return results, wall


def cell_gflop(cfgs: list[RunConfig], data) -> float:
    """GFLOP of training (and validating) every run of the cell ``cfgs``."""
    cfg = cfgs[0]
    sizes = (data.n_features, *cfg.hidden, data.n_classes)
    return run_flops(sizes, cfg.placement, len(data.x_train), len(data.x_val), cfg.epochs) * len(cfgs) / 1e9


def time_cell(label: str, cfgs: list[RunConfig], data, train_cell) -> CellTiming:
    """Train ``cfgs`` (one cell) with ``train_cell`` and summarize; ``data`` is a bench Dataset."""
    results, wall = train_timed(label, cfgs, data, train_cell)
    # epoch_s and compile_s are per run: the program's time divided by its seeds.
    train_s = sum(e.epoch_s for r in results for e in r.epochs)
    compile_s = sum(r.compile_s for r in results)
    return CellTiming(
        label, cfgs[0].placement, len(results), wall, train_s, compile_s,
        max(r.seeds_in_program for r in results), cell_gflop(cfgs, data),
        [r.epochs[-1].val_acc for r in results],
        [(e.train_loss, e.train_acc, e.val_loss, e.val_acc) for r in results for e in r.epochs[:1]],
    )
