"""Replay the stacked engine's exported XLA programs with JAX's XLA runtime, on any device.

Reads a folder written by ``tests/perf/xla_export.py`` (HLO + manifest), compiles the programs
for JAX's default device (a GPU when there is one) and trains the cell's seeds exactly as
``bench.engines.stacked._train_group`` drives its programs: the same data, initial weights
(``bench.pairing.initial_weights``), per-epoch orders (``epoch_order``), step chunks
(``stacked._batches``), metric resets and validation slices (``stacked.eval_slices``). No
TensorFlow is imported, so this runs where only JAX is installed.

What it does not do: early-stopping bookkeeping and the test split (the check compares
training curves and final validation accuracy), divergence handling (the notebook cell does
not diverge; a non-finite loss is reported, not stopped on).

    python tests/perf/xla_replay.py FOLDER [FOLDER ...] [--json FILE] [--epochs N] [--cpu-reference REF]
    python tests/perf/xla_replay.py --check FILE --cpu-reference REF    # a result checked later
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.datasets import load_dataset  # noqa: E402
from bench.engines.stacked import _batches, eval_means, eval_slices  # noqa: E402
from bench.pairing import epoch_order, initial_weights  # noqa: E402


@dataclass
class Replay:
    """One exported cell trained on one device: timings and per-seed curves."""

    placement: str
    device: str
    seeds: int
    epochs: int
    compile_s: float  # HLO -> executables, all programs of the cell
    train_s: float  # sum of epoch wall times (training chunks + validation), compilation excluded
    wall_s: float  # compile + data transfer + training
    gflop: float  # all seeds, all epochs (tests/perf/throughput.run_flops)
    n_train: int
    n_val: int
    history: list[list[tuple[float, float, float, float]]]  # [seed][epoch] train/val loss/acc

    @property
    def final_acc(self) -> list[float]:
        return [h[-1][3] for h in self.history]

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("history")
        acc = self.final_acc
        d.update(runs_per_hour=3600 * self.seeds / self.wall_s, gflops=self.gflop / self.train_s,
                 mean_final_acc=float(np.mean(acc)), min_final_acc=min(acc), max_final_acc=max(acc))
        return d


_DTYPES = {"f32": np.float32, "s32": np.int32, "s64": np.int64, "pred": np.bool_}


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # the step counter is int64
    return jax


def stablehlo_text(path: Path) -> str:
    """A serialized HloModuleProto as StableHLO text that any XLA backend compiles.

    The converter keeps HLO's ``copy`` (TensorFlow adds one per returned value) as
    ``mhlo.copy``, which the GPU compiler refuses ("failed to legalize operation 'mhlo.copy'",
    seen on an H200; the CPU compiler accepts it). Before layout assignment a copy is the
    identity, so it is rewritten as a reshape to the same shape.
    """
    from jax._src.interpreters import mlir
    from jax._src.lib import _jax
    from jax._src.lib.mlir import ir

    with mlir.make_ir_context():
        text = str(ir.Module.parse(_jax.mlir.hlo_to_stablehlo(path.read_bytes())))
    return re.sub(r"(%\S+) = mhlo\.copy (%\S+) : (tensor<[^>]*>)", r"\1 = stablehlo.reshape \2 : (\3) -> \3", text)


def compile_hlo(path: Path, device):
    """An executable for ``device`` from a serialized HloModuleProto."""
    from jax._src.lib import xla_client

    return device.client.compile_and_load(stablehlo_text(path), xla_client.DeviceList((device,)),
                                          xla_client.CompileOptions())


def initial_state(manifest: dict) -> list[np.ndarray]:
    """The state ``StackedMLP.reset`` gives these seeds, in the manifest's order."""
    seeds = manifest["seeds"]
    weights = [initial_weights(s, manifest["sizes"], manifest["initializer"]) for s in seeds]
    state = []
    for entry in manifest["state"]:
        shape, dtype, rule = tuple(entry["shape"]), entry["dtype"], entry["init"]
        if rule in ("kernel", "bias"):
            layer = int(entry["name"][len(rule):])
            value = np.stack([w[layer][0 if rule == "kernel" else 1] for w in weights])
        else:
            value = np.full(shape, 1 if rule == "ones" else 0)
        state.append(np.asarray(value, dtype=dtype).reshape(shape))
    return state


