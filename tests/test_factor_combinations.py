"""Every level of every factor trains with both engines (one epoch, 200 digits), or is
rejected up front by the spec (tests/test_spec_combinations.py).

One factor at a time around a small default, plus the full activation x placement cross
(where BN's interplay with the nonlinearity lives). Each case must finish with status ok,
one epoch of finite metrics, and both engines must agree on the result (they claim the same
mathematics from the same initial weights and data order). Slow: ~3 min on 2 shared cores.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import pytest

from chaos_helpers import CHAOTIC_SEEDS, assert_same_in_distribution

from bench.spec import ACTIVATIONS, INITIALIZERS, NORMALIZERS, OPTIMIZERS, PLACEMENTS, RunConfig, parse_spec

ENGINES = ("keras", "stacked")
BASE = {"dataset": "digits", "hidden": [16, 16], "learning_rate": 0.01, "batch_size": 32}

#: (normalizer, placement) pairs besides batch normalization's.
NORMALIZED = [(n, p) for n in NORMALIZERS if n != "batch" for p in PLACEMENTS if p != "none"]

CASES: list[tuple[str, dict[str, Any]]] = [
    *[(f"{a}-{p}", {"activation": a, "placement": p}) for a in ACTIVATIONS for p in PLACEMENTS],
    *[(f"opt-{o}", {"optimizer": o, "placement": "after+input"}) for o in OPTIMIZERS],
    *[(f"init-{i}", {"initializer": i, "placement": "before"}) for i in INITIALIZERS],
    *[(f"momentum-{m}", {"bn_momentum": m, "placement": "before"}) for m in (0.01, 0.5, 0.9, 0.99, 0.999)],
    *[(f"epsilon-{e}", {"bn_epsilon": e, "placement": "after"}) for e in (1e-8, 1e-5, 1e-3, 0.1, 10.0)],
    *[(f"depth-{d}", {"hidden": [16] * d, "placement": p}) for d in (1, 2, 3, 4) for p in ("none", "before")],
    ("batch-2-bn", {"batch_size": 2, "placement": "before"}),  # smallest batch BN accepts
    ("batch-all-bn", {"batch_size": 200, "placement": "after"}),  # one full batch per epoch
    ("batch-remainder-1", {"batch_size": 199, "placement": "before"}),  # last batch: 1 example
    ("batch-1-none", {"batch_size": 1, "placement": "none"}),
    # Every normalizer at every position (batch: the activation x placement cross above).
    *[(f"{n}-{p}", {"normalizer": n, "placement": p}) for n, p in NORMALIZED],
    *[(f"groups-{g}", {"normalizer": "group", "norm_groups": g, "placement": "after+input"})
      for g in (1, 2)],  # 1 group = layer normalization
    ("groups-8", {"normalizer": "group", "norm_groups": 8, "placement": "after+input", "hidden": [32, 32]}),
    # Groups of 2 values: each output is about +-gamma (a pair minus its mean over its spread).
    ("groups-of-2", {"normalizer": "group", "norm_groups": 8, "placement": "after"}),
    *[(f"batch-1-{n}", {"normalizer": n, "batch_size": 1, "placement": "before"})
      for n, _ in NORMALIZED[::3]],  # per-example normalizers take batch 1 (batch: refused)
    ("rms-epsilon-0.1", {"normalizer": "rms", "bn_epsilon": 0.1, "placement": "before"}),
    # The CNN (bench/cnn.py; every placement x normalizer: tests/engines/test_cnn.py): three
    # stages (8x8 -> 1x1), and a batch of one with a per-example normalizer.
    ("cnn-none", {"architecture": "cnn", "widths": [4, 8], "placement": "none"}),
    ("cnn-3-stages-layer", {"architecture": "cnn", "widths": [4, 4, 8], "placement": "after",
                            "normalizer": "layer"}),
    ("cnn-batch-1-group", {"architecture": "cnn", "widths": [4, 8], "placement": "before",
                           "normalizer": "group", "norm_groups": 2, "batch_size": 1}),
]


def config(engine: str, levels: dict[str, Any], train_limit: int = 200) -> RunConfig:
    spec = parse_spec({
        "grid": {"name": "combo", "seeds": [3], "epochs": 1, "target_accuracy": 0.5,
                 "validation_size": 297, "train_limit": train_limit},
        "factors": {**BASE, **levels},
        "engine": {"name": engine},
    })
    (cfg,) = spec.expand()
    return cfg


@cache
def train(engine: str, case: str, train_limit: int = 200):
    from bench.datasets import load_dataset
    from bench.engines import get_engine
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2)
    levels = dict(CASES)[case]
    cfg = config(engine, levels, train_limit)
    data = load_dataset("digits", 297, train_limit)
    (result,) = get_engine(engine)([cfg], data)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", [c for c, _ in CASES])
def test_combination_trains(engine: str, case: str):
    result = train(engine, case)
    assert result.status == "ok", result.error
    (epoch,) = result.epochs
    for value in (epoch.train_loss, epoch.train_acc, epoch.val_loss, epoch.val_acc, epoch.epoch_s):
        assert math.isfinite(value)
    assert 0 <= epoch.val_acc <= 1


#: Cases whose training is chaotic: BN over 2 examples amplifies float rounding step by step
#: (measured: the engines agree to 1e-6 after 2 steps, 3e-5 after 10, 0.6% after 100). The
#: per-seed result of a full epoch then depends on the CPU's summation order (an AMD Zen 4 gave
#: 0.0606 where an Intel Xeon gave < 0.06), so no per-seed tolerance can be derived. What can be
#: claimed: the first steps agree tightly, and over seeds the two engines' outcomes come from the
#: same distribution. Group normalization over pairs of values is chaotic too: a pair's output
#: is (a - b) / sqrt((a - b)^2 + 4 eps) up to sign and gamma, so a near-tie a ~ b turns the
#: cancellation's rounding into an O(1) change (measured, relative loss difference of the
#: engines: 2e-7 after 2 steps, 4e-7 after 4, 3e-3 after the 7 steps of one epoch; groups of 4
#: in the same net: <= 1e-7 throughout).
CHAOTIC = {"batch-2-bn", "groups-of-2"}



@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c, _ in CASES if c not in CHAOTIC])
def test_engines_agree(case: str):
    """Same initial weights, data order and update formulas: the same epoch, to float noise."""
    keras_epoch, stacked_epoch = train("keras", case).epochs[0], train("stacked", case).epochs[0]
    assert stacked_epoch.train_loss == pytest.approx(keras_epoch.train_loss, rel=2e-3, abs=2e-4)
    assert stacked_epoch.val_loss == pytest.approx(keras_epoch.val_loss, rel=2e-3, abs=2e-4)
    assert abs(stacked_epoch.val_acc - keras_epoch.val_acc) <= 2 / 297 + 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("case", [*sorted(CHAOTIC), *(f"{n}-{p}" for n, p in NORMALIZED)])
def test_engines_agree_on_the_first_steps(case: str):
    """Two steps: the engines differ only in float summation order (ulps), so rel. 1e-5 (~80
    float32 ulps) holds; chaotic cases are tested this way (and in distribution below), and
    each normalizer is tested tightly here besides its epoch to float noise above."""
    two_steps = 2 * {**BASE, **dict(CASES)[case]}["batch_size"]
    keras_epoch = train("keras", case, two_steps).epochs[0]
    stacked_epoch = train("stacked", case, two_steps).epochs[0]
    assert stacked_epoch.train_loss == pytest.approx(keras_epoch.train_loss, rel=1e-5)
    assert stacked_epoch.val_loss == pytest.approx(keras_epoch.val_loss, rel=1e-5)


def train_seeds(engine: str, case: str) -> list:
    """One epoch of ``case`` for every seed in CHAOTIC_SEEDS (stacked: in programs of 8)."""
    from dataclasses import replace

    from bench.datasets import load_dataset
    from bench.engines import get_engine
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2)
    base = config(engine, dict(CASES)[case])
    configs = [replace(base, seed=s) for s in CHAOTIC_SEEDS]
    return get_engine(engine)(configs, load_dataset("digits", 297, 200))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CHAOTIC))
def test_engines_agree_in_distribution_over_seeds_in_chaotic_cases(case: str):
    """Paired by seed, the end-of-epoch losses of the two engines differ only by chaos: an exact
    Wilcoxon signed-rank test finds no systematic difference (size ALPHA per loss, Bonferroni)."""
    assert_same_in_distribution(train_seeds("stacked", case), train_seeds("keras", case))
