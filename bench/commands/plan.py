"""``bnbench plan SPEC``: what a grid will cost and how many seeds it needs, before running it.

Costs come from runs already in the store (a previous grid or a pilot): the median
``epoch_s`` of matching runs (same engine and same levels of the factors declared ``cost=True``
in bench.factors: dataset, hidden sizes, batch size, placement, normalizer, groups,
architecture, CNN widths),
scaled by training-set size, times the spec's epochs, plus the median compile time. Seeds
come from the pooled spread of seed-paired differences in final validation accuracy
(``reports.power``): the power of the report's own Wilcoxon test after Holm over the
report's whole family of p-values, simulated by resampling the pilot's paired differences.
Nothing is trained; the store is opened read-only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.commands.common import add_store_option
from bench.cells import DEFAULT_ARMS, config_settings
from bench.errors import UsageError
from bench.thresholds import parse_amount
from bench.factors import DATASETS, FACTORS
from bench.spec import ENGINES

#: Factors whose levels set the cost of an epoch (besides the engine and the training size).
COST_KEYS = tuple(name for name, f in FACTORS.items() if f.cost)
N_SIMS = 2000  # simulated studies per seed count (power's Monte Carlo SE <= 0.011)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="estimate a grid's runs, time and seeds needed per cell, from the store's measurements",
        description="Count a spec's runs and cells; estimate its wall time from measured epoch "
        "costs of matching runs in the store; and say how many seeds per cell the report's own test "
        "(two-sided Wilcoxon signed-rank, Holm over all the report's p-values) needs to detect "
        "--effect on final validation accuracy, with the power of the spec's seed count: "
        "simulated from the store's paired differences between placements (or normal ones with "
        "--sd). Warns when the seed count can never reach significance. Run a small pilot of the "
        "spec first when the store has no matching runs.",
    )
    p.add_argument("spec", help="grid spec TOML file")
    add_store_option(p)
    p.add_argument("--effect", default="0.5pp", metavar="E",
                   help="smallest difference in final val accuracy worth detecting: 0.5pp, 0.5%% "
                   "or 0.005 (default: %(default)s)")
    p.add_argument("--power", type=float, default=0.8, help="wanted power (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default: %(default)s)")
    p.add_argument("--sd", metavar="E", default=None,
                   help="sd of paired differences to assume instead of the store's (same units as --effect)")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="worker processes the run will use (default 1)")
    p.add_argument("--engine", choices=ENGINES, help="override the spec's engine.name")
    p.set_defaults(func=main)


@dataclass
class TimeEstimate:
    """Serial seconds of the measured part and how many runs had no measurement."""

    serial_s: float
    measured_runs: int
    unmeasured_runs: int
    n_tasks: int


def _train_size(dataset: str, validation_size: int, train_limit: int) -> int:
    n = DATASETS[dataset].train_size - validation_size
    return min(n, train_limit) if train_limit else n


def estimate_time(spec, runs_df, epochs_df, todo) -> TimeEstimate:
    """Serial time of ``todo`` runs from the median epoch cost of matching stored runs."""
    from bench.runner import plan_tasks

    per_run_epoch = epochs_df.groupby("run_id")["epoch_s"].median()
    measured = runs_df.assign(epoch_s=runs_df["run_id"].map(per_run_epoch))
    measured = measured[measured["epoch_s"].notna() & (measured["status"] != "failed")]
    serial, hit, miss = 0.0, 0, 0
    cache: dict[tuple, tuple[float, float] | None] = {}
    for cfg in todo:
        values = cfg.factor_values()
        key = (*(values[k] for k in COST_KEYS), cfg.engine.name)
        if key not in cache:
            match = measured["engine"] == cfg.engine.name
            for k in COST_KEYS:
                match &= measured[k] == values[k]
            m = measured[match]
            if m.empty:
                cache[key] = None
            else:
                sizes = [_train_size(d, v, t) for d, v, t in
                         zip(m["dataset"], m["validation_size"], m["train_limit"])]
                per_example = (m["epoch_s"] / sizes).median()
                compile_s = float(m["compile_s"].median()) if m["compile_s"].notna().any() else 0.0
                cache[key] = (float(per_example), compile_s)
        got = cache[key]
        if got is None:
            miss += 1
            continue
        per_example, compile_s = got
        n = _train_size(cfg.dataset, cfg.validation_size, cfg.train_limit)
        serial += per_example * n * cfg.epochs + compile_s
        hit += 1
    return TimeEstimate(serial, hit, miss, len(plan_tasks(todo, set())))


def _fmt_s(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _pp(x: float) -> str:
    return f"{100 * x:.2f}pp"


def plan_lines(args: argparse.Namespace) -> list[str]:
    """The report, line by line (separate from printing for tests)."""
    import pandas as pd

    from bench.spec import load_spec
    from bench.store import open_readonly, read_epochs, read_runs

    if args.jobs < 1:
        raise UsageError(f"--jobs: {args.jobs} is not a count >= 1")
    for name, v in (("--power", args.power), ("--alpha", args.alpha)):
        if not 0 < v < 1:
            raise UsageError(f"{name}: {v} is not in (0, 1)")
    effect = parse_amount("--effect", args.effect, points=True, positive=True)
    sd_override = parse_amount("--sd", args.sd, points=True, positive=True) if args.sd else None

    spec = load_spec(args.spec)
    if args.engine:
        spec = spec.with_engine(name=args.engine)
    runs = spec.expand()
    cells = {r.program_key for r in runs}
    arms = spec.arms or DEFAULT_ARMS
    comparison_cells: dict[tuple[str, ...], set[tuple[str, ...]]] = {}  # cell -> its arms
    for r in runs:
        s = config_settings(r)
        cell = tuple(v for k, v in s.items() if k not in arms.factors)
        comparison_cells.setdefault(cell, set()).add(tuple(s[n] for n in arms.factors))
    n_arms = len(set().union(*comparison_cells.values()))
    ref = arms.reference_key()
    # the report's accuracy family: one test per cell and non-reference arm beside the reference
    family = sum(len(a) - 1 for a in comparison_cells.values() if ref in a)
    word = "placements" if set(arms.factors) - {"placement"} <= _constant(spec) else "arms"

    if Path(args.store).exists():
        conn = open_readonly(args.store)
        try:
            runs_df, epochs_df = read_runs(conn), read_epochs(conn)
        finally:
            conn.close()
    else:
        runs_df = pd.DataFrame(columns=["run_id", "status"])
        epochs_df = pd.DataFrame(columns=["run_id", "epoch_s"])
    stored = set(runs_df["run_id"])
    todo = [r for r in runs if r.run_id not in stored]

    out = [
        f"{spec.name}: {len(runs)} runs = {len(cells)} cells x {len(spec.seeds)} seeds "
        f"({len(comparison_cells)} comparison cells x {n_arms} {word}); "
        f"{len(runs) - len(todo)} already in {args.store}, {len(todo)} to train",
        f"engine {_engine_names(runs)}, {spec.epochs} epochs per run, --jobs {args.jobs}",
    ]
    out += _time_lines(spec, runs_df, epochs_df, todo, args.jobs)
    out += _seed_lines(spec, runs_df, effect, sd_override, args, n_arms, family, arms)
    return out


def _constant(spec) -> set[str]:
    """Factors with one level in the spec."""
    return {k for k, levels in spec.factors.items() if len(levels) == 1}


def _time_lines(spec, runs_df, epochs_df, todo, jobs: int) -> list[str]:
    if not todo:
        return ["time: nothing to train"]
    if runs_df.empty or epochs_df.empty:
        return ["time: no measurements: run a pilot (the spec with fewer seeds and epochs) into this store"]
    est = estimate_time(spec, runs_df, epochs_df, todo)
    if est.measured_runs == 0:
        return ["time: no measurements: run a pilot (no stored run matches dataset, hidden, "
                "batch_size, placement and engine)"]
    workers = max(1, min(jobs, est.n_tasks))
    wall = est.serial_s / workers
    lines = [f"time: about {_fmt_s(wall)} wall ({_fmt_s(est.serial_s)} of training and compiling "
             f"in {est.n_tasks} tasks, / {workers} workers, assuming they scale)"]
    if est.unmeasured_runs:
        lines.append(f"  plus {est.unmeasured_runs} runs with no measurements: run a pilot of those cells")
    if jobs > 1:
        lines.append("  note: with --jobs > 1 each worker gets fewer threads; measured epochs "
                     "of sequential runs overstate the speed-up")
    return lines


def _seed_lines(spec, runs_df, effect: float, sd_override: float | None, args,
                n_arms: int, family: int, arms) -> list[str]:
    from reports import power

    if n_arms < 2:
        return ["seeds: one arm only; no paired comparison to power"]
    if family == 0:
        return [f"seeds: no cell holds the reference arm {arms.reference!r}; no paired comparison to power"]
    have = len(spec.seeds)
    need_min = power.min_seeds(args.alpha, family)
    lines = [f"seeds per cell to detect {_pp(effect)} in final val accuracy with the report's test "
             f"(two-sided Wilcoxon signed-rank, Holm over the report's {family} p-values at "
             f"alpha {args.alpha}; power {args.power}):"]
    if have < need_min:
        lines.append(f"  warning: with {have} seeds nothing can be significant: the smallest Wilcoxon "
                     f"p is {power.min_possible_p(have):.2g} and Holm needs p < {args.alpha}/{family}; "
                     f"at least {need_min} seeds")
    if sd_override is not None:
        residuals, sd, source = None, sd_override, f"normal paired differences, sd {_pp(sd_override)} from --sd"
    else:
        spread = _store_spread(spec, runs_df, arms)
        if spread is None:
            return lines + [f"  no paired measurements to estimate the spread: run a pilot "
                            f"(>= 3 seeds of '{arms.reference}' and another arm) or pass --sd"]
        residuals, sd = spread[0].residuals, spread[0].sd
        source = f"the pilot's paired differences resampled, sd {_pp(sd)} {spread[1]}"
    if sd == 0:
        return lines + [f"  {need_min} (no spread in the paired differences; the fewest seeds that can be significant)"]
    kw = {"residuals": residuals, "sd": sd, "n_sims": N_SIMS}
    n_need = power.n_for_report_test(effect, args.alpha, args.power, family, **kw)
    needed = f"{n_need} seeds" if n_need <= 200 else "more than 200 seeds"
    lines.append(f"  {needed} (simulated, {N_SIMS} studies per seed count, from {source})")
    if have >= 2:
        got = power.report_test_power(have, effect, args.alpha, family, **kw)
        lines.append(f"  this spec has {have} seeds: power {got:.2f}")
    lines.append(f"  for comparison, a paired t-test at alpha {args.alpha} with no Holm correction would "
                 f"need {power.n_paired_t(sd, effect, args.alpha, args.power)} seeds")
    return lines


def _engine_names(runs) -> str:
    """The engines that train ``runs`` (``auto`` picks one per architecture)."""
    return " and ".join(sorted({r.engine.name for r in runs}))


def _store_spread(spec, runs_df, arms):
    """(PairedSpread, where it came from): exact cells first, then same dataset/hidden/batch/engine."""
    import numpy as np

    from reports import power

    if runs_df.empty or "final_val_acc" not in runs_df:
        return None
    engines = {r.engine.name for r in spec.expand()}  # "auto" resolved per run
    ds = runs_df[runs_df["dataset"].isin(spec.factors["dataset"]) & runs_df["engine"].isin(engines)]
    keys = [k for k in spec.factors if k not in arms.factors]
    wanted = {(*(r.factor_values()[k] for k in keys), r.epochs) for r in spec.expand()}
    row_keys = zip(*(ds[k] for k in keys), ds["epochs_budget"])
    exact = ds[np.array([tuple(_norm(v) for v in t) in wanted for t in row_keys], dtype=bool)]
    near_keys = ("architecture", "hidden", "widths", "batch_size")  # as stored (unused ones at defaults)
    near_wanted = {tuple(r.factor_values()[k] for k in near_keys) for r in spec.expand()}
    near_rows = zip(*(ds[k] for k in near_keys))
    near = ds[np.array([tuple(_norm(v) for v in t) in near_wanted for t in near_rows], dtype=bool)]
    for frame, words in ((exact, "same cells and epochs"),
                         (near, "cells with the same dataset, architecture, hidden/widths and batch size")):
        s = power.paired_spread(frame, arms=arms)
        if s.usable:
            return s, f"(pooled over {s.n_pairs} pairs in {s.n_groups} arm comparisons, {words})"
    return None


def main(args: argparse.Namespace) -> int:
    for line in plan_lines(args):
        print(line)
    return 0


def _norm(v):
    """Store values back to spec types (SQLite gives numpy scalars)."""
    return v.item() if hasattr(v, "item") else v