def replay_cell(folder: Path, epochs: int | None = None, data_path: str = "") -> Replay:
    jax = _jax()
    import jax.numpy as jnp

    manifest = json.loads((folder / "manifest.json").read_text())
    device = jax.devices()[0]
    t_start = time.perf_counter()
    programs = {(p["rows"], p["batch"], p["steps"]): p for p in manifest["train_programs"]}
    executables = {key: compile_hlo(folder / p["file"], device) for key, p in programs.items()}
    evaluate = compile_hlo(folder / manifest["eval_program"]["file"], device)
    compile_s = time.perf_counter() - t_start

    data = load_dataset(manifest["dataset"], manifest["validation_size"], manifest["train_limit"], data_path)
    if data.fingerprint != manifest["data_fingerprint"]:
        raise RuntimeError(f"{folder}: the data differ from the exported run's ({data.fingerprint})")
    seeds, batch, k = manifest["seeds"], manifest["batch"], manifest["steps_per_execution"]
    n_seeds, n_state, n = len(seeds), len(manifest["state"]), len(data.x_train)
    put = lambda a: jax.device_put(a, device)  # noqa: E731
    x_train, y_train = put(data.x_train), put(data.y_train.astype(np.int32))
    x_val, y_val, w_val = eval_slices(data.x_val, data.y_val, n_seeds, manifest["eval_width"])
    x_val, y_val = put(x_val), put(y_val)
    state = [put(a) for a in initial_state(manifest)]
    metric_index = [i for i, e in enumerate(manifest["state"])
                    if e["name"] in ("loss_total", "correct_total", "count")]

    spare: dict = {}
    exe_params = {key: p["params"] for key, p in programs.items()}
    exe_params["eval"] = manifest["eval_program"]["params"]

    def run(exe, key, explicit: list) -> list:
        """Execute with the explicit arguments, then TensorFlow's resource inputs: the programs
        overwrite them before reading and donate them to their outputs, so each call passes the
        buffers the previous call of that program returned (zeros of the right shape at first)."""
        if key not in spare:
            params = exe_params[key][len(explicit):]
            spare[key] = [jnp.zeros(shape, _DTYPES[dtype], device=device) for dtype, shape in params]
        outs = exe.execute([*explicit, *spare[key]])
        spare[key] = list(outs[len(outs) - len(spare[key]):])
        return outs

    def train(key, idx: np.ndarray) -> None:
        """key = (rows, batch, steps); the step count is a runtime argument of the program."""
        nonlocal state
        steps = put(np.asarray(key[2], np.int32))
        state = list(run(executables[key], key, [x_train, y_train, put(idx), steps, *state])[:n_state])

    full, rem = divmod(n, batch)
    history: list[list[tuple[float, float, float, float]]] = [[] for _ in seeds]
    train_s = 0.0
    for epoch in range(1, (epochs or manifest["epochs"]) + 1):
        t_epoch = time.perf_counter()
        orders = np.stack([epoch_order(s, epoch, n) for s in seeds]).astype(np.int32)
        for i in metric_index:
            state[i] = put(np.zeros(manifest["state"][i]["shape"], np.float32))
        for start in range(0, full, k):
            steps = min(k, full - start)
            train((k, batch, steps), _batches(orders, start, steps, batch, k))
        if rem:
            train((1, rem, 1), orders[:, full * batch:][None])
        loss_total, correct_total, count = (np.asarray(state[i]) for i in metric_index)
        losses, hits = run(evaluate, "eval", [x_val, y_val, *state])[:2]
        val_loss, val_acc = eval_means(np.asarray(losses), np.asarray(hits), w_val)
        train_s += time.perf_counter() - t_epoch
        for s in range(n_seeds):
            history[s].append((float(loss_total[s] / count), float(correct_total[s] / count),
                               float(val_loss[s]), float(val_acc[s])))
    wall_s = time.perf_counter() - t_start
    n_epochs = len(history[0])
    gflop = manifest["flops_per_run"] * n_seeds / 1e9 * n_epochs / manifest["epochs"]
    name = f"{device.platform}: {getattr(device, 'device_kind', device)}"
    return Replay(manifest["placement"], name, n_seeds, n_epochs, compile_s, train_s, wall_s, gflop,
                  n, len(data.x_val), history)


