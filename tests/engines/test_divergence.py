"""A non-finite loss, training OR validation, marks a run diverged with its epoch (both engines).

The validation case is planted: one NaN pixel in the validation images makes the validation
loss NaN while training stays finite (the bug this guards: such runs were stored as ok).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bench.engines import get_engine
from .engine_helpers import make_configs


@pytest.mark.parametrize("engine", ["keras", "stacked"])
def test_nan_validation_loss_marks_the_run_diverged(digits, engine):
    x_val = digits.x_val.copy()
    x_val[0, 0] = np.nan
    data = replace(digits, x_val=x_val)
    cfgs = make_configs(1, epochs=3, engine=engine, engine_opts={"jit_compile": False})
    (result,) = get_engine(engine)(cfgs, data)
    assert result.status == "diverged", result.epochs
    assert result.diverged_epoch == 1 and len(result.epochs) == 1, "stops at the first bad epoch"
    first = result.epochs[0]
    assert math.isfinite(first.train_loss) and math.isnan(first.val_loss)
    assert "loss not finite in epoch 1" in result.error
