"""The stacked engine computes what Keras' ``model.fit`` computes.

Same seed, same initial weights, same batches: per-epoch metrics of the stacked engine
(XLA, S=2 seeds) and the Keras engine (``jit_compile=False``, plain fit) must agree.

Why not bit-identical: the two run the same formulas through different kernels. Keras'
graph uses oneDNN/Eigen MatMul and separate BN ops; XLA fuses elementwise ops and emits its
own dot, so float32 sums are taken in a different order (a few ulps per step). Keras also
sums validation loss in float32 per batch of 32; we sum per-sample losses in float64.
Measured max abs difference over 2-3 epochs, SGD: 2.4e-7 to 4.8e-7 for every placement;
momentum and Adam: <= 5e-6, except Adam + ReLU + BN-before at 3e-3 (Adam divides tiny
gradients of nearly dead units by their own tiny RMS, so ulp-level differences are
amplified: chaos, not a formula difference). The tolerance below (1e-4 on losses and
accuracies) is 200x the SGD difference yet 100x below a one-sample change in accuracy
on these 300 validation digits (3.3e-3): any real semantic slip fails it.
"""

from __future__ import annotations

import pytest

from bench.engines import keras_fit, stacked
from .engine_helpers import make_configs, max_abs_diff, max_abs_test_diff, with_engine

TOL = 1e-4


def _both(digits, epochs=2, **factors):
    cfgs = make_configs(2, epochs=epochs, engine_opts={"seeds_per_program": 2}, **factors)
    ours = stacked.train_cell(cfgs, digits)
    keras_cfg = with_engine(cfgs[:1], name="keras", jit_compile=False, steps_per_execution=1)
    theirs = keras_fit.train_cell(keras_cfg, digits)
    return ours[0], theirs[0]


@pytest.mark.parametrize("placement", ["none", "before", "after", "after+input"])
def test_matches_keras_per_placement(digits, placement):
    ours, theirs = _both(digits, placement=placement, learning_rate=0.01)
    assert ours.status == theirs.status == "ok"
    assert max_abs_diff(ours, theirs) <= TOL
    # The held-out test split (297 digits), final and best-validation weights: same tolerance.
    assert max_abs_test_diff(ours, theirs) <= TOL


@pytest.mark.parametrize("normalizer", ["layer", "group", "rms"])
@pytest.mark.parametrize("placement", ["before", "after+input"])
def test_matches_keras_per_normalizer(digits, normalizer, placement):
    """Keras' LayerNormalization, GroupNormalization (4 groups) and RMSNormalization, the same
    way and tolerance as BN above (the same kind of float32 ops: moments, rsqrt, a fused
    scale-and-shift). after+input covers the positions of after too, and the input; every
    normalizer x placement also trains an epoch in tests/test_factor_combinations.py."""
    ours, theirs = _both(digits, placement=placement, normalizer=normalizer, learning_rate=0.01)
    assert ours.status == theirs.status == "ok"
    assert max_abs_diff(ours, theirs) <= TOL
    assert max_abs_test_diff(ours, theirs) <= TOL


@pytest.mark.parametrize(("optimizer", "activation", "placement"), [
    ("momentum", "tanh", "after"),
    ("adam", "sigmoid", "before"),
])
def test_matches_keras_other_optimizers(digits, optimizer, activation, placement):
    ours, theirs = _both(digits, epochs=1, optimizer=optimizer, activation=activation,
                         placement=placement, learning_rate=1e-3)
    assert max_abs_diff(ours, theirs) <= TOL


def test_both_engines_diverge_on_the_same_config(digits):
    ours, theirs = _both(digits, epochs=1, placement="none", learning_rate=1e4)
    assert ours.status == theirs.status == "diverged"
    assert len(ours.epochs) == len(theirs.epochs) == 1
    # Weights that are not finite get no test score (not a meaningless chance-level accuracy).
    for r in (ours, theirs):
        assert r.test.final_acc is None and r.test.final_loss is None
