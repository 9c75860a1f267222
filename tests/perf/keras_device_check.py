"""Plain Keras ``fit`` on a device without TensorFlow: bnbench's Keras engine under Keras 3's
JAX backend, timed and checked against the engine's CPU runs of the same seeds.

Why: the GPU machines lent to bnbench sessions have JAX but no TensorFlow, and cannot install
it (docs/performance.md, "Device check without TensorFlow on the device"). Keras 3 runs one
model code on either backend, so ``bench.engines.keras_fit`` itself trains here: the same
model (``bench.model``), initial weights (``bench.pairing.initial_weights``), per-epoch data
orders and one ``fit`` call per epoch. What changes is who compiles the training step: JAX's
XLA. ``jit_compile=True`` is therefore asked for: JAX has no graph mode without XLA, and
without it Keras runs every op eagerly. Op determinism is XLA's deterministic GPU kernels,
as for the replay (``XLA_FLAGS=--xla_gpu_exclude_nondeterministic_ops=true``, set by
``xla_device_check.sh``). No TensorFlow is imported.

    KERAS_BACKEND=jax python tests/perf/keras_device_check.py --cell .xla/s256/none \
        [--data-path mnist.npz] [--cpu-reference REF] [--json FILE]

Checks (``xla_replay.check_against_cpu``, the replay's): the first epoch against the stacked
engine's CPU run of the same seed, and the final validation accuracy against the CPU seeds'
range. Each cell's JSON has the replay's fields, so ``xla_replay.py --check`` reads it too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from throughput import cell_gflop, notebook_configs, train_timed  # noqa: E402
from xla_replay import Replay, add_check_options, check_all, keep  # noqa: E402


def fit_cell(placement: str, seeds: int, cell: dict, data_path: str) -> Replay:
    """Train seeds 0..``seeds``-1 of the notebook cell that ``cell`` (an exported manifest: data
    set, validation size, training limit, epochs) describes, with the Keras engine on Keras'
    default device."""
    import jax

    from bench.datasets import load_dataset
    from bench.engines import keras_fit

    epochs = cell["epochs"]
    cfgs = notebook_configs(placement, seeds, epochs, dataset=cell["dataset"], train_limit=cell["train_limit"],
                            validation_size=cell["validation_size"], name="keras", jit_compile=True,
                            deterministic=False, steps_per_execution=1)
    data = load_dataset(cell["dataset"], cell["validation_size"], cell["train_limit"], data_path)
    results, wall_s = train_timed(placement, cfgs, data, keras_fit.train_cell)
    device = jax.devices()[0]
    return Replay(
        placement, f"{device.platform}: {getattr(device, 'device_kind', device)}", len(results), epochs,
        sum(r.compile_s for r in results), sum(e.epoch_s for r in results for e in r.epochs), wall_s,
        cell_gflop(cfgs, data), len(data.x_train), len(data.x_val),
        [[(e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in r.epochs] for r in results],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--placements", nargs="+", default=["none", "after+input"])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1, one fit each")
    parser.add_argument("--cell", type=Path, required=True,
                        help="an xla_export.py placement folder: train the cell its manifest.json describes")
    parser.add_argument("--data-path", default="", help="where mnist.npz is (bench.datasets' search otherwise)")
    add_check_options(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    if keras.backend.backend() != "jax":
        parser.error(f"KERAS_BACKEND is {keras.backend.backend()!r}: this check is for the JAX backend")
    if not (args.cell / "manifest.json").is_file():
        parser.error(f"--cell {args.cell}: no manifest.json (give an xla_export.py placement folder)")
    manifest = json.loads((args.cell / "manifest.json").read_text())
    results: list[dict] = []
    for placement in args.placements:
        keep(results, fit_cell(placement, args.seeds, manifest, args.data_path), args.json,
             engine="keras fit (JAX backend)")
    return check_all(results, args, "keras check")


if __name__ == "__main__":
    sys.exit(main())
