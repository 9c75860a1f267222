"""Combinations that cannot work are refused by the spec, before any training, with a reason."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.spec import SpecError, parse_spec


def spec(**factors):
    return parse_spec({
        "grid": {"name": "c", "seeds": 1, "epochs": 1, "validation_size": 297, "train_limit": 200},
        "factors": {"dataset": "digits", **factors},
    })


@pytest.mark.parametrize("placement", ["before", "after", "after+input"])
def test_batch_of_one_with_bn_is_refused(placement):
    with pytest.raises(SpecError) as err:
        spec(placement=placement, batch_size=1)
    msg = str(err.value)
    assert msg.startswith("factors.batch_size:") and placement in msg and "batch_size >= 2" in msg


def test_batch_of_one_anywhere_in_a_grid_with_bn_is_refused():
    """The grid is a full product: batch 1 would meet BN in some cell."""
    with pytest.raises(SpecError, match="factors.batch_size"):
        spec(placement=["none", "after"], batch_size=[1, 32])


@pytest.mark.parametrize(("placement", "batch"), [("none", 1), ("before", 2), (["none", "after"], 32)])
def test_allowed_neighbours(placement, batch):
    assert spec(placement=placement, batch_size=batch).expand()


def test_existing_size_check_still_applies():
    with pytest.raises(SpecError, match="larger than the 200 training examples"):
        spec(placement="none", batch_size=201)


@pytest.mark.slow
def test_why_batch_of_one_is_refused():
    """Evidence: with batch 1 and BN, no hidden Dense kernel receives a gradient."""
    import keras

    from bench.datasets import load_dataset
    from bench.model import build_model
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2)
    cfg = replace(spec(placement="before", batch_size=2, hidden=[8, 8]).expand()[0], batch_size=1)
    data = load_dataset("digits", 297, 40)
    model = build_model(cfg, data.n_features, data.n_classes)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    before = [d.get_weights()[0].copy() for d in dense]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, batch_size=1, epochs=1, verbose=0, shuffle=False)
    after = [d.get_weights()[0] for d in dense]
    for b, a in zip(before[:-1], after[:-1]):  # hidden layers: frozen
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before[-1], after[-1])  # only the softmax layer learns
