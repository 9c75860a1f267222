"""Planted-truth sides shaped like the gate grid (ablations/gate.toml), built in milliseconds.

The noise model is fitted by eye to the committed gate baseline
(ablations/baselines/gate.sqlite: 2 placements x 8 seeds, 297 validation examples, 5
epochs, target 0.9): final accuracy medians 92.6% / 94.8% with a seed effect shared by
the placements of a seed (SD 0.8 pp) plus run noise (SD 0.8 pp), rounded to counts;
epochs to target 3/4/5 (none) and 2/3 (after); per-run epoch times with 2% noise.
Planted changes: an accuracy drop (fraction), extra epochs to target (a fractional
shift adds one more epoch to that share of the runs; past the budget a run is
censored) and a slow-down ratio of every epoch.

``python tests/gate_sim.py`` prints the size/power table quoted in docs/ci.md.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.spec import FACTOR_DEFAULTS
from reports.load import StoreData, prepare

PLACEMENTS = ("none", "after")
SEEDS = 8
N_VAL = 297
BUDGET = 5
ACC = {"none": 0.926, "after": 0.948}
ACC_SEED_SD = 0.008
ACC_RUN_SD = 0.008
EPOCHS = {"none": ([3, 4, 5], [0.25, 0.5, 0.25]), "after": ([2, 3], [0.375, 0.625])}
EPOCH_S = {"none": 1.37e-3, "after": 1.40e-3}
TIME_SD = 0.02
#: The gate's limits (ci/quality_gate.sh): what 8 seeds can enforce, see docs/ci.md.
GATE_ACC_DROP = 0.02
GATE_EPOCHS = 2.0
SLOWDOWN = 0.10


def side(
    rng: np.random.Generator, *, acc_drop: float = 0.0, epoch_shift: float = 0.0,
    slowdown: float = 1.0, seeds: int = SEEDS, seeds_in_program: int = 1,
    fingerprint: str = "simulated",
) -> StoreData:
    """One side (baseline or current) of a gate-like comparison with planted changes."""
    seed_effect = rng.normal(0, ACC_SEED_SD, seeds)
    rows, epochs = [], []
    for placement in PLACEMENTS:
        acc = ACC[placement] + seed_effect + rng.normal(0, ACC_RUN_SD, seeds) - acc_drop
        counts = np.clip(np.rint(acc * N_VAL), 0, N_VAL)
        values, probs = EPOCHS[placement]
        ett = rng.choice(values, size=seeds, p=probs).astype(float)
        whole = math.floor(epoch_shift)
        ett = ett + whole + (rng.random(seeds) < epoch_shift - whole)
        reached = ett <= BUDGET
        per_run = EPOCH_S[placement] * slowdown * np.exp(rng.normal(0, TIME_SD, seeds))
        if seeds_in_program > 1:  # one program, one measurement, shared by its seeds
            per_run = np.repeat(per_run[::seeds_in_program], seeds_in_program)[:seeds]
        for s in range(seeds):
            run_id = f"{placement}-{s}-{rng.integers(1 << 40):x}"
            rows.append({
                **FACTOR_DEFAULTS, "dataset": "digits", "placement": placement, "seed": s,
                "run_id": run_id, "grid": "gate", "status": "ok", "epochs_budget": BUDGET,
                "target_accuracy": 0.9, "validation_size": N_VAL, "train_limit": 0,
                "final_val_acc": counts[s] / N_VAL,
                "epochs_to_target": ett[s] if reached[s] else math.nan,
                "time_to_target_s": ett[s] * per_run[s] if reached[s] else math.nan,
                "train_s": BUDGET * per_run[s], "total_s": BUDGET * per_run[s] + 1.0,
                "seeds_in_program": seeds_in_program, "concurrent_workers": 1,
                "engine": "keras" if seeds_in_program == 1 else "stacked",
                "machine_fingerprint": fingerprint,
            })
            epochs.append({"run_id": run_id, "epoch": 1, "epoch_s": per_run[s]})
    return prepare(Path("<simulated>"), None, pd.DataFrame(rows), pd.DataFrame(epochs), pd.DataFrame())


def failure_rate(trials: int, seed: int, thresholds, **planted) -> float:
    """Share of seeded trials in which the gate fails (baseline vs current with ``planted``)."""
    from reports.compare import compare_data

    fails = 0
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        c = compare_data(side(rng), side(rng, **planted), thresholds, n_resamples=200, seed=t)
        fails += not c.passed
    return fails / trials


def gate_thresholds(**kw):
    from reports.compare import Thresholds

    return Thresholds(max_accuracy_drop=GATE_ACC_DROP, max_epochs_increase=GATE_EPOCHS,
                      max_slowdown=SLOWDOWN, **kw)


if __name__ == "__main__":  # the table of docs/ci.md (a few minutes)
    import sys

    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    t = gate_thresholds()
    cases = {
        "A/A (no change)": {},
        "accuracy -0.9x limit": {"acc_drop": 0.9 * GATE_ACC_DROP},
        "accuracy -2x limit": {"acc_drop": 2 * GATE_ACC_DROP},
        "epochs +0.9x limit": {"epoch_shift": 0.9 * GATE_EPOCHS},
        "epochs +2x limit": {"epoch_shift": 2 * GATE_EPOCHS},
        "time/epoch +0.9x limit": {"slowdown": 1 + 0.9 * SLOWDOWN},
        "time/epoch +5%": {"slowdown": 1.05},
        "time/epoch +2x limit": {"slowdown": 1 + 2 * SLOWDOWN},
    }
    for name, planted in cases.items():
        print(f"{name:36s} fails {failure_rate(trials, 99, t, **planted):6.1%} of {trials}", flush=True)
    from reports.compare import Thresholds

    for name, planted in {"A/A, compare defaults": {}, "time/epoch +5%, compare defaults": {"slowdown": 1.05},
                          "accuracy -2x 0.5 pp, compare defaults": {"acc_drop": 0.01}}.items():
        rate = failure_rate(trials, 98, Thresholds(), **planted)
        print(f"{name:36s} fails {rate:6.1%} of {trials}", flush=True)
