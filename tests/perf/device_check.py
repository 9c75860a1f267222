"""Device check: the notebook grid with S = "auto" on this machine's device, plain Keras fit on
the same device, and a CPU reference, all in one process. Prints a Markdown table and exits 1
if the device's accuracies leave the CPU runs' range.

    bash tests/perf/device_check.sh          # a GPU machine: 256 seeds x 2 placements (<= 5 min)
    bash tests/perf/device_check.sh --cpu    # tiny CPU mode (seconds): what the test suite runs

Per placement (none, after+input):

1. ``stacked S=auto``: all seeds on the device, ``seeds_per_program = "auto"`` (op determinism
   on, the default); with ``--nondeterministic-too`` once more with determinism off, to show
   what ``deterministic = true`` costs there;
2. ``keras fit``: plain ``model.fit`` on the same device, one seed (seed 0);
3. ``CPU reference``: the first ``--reference-seeds`` seeds with the stacked engine on the CPU.

Checks: the device's mean final validation accuracy and Keras' seed 0 lie in the CPU
reference's range [min, max], widened by ``MARGIN`` (10 validation images of 5,000: runs of one
seed on two devices drift apart by a few images over 10 epochs of SGD, as float summation
orders differ); and, printed, the largest first-epoch difference between the device and the
CPU for the same seeds (float noise: expected <= 1e-4, the engines' documented tolerance).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import CellTiming, notebook_configs, time_cell  # noqa: E402

MARGIN = 0.002
FIRST_EPOCH_TOLERANCE = 1e-4

FULL = {"dataset": "mnist", "seeds": 256, "epochs": 10, "reference_seeds": 8, "validation_size": 5000}
TINY = {"dataset": "digits", "seeds": 4, "epochs": 1, "reference_seeds": 4, "validation_size": 300}


def _fresh_programs() -> None:
    """Forget compiled programs and device-resident data (they are cached per process)."""
    from bench.engines import stacked

    stacked._CACHE.clear()
    stacked._DATA.clear()


def _set_determinism(on: bool) -> None:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()  # public API has only the enable


def check(args: argparse.Namespace) -> tuple[list[CellTiming], list[str]]:
    import tensorflow as tf

    from bench.datasets import load_dataset
    from bench.device import active_device
    from bench.engines import keras_fit, stacked

    device = active_device()
    data = load_dataset(args.dataset, args.validation_size, 0, args.data_path)
    rows: list[CellTiming] = []
    problems: list[str] = []
    for placement in args.placements.split(","):
        auto = notebook_configs(placement, args.seeds, args.epochs, dataset=args.dataset,
                                validation_size=args.validation_size, seeds_per_program="auto")
        _fresh_programs()
        dev = time_cell(f"stacked S=auto on {device.kind}", auto, data, stacked.train_cell)
        rows.append(dev)
        if args.nondeterministic_too:
            _set_determinism(False)
            _fresh_programs()
            rows.append(time_cell(f"stacked S=auto on {device.kind}, deterministic=false",
                                  auto, data, stacked.train_cell))
            _set_determinism(True)
        keras_cfg = notebook_configs(placement, 1, args.epochs, dataset=args.dataset,
                                     validation_size=args.validation_size, name="keras",
                                     jit_compile=False, steps_per_execution=1)
        keras = time_cell(f"keras fit on {device.kind}", keras_cfg, data, keras_fit.train_cell)
        rows.append(keras)
        k = min(args.reference_seeds, args.seeds)
        ref_cfgs = notebook_configs(placement, k, args.epochs, dataset=args.dataset,
                                    validation_size=args.validation_size, seeds_per_program=k)
        if device.kind != "cpu":  # programs compiled for the GPU must not serve the CPU
            _fresh_programs()
        with tf.device("/CPU:0"):
            ref = time_cell("CPU reference", ref_cfgs, data, stacked.train_cell)
        if device.kind != "cpu":
            _fresh_programs()
        rows.append(ref)

        low, high = min(ref.final_acc) - MARGIN, max(ref.final_acc) + MARGIN
        for name, acc in ((dev.label + " (mean)", dev.mean_acc), (keras.label, keras.final_acc[0])):
            if not low <= acc <= high:
                problems.append(f"{placement}: {name} accuracy {acc:.4f} outside the CPU runs' "
                                f"range [{low:.4f}, {high:.4f}]")
        drift = max(abs(a - b) for d, c in zip(dev.first_epoch[:k], ref.first_epoch)
                    for a, b in zip(d, c))
        print(f"# {placement}: largest first-epoch difference, {device.kind} vs CPU, same seeds: "
              f"{drift:.2e} ({'within' if drift <= FIRST_EPOCH_TOLERANCE else 'ABOVE'} "
              f"{FIRST_EPOCH_TOLERANCE:g})", flush=True)
    return rows, problems


def table(rows: list[CellTiming]) -> str:
    out = ["| placement | engine | seeds | S | runs/hour | GFLOP/s | compile s | train s | wall s "
           "| val acc mean | val acc min..max |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r.placement} | {r.label} | {r.seeds} | {r.seeds_in_program} | "
                   f"{r.runs_per_hour:.0f} | {r.gflops:.1f} | {r.compile_s:.2f} | {r.train_s:.1f} | "
                   f"{r.wall_s:.1f} | {r.mean_acc:.4f} | {min(r.final_acc):.4f}..{max(r.final_acc):.4f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="tiny CPU mode: digits, 4 seeds, 1 epoch")
    ap.add_argument("--seeds", type=int)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--reference-seeds", type=int)
    ap.add_argument("--placements", default="none,after+input")
    ap.add_argument("--nondeterministic-too", action="store_true",
                    help="also time the device with op determinism off")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = all cores)")
    ap.add_argument("--data-path", default="",
                    help="mnist.npz (default: the usual search: BNBENCH_DATA_DIR, ../shared/data, ...)")
    ap.add_argument("--json", default="", help="also write the rows to this file")
    args = ap.parse_args(argv)
    for key, value in (TINY if args.cpu else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)

    from bench.host import cores
    from bench.tf_setup import configure_tensorflow

    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before TensorFlow starts: no GPU
    threads = configure_tensorflow(args.threads or cores(), deterministic=True)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices: this script recompiles on purpose
    from bench.device import active_device
    from bench.host import library_versions

    device = active_device()
    print(f"# device: {json.dumps(device.record())}; TF threads {threads}; "
          f"versions {json.dumps(library_versions())}; load {os.getloadavg()[0]:.1f}", flush=True)
    t0 = time.perf_counter()
    rows, problems = check(args)
    print(table(rows))
    print(f"# {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{**r.__dict__, "runs_per_hour": r.runs_per_hour, "gflops": r.gflops}
                       for r in rows], f, indent=1)
    for p in problems:
        print(f"device check: FAIL: {p}", file=sys.stderr)
    if not problems:
        print("device check: ok (accuracies within the CPU runs' range)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