def check_against_cpu(replay: dict, reference: list[dict], reference_epochs: int) -> list[str]:
    """The device check's tests (tests/perf/device_check.py) for one replayed cell against the
    engine's CPU reference rows (``device_check.py --json``). Same seeds, first epoch: losses
    within ``FIRST_EPOCH_TOLERANCE`` (relative); accuracies, counts over a split, within the
    same relative scale in examples, at least one (a prediction flips only where two logits are
    within the weights' float drift of a tie: 55,000 training predictions made while the
    weights drift allow ~5, 5,000 validation ones 1); and the mean final accuracy within the
    CPU seeds' range widened by ``MARGIN`` (when both trained ``reference_epochs``). Returns
    the problems; prints the measured differences either way."""
    from device_check import FIRST_EPOCH_TOLERANCE, MARGIN

    ref = next(r for r in reference if r["label"] == "CPU reference" and r["placement"] == replay["placement"])
    pairs = list(zip((h[0] for h in replay["history"]), ref["first_epoch"]))  # seeds of both
    loss = max(abs(a[i] - b[i]) / abs(b[i]) for a, b in pairs for i in (0, 2))
    splits = ((1, replay["n_train"]), (3, replay["n_val"]))
    acc = [round(max(abs(a[i] - b[i]) for a, b in pairs) * n) for i, n in splits]
    allowed = [max(1, math.ceil(FIRST_EPOCH_TOLERANCE * n)) for _, n in splits]
    low, high = min(ref["final_acc"]) - MARGIN, max(ref["final_acc"]) + MARGIN
    print(f"# {replay['placement']}: first epoch, {replay['device']} vs the engine on the CPU, seeds "
          f"0..{len(pairs) - 1}: losses differ by {loss:.1e} relative (tolerance {FIRST_EPOCH_TOLERANCE:g}), "
          f"accuracies by {acc[0]} training and {acc[1]} validation examples (tolerance {allowed[0]}, {allowed[1]}); "
          f"mean final val acc {replay['mean_final_acc']:.4f}, CPU range widened [{low:.4f}, {high:.4f}]",
          flush=True)
    problems = []
    if loss > FIRST_EPOCH_TOLERANCE:
        problems.append(f"{replay['placement']}: first-epoch losses differ by {loss:.1e} > {FIRST_EPOCH_TOLERANCE:g}")
    for name, diff, limit in zip(("training", "validation"), acc, allowed):
        if diff > limit:
            problems.append(f"{replay['placement']}: first-epoch {name} accuracy differs by {diff} examples > {limit}")
    if replay["epochs"] == reference_epochs and not low <= replay["mean_final_acc"] <= high:
        problems.append(f"{replay['placement']}: mean final accuracy {replay['mean_final_acc']:.4f} "
                        f"outside [{low:.4f}, {high:.4f}]")
    return problems


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """The output and check options of this script and keras_device_check.py."""
    parser.add_argument("--json", type=Path, help="write summaries and per-seed curves here")
    parser.add_argument("--cpu-reference", type=Path,
                        help="device_check.py --json output of the engine on a CPU: check against it")
    parser.add_argument("--reference-epochs", type=int, default=10,
                        help="epochs of the CPU reference (accuracies are compared only at equal epochs)")


def keep(results: list[dict], cell: Replay, json_path: Path | None, **label: str) -> None:
    """Print ``cell``'s summary, add it with its curves to ``results``, and rewrite the JSON
    file (after each cell, so a later cell's crash loses nothing)."""
    summary = cell.summary()
    print(json.dumps({**label, **summary}), flush=True)
    results.append({**summary, "history": cell.history})
    if json_path:
        json_path.write_text(json.dumps(results))


def check_all(results: list[dict], args: argparse.Namespace, name: str) -> int:
    """Each result against ``--cpu-reference`` (when given); the problems on stderr; the exit status."""
    problems: list[str] = []
    if args.cpu_reference:
        reference = json.loads(args.cpu_reference.read_text())
        for result in results:
            problems += check_against_cpu(result, reference, args.reference_epochs)
    for p in problems:
        print(f"{name}: FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="xla_export.py folders (one per placement)")
    parser.add_argument("--check", type=Path, help="check this earlier --json result instead of training")
    parser.add_argument("--epochs", type=int, default=None, help="fewer epochs than exported")
    parser.add_argument("--data-path", default="", help="where mnist.npz is (bench.datasets' search otherwise)")
    add_check_options(parser)
    args = parser.parse_args(argv)
    if not args.folders and not args.check:
        parser.error("give export folders to train, or --check RESULT.json")
    if args.check and not args.cpu_reference:
        parser.error("--check needs --cpu-reference")
    results: list[dict] = []
    for folder in args.folders:
        keep(results, replay_cell(folder, args.epochs, args.data_path), args.json)
    if args.check:
        opener = gzip.open if args.check.suffix == ".gz" else open
        with opener(args.check, "rt", encoding="utf-8") as f:
            results = json.load(f)
    return check_all(results, args, "replay check")


if __name__ == "__main__":
    sys.exit(main())
