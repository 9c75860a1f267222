"""Export the stacked engine's compiled programs as XLA HLO, to replay them without TensorFlow.

Why: the GPU machines lent to bnbench sessions have JAX's XLA runtime but no TensorFlow, and
no network to install it (TensorFlow with its CUDA libraries is ~2 GB; a call carries 64 MiB).
The stacked engine trains a cell as one XLA program per chunk of steps and evaluates it with
another, so the computation itself travels: each program is exported here, on the CPU, as the
HLO that TensorFlow hands to XLA (``experimental_get_compiler_ir(stage="hlo_serialized")``,
before any device-specific optimization), with the model's state passed in and returned
explicitly. ``tests/perf/xla_replay.py`` compiles the same HLO with JAX's XLA on any device and
drives it the way ``bench.engines.stacked._train_group`` does.

TF32 is switched off before tracing, as ``bench.tf_setup`` does on a GPU: the matmuls then
carry ``precision=HIGHEST`` in the HLO, so a GPU computes them in float32, not TF32.

    python tests/perf/xla_export.py OUT --placements none after+input --seeds 256 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import notebook_configs, run_flops  # noqa: E402

#: How each state variable starts (``StackedMLP.reset``): "kernel"/"bias" from the seed's
#: ``bench.pairing.initial_weights``, else constant.
ONES = ("gamma", "moving_var")


def state_entries(net) -> list[tuple[str, object]]:
    """The net's variables in a fixed order, each with a name that says how it starts."""
    named = [(f"kernel{i}", v) for i, v in enumerate(net.kernels)]
    named += [(f"bias{i}", v) for i, v in enumerate(net.biases)]
    named += [(f"gamma{i}", v) for i, v in enumerate(net.gammas)]
    named += [(f"beta{i}", v) for i, v in enumerate(net.betas)]
    named += [(f"slot{j}_{i}", v) for j, group in enumerate(net.slots) for i, v in enumerate(group)]
    named += [(f"moving_mean{i}", v) for i, v in enumerate(net.moving_means)]
    named += [(f"moving_var{i}", v) for i, v in enumerate(net.moving_vars)]
    named += [("iterations", net.iterations), ("loss_total", net.loss_total),
              ("correct_total", net.correct_total), ("count", net.count)]
    return named


def init_rule(name: str) -> str:
    """"kernel", "bias", "ones" or "zeros": how ``StackedMLP.reset`` fills this variable."""
    for prefix in ("kernel", "bias"):
        if re.fullmatch(prefix + r"\d+", name):
            return prefix
    return "ones" if name.startswith(ONES) else "zeros"


def entry_params(hlo_text: str) -> list[tuple[str, list[int]]]:
    """(dtype, shape) of each parameter of the HLO module's entry computation, in order."""
    entry = next(line for line in hlo_text.splitlines() if line.startswith("ENTRY"))
    signature = entry[entry.index("(") + 1:entry.index(") ->")]
    params = re.findall(r"\w[\w.]*: (\w+)\[([\d,]*)\]", signature)
    return [(dtype, [int(d) for d in dims.split(",") if d]) for dtype, dims in params]


#: Where the programs are traced (the HLO exported is the pre-optimization, device-neutral one).
_CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


def _export(fn, args, path: Path) -> dict:
    """Write ``fn``'s HLO for ``args``; return its file name and parameter list."""
    ir = fn.experimental_get_compiler_ir(*args)
    with warnings.catch_warnings():
        # The device is named: without it TensorFlow finds one by running a random op, which
        # raises once op determinism is on (a TensorFlow-wide setting) and no seed was set.
        warnings.filterwarnings("ignore", "device_name is being deprecated")
        path.write_bytes(ir(stage="hlo_serialized", device_name=_CPU))
        text = ir(stage="hlo", device_name=_CPU)
    if " dot(" in text and "operand_precision={highest,highest}" not in text:
        raise RuntimeError(f"{path.name}: matmuls without precision=HIGHEST (TF32 would change the numbers)")
    return {"file": path.name, "params": entry_params(text)}


