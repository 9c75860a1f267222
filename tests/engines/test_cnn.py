"""The CNN (bench/cnn.py): both engines compute the same training, seeds stay apart, placements
are paired.

The data are the offline 8x8 digits with widths (4, 8) (8 -> 4 -> 2 after two stages), so each
test trains in seconds; the 28x28 case is the same code with other shapes (one MNIST test).
Tolerances are the MLP's, derived in tests/engines/test_stacked_vs_keras.py (TOL: per-epoch
metrics of one epoch) and tests/test_factor_combinations.py (rel 1e-5 on the first steps): the
CNN adds longer sums (a 3x3 conv over 8 channels sums 72 products, BN over a batch of 32
8x8 maps sums 2,048) but the same kind of float32 reordering, and these bounds sit far below a
one-sample change in validation accuracy (1/300 = 3.3e-3).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.engines import keras_fit, stacked

from .engine_helpers import make_configs, max_abs_diff, max_abs_test_diff, metric_rows, with_engine
from .test_stacked_vs_keras import TOL

PLACEMENTS = ["none", "before", "after", "after+input"]
WIDTHS = (4, 8)


def cnn_configs(seeds, *, widths=WIDTHS, **kwargs):
    return make_configs(seeds, architecture="cnn", widths=list(widths), **kwargs)


def both_engines(data, **kwargs):
    """Seed 0 of a two-seed stacked program, and seed 0 trained by Keras ``fit`` (no XLA)."""
    cfgs = cnn_configs(2, engine_opts={"seeds_per_program": 2}, **kwargs)
    ours = stacked.train_cell(cfgs, data)
    theirs = keras_fit.train_cell(with_engine(cfgs[:1], name="keras", jit_compile=False,
                                              steps_per_execution=1), data)
    return ours[0], theirs[0]


@pytest.fixture(scope="module")
def digits_64(digits):
    """Two batches of 32: the first steps."""
    from dataclasses import replace

    return replace(digits, x_train=digits.x_train[:64], y_train=digits.y_train[:64])


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_first_steps_match_keras(digits_64, placement):
    ours, theirs = both_engines(digits_64, epochs=1, placement=placement, learning_rate=0.05)
    assert ours.status == theirs.status == "ok"
    (a,), (b,) = ours.epochs, theirs.epochs
    assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5)
    assert a.val_loss == pytest.approx(b.val_loss, rel=1e-5)
    assert a.val_acc == pytest.approx(b.val_acc, abs=1e-7)  # Keras averages in float32


@pytest.mark.slow
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_one_epoch_matches_keras(digits, placement):
    ours, theirs = both_engines(digits, epochs=1, placement=placement, learning_rate=0.05)
    assert ours.status == theirs.status == "ok"
    assert max_abs_diff(ours, theirs) <= TOL
    assert max_abs_test_diff(ours, theirs) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize(("optimizer", "activation", "placement"), [
    ("momentum", "tanh", "after"),
    ("adam", "relu", "before"),
])
def test_other_optimizers_match_keras(digits_64, optimizer, activation, placement):
    ours, theirs = both_engines(digits_64, epochs=2, optimizer=optimizer, activation=activation,
                                placement=placement, learning_rate=1e-3)
    assert max_abs_diff(ours, theirs) <= TOL


def test_seeds_in_one_program_do_not_mix(digits_64):
    """Seed 0 trains bit-identically whether its neighbour in the program is seed 1 or seed 2
    (other initial weights, other batches), and equals seed 0 trained alone to float noise."""
    kwargs = {"epochs": 2, "placement": "before", "engine_opts": {"seeds_per_program": 2}}
    with_1 = stacked.train_cell(cnn_configs([0, 1], **kwargs), digits_64)
    with_2 = stacked.train_cell(cnn_configs([0, 2], **kwargs), digits_64)
    assert metric_rows(with_1[0]) == metric_rows(with_2[0])
    assert metric_rows(with_1[1]) != metric_rows(with_2[1])
    alone = stacked.train_cell(cnn_configs([0], **{**kwargs, "engine_opts": {"seeds_per_program": 1}}),
                               digits_64)
    assert max_abs_diff(alone[0], with_1[0]) <= 1e-5  # test_stacked.py's bound for S vs 1


def _conv_kernels(model) -> list[np.ndarray]:
    return [layer.get_weights()[0] for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]


def test_placements_are_paired():
    """Every placement starts from the same conv and head kernels; the layers differ only by
    the normalization layers, where the placement puts them; the stacked engine starts from
    the same numbers."""
    from bench.cnn import CnnSpec, build_cnn_model
    from bench.engines._xla_cnn import StackedCNN

    def spec(placement):
        return CnnSpec((8, 8, 1), WIDTHS, 10, placement, "relu")

    models = {p: build_cnn_model(spec(p), 3, "he_normal") for p in PLACEMENTS}
    reference = _conv_kernels(models["none"])
    assert [k.shape for k in reference] == [(3, 3, 1, 4), (3, 3, 4, 4), (3, 3, 4, 8), (3, 3, 8, 8), (32, 10)]
    for model in models.values():
        for a, b in zip(_conv_kernels(model), reference, strict=True):
            np.testing.assert_array_equal(a, b)
    names = {p: [type(layer).__name__ for layer in m.layers] for p, m in models.items()}
    assert "BatchNormalization" not in names["none"]
    assert names["before"][1:4] == ["Conv2D", "BatchNormalization", "Activation"]
    assert names["after"][1:4] == ["Conv2D", "Activation", "BatchNormalization"]
    assert names["after+input"][1:3] == ["BatchNormalization", "Conv2D"]
    assert names["after+input"].count("BatchNormalization") == 5
    net = StackedCNN(spec("after"), [5, 3], "he_normal")
    for kernel, expected in zip(net.kernels, reference, strict=True):
        np.testing.assert_array_equal(kernel.numpy()[1], expected)
    other_seed = _conv_kernels(build_cnn_model(spec("none"), 4, "he_normal"))
    assert not np.array_equal(other_seed[0], reference[0])


@pytest.mark.slow
def test_mnist_28x28_first_steps_match_keras(require):
    """The default widths on 28x28 images (three poolings' worth of shapes: 28 -> 14 -> 7)."""
    from dataclasses import replace

    from bench.datasets import DatasetError, load_dataset

    try:
        data = load_dataset("mnist", 300, 64)
    except DatasetError as e:
        require(False, "MNIST", str(e))
    data = replace(data, x_test=data.x_test[:300], y_test=data.y_test[:300])
    from bench.cnn import DEFAULT_WIDTHS

    cfgs = cnn_configs(2, widths=DEFAULT_WIDTHS, epochs=1, placement="before", dataset="mnist",
                       engine_opts={"seeds_per_program": 2})
    ours = stacked.train_cell(cfgs, data)[0]
    theirs = keras_fit.train_cell(with_engine(cfgs[:1], name="keras", jit_compile=False), data)[0]
    assert ours.epochs[0].train_loss == pytest.approx(theirs.epochs[0].train_loss, rel=1e-5)
    assert ours.epochs[0].val_loss == pytest.approx(theirs.epochs[0].val_loss, rel=1e-5)
