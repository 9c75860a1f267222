"""The exported-program replay (tests/perf/xla_export.py -> xla_replay.py) trains like the engine.

The replay is how the stacked engine was timed on a GPU machine without TensorFlow
(docs/performance.md, "GPU and other devices"); its numbers mean something only if it runs the
engine's computation. Here, on the CPU, the same seeds are trained by the engine (TensorFlow's
XLA; device_check.py's CPU reference) and by the replay (JAX's XLA compiling the exported HLO,
through tests/perf/xla_device_check.sh, in processes that cannot import TensorFlow), and the
first epoch's metrics are compared; so are those of plain Keras fit under Keras' JAX backend
(keras_device_check.py, the same script's last step).

Tolerance: both compile the same HLO for the same CPU, but two XLA versions may fuse and
vectorize differently, so sums are reordered: float32 noise (~1e-7 relative per operation) that
SGD carries through the epoch's 46 steps. ``FIRST_EPOCH_TOLERANCE`` (1e-4 relative, the
device check's bound for the same seed on two devices) leaves that noise three orders of
magnitude, while another seed's first epoch (what a wrong state order, initial weight or batch
order amounts to) is caught: the test plants that. Accuracies are counts: they may differ
by one example (1e-4 of the split, at least one) where a logit pair is within float noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import notebook_configs  # noqa: E402


def test_state_order_and_initial_values_match_the_engine():
    """The manifest's state list, rebuilt by the replay, equals the engine's state after reset."""
    from xla_export import init_rule, state_entries
    from xla_replay import initial_state

    from bench.datasets import load_dataset
    from bench.engines import stacked

    cfgs = notebook_configs("after+input", 2, 1, dataset="digits", validation_size=300)
    prog = stacked._program(cfgs, load_dataset("digits", 300))
    prog.net.reset([0, 1], cfgs[0].initializer)  # a cached program may hold trained state
    entries = state_entries(prog.net)
    manifest = {"seeds": [0, 1], "sizes": list(prog.net.spec.sizes), "initializer": cfgs[0].initializer,
                "state": [{"name": n, "shape": list(v.shape), "dtype": v.dtype.name, "init": init_rule(n)}
                          for n, v in entries]}
    assert len({id(v) for _, v in entries}) == len(entries)  # every variable once
    for (name, v), value in zip(entries, initial_state(manifest), strict=True):
        np.testing.assert_array_equal(value, v.numpy(), err_msg=name)


@pytest.mark.slow
def test_device_script_runs_on_the_cpu(tmp_path, require):
    """tests/perf/xla_device_check.sh end to end with a tiny folder: an exported 4-seed cell per
    placement and device_check.py's CPU rows as the reference (what the GPU run used, small)."""
    import importlib.util

    from xla_export import main as export

    require(importlib.util.find_spec("jax"), "JAX", "pip install 'bnbench[replay]' (tox installs it)")
    folder = tmp_path / "xla"
    export([str(folder / "s4"), "--seeds", "4", "--epochs", "1", "--dataset", "digits",
            "--validation-size", "300"])
    # Pure StableHLO (what a GPU compile requires; the CPU compiler accepts more): the same
    # legalization as serializing a portable artifact, which refused the raw conversion.
    from jax._src.lib import _jax
    from xla_replay import stablehlo_text

    for program in sorted((folder / "s4").glob("*/*.pb")):
        assert _jax.mlir.serialize_portable_artifact(stablehlo_text(program), "1.0.0")
    repo = HERE.parents[1]
    subprocess.run([sys.executable, str(HERE / "device_check.py"), "--cpu", "--json",
                    str(folder / "cpu_reference.json")], check=True, cwd=repo, capture_output=True)
    # As on the GPU machines: TensorFlow cannot be imported (Keras and bench must not need it).
    no_tensorflow = tmp_path / "no_tensorflow"
    (no_tensorflow / "tensorflow").mkdir(parents=True)
    (no_tensorflow / "tensorflow" / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    done = subprocess.run(["bash", str(HERE / "xla_device_check.sh"), str(folder)], cwd=repo, text=True,
                          capture_output=True, env={**os.environ, "OUT": str(tmp_path), "REFERENCE_EPOCHS": "1",
                                                    "PYTHON": sys.executable, "PYTHONPATH": str(no_tensorflow)})
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "losses differ by" in log and "FAIL" not in log and "exited" not in log, log
    cells = json.loads((tmp_path / "s4.json").read_text())
    assert sorted(c["placement"] for c in cells) == ["after+input", "none"]
    assert all(c["seeds"] == 4 and c["runs_per_hour"] > 0 for c in cells)
    # Plain Keras fit under the JAX backend (keras_device_check.py), checked by the same rules.
    keras_cells = json.loads((tmp_path / "keras.json").read_text())
    assert [(c["placement"], c["seeds"], c["epochs"]) for c in keras_cells] == [("none", 1, 1), ("after+input", 1, 1)]
    assert "keras check" not in log, log
    # Planted: the same check fails when the replay's seeds are not the reference's.
    from xla_replay import check_against_cpu

    reference = json.loads((folder / "cpu_reference.json").read_text())
    for cell in cells:
        assert not check_against_cpu(cell, reference, 1)
        shuffled = {**cell, "history": cell["history"][1:] + cell["history"][:1]}
        assert check_against_cpu(shuffled, reference, 1)