def export_cell(cfgs, data, out: Path) -> dict:
    """Export one cell's programs (all of ``cfgs``' seeds in one program) to ``out``; the manifest."""
    import numpy as np
    import tensorflow as tf

    from bench.engines import stacked

    tf.config.experimental.enable_tensor_float_32_execution(False)
    out.mkdir(parents=True, exist_ok=True)
    cfg, n_seeds, n = cfgs[0], len(cfgs), len(data.x_train)
    prog = stacked._program(cfgs, data)
    entries = state_entries(prog.net)
    variables = [v for _, v in entries]

    def pure_train(x_all, y_all, idx, n_steps, *values):
        for v, value in zip(variables, values):
            v.assign(value)
        prog._train_steps(x_all, y_all, idx, n_steps)
        return [v.read_value() for v in variables]

    def pure_eval(x, y, *values):
        for v, value in zip(variables, values):
            v.assign(value)
        return prog.net.eval_per_sample(x, y)

    train_fn = tf.function(pure_train, jit_compile=True)
    eval_fn = tf.function(pure_eval, jit_compile=True)
    values = [v.numpy() for v in variables]
    batch = cfg.batch_size
    full, rem = divmod(n, batch)
    k = max(1, min(cfg.engine.steps_per_execution, full))
    # (rows of idx, batch, steps): one file per step count as before, although n_steps is now a
    # runtime argument of the loop (the replay passes it after idx).
    shapes = {(k, batch, k)} if full >= k else set()
    if full % k:
        shapes.add((k, batch, full % k))
    if rem:
        shapes.add((1, rem, 1))
    programs = []
    for k_pad, b, steps in sorted(shapes):
        idx = tf.constant(np.zeros((k_pad, n_seeds, b), np.int32))
        args = (prog.x_train, prog.y_train, idx, tf.constant(steps, tf.int32), *values)
        info = _export(train_fn, args, out / f"train_{k_pad}x{b}_n{steps}.pb")
        programs.append({"rows": k_pad, "batch": b, "steps": steps, **info})
    x_val, y_val, _ = prog.val
    evaluation = _export(eval_fn, (x_val, y_val, *values), out / "eval_val.pb")
    sizes = list(prog.net.spec.sizes)
    manifest = {
        "placement": cfg.placement, "normalizer": cfg.normalizer, "seeds": [c.seed for c in cfgs],
        "dataset": cfg.dataset, "validation_size": cfg.validation_size, "train_limit": cfg.train_limit,
        "epochs": cfg.epochs, "batch": batch, "steps_per_execution": k, "sizes": sizes,
        "initializer": cfg.initializer, "eval_width": max(cfg.hidden),
        "state": [{"name": name, "shape": list(v.shape), "dtype": v.dtype.name, "init": init_rule(name)}
                  for name, v in entries],
        "train_programs": programs, "eval_program": evaluation,
        "flops_per_run": run_flops(sizes, cfg.placement, n, len(data.x_val), cfg.epochs),
        "data_fingerprint": data.fingerprint,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv: list[str] | None = None) -> int:
    from bench.datasets import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder: one subfolder per placement")
    parser.add_argument("--placements", nargs="+", default=["none", "after+input"])
    parser.add_argument("--seeds", type=int, default=256, help="seeds of the cell, all in one program")
    parser.add_argument("--gpu", nargs=2, metavar=("NAME", "MIB"),
                        help="also print what seeds_per_program = 'auto' gives the cell on this GPU")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--train-limit", type=int, default=0)
    args = parser.parse_args(argv)
    for placement in args.placements:
        cfgs = notebook_configs(placement, args.seeds, args.epochs, dataset=args.dataset,
                                train_limit=args.train_limit, validation_size=args.validation_size)
        data = load_dataset(args.dataset, args.validation_size, args.train_limit, cfgs[0].data_path)
        if args.gpu:
            from bench.device import Device
            from bench.engines.stacked import seeds_choice

            gpu = Device("gpu", args.gpu[0], int(args.gpu[1]) * 2**20)
            print(f"{placement}: seeds_per_program = 'auto' on {gpu.name}: {seeds_choice(cfgs, data, gpu)}")
        manifest = export_cell(cfgs, data, args.out / placement.replace("+", "_"))
        print(f"{placement}: {len(manifest['train_programs'])} training programs, S = {args.seeds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
