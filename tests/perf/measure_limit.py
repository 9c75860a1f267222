"""The CPU's practical float32 limit and the stacked engine's share of it, in one run.

    python tests/perf/measure_limit.py                 # 2 epochs of the notebook cell, ~2 min quiet
    python tests/perf/measure_limit.py --epochs 10 --json limit.json
    python tests/perf/measure_limit.py --per-program 8,4,2    # the engine at several S, one sandwich

The limit is measured twice, before and after the engine (a sandwich: the machine's load
changes within minutes), each time as

- ``XLA GEMM chain n``: ``x <- x @ w`` repeated L times inside one ``tf.function(jit_compile=True)``
  loop, n x n float32, for n in ``--sizes`` (1024-4096). Each product needs the previous one,
  so XLA can neither hoist nor fuse the work away; 2 n^3 L FLOP per call;
- ``numpy sgemm n``: one n x n float32 ``a @ b`` (BLAS), threads pinned to TensorFlow's.

Each figure is the best of ``--repeats`` calls after a warm-up (interference only adds time).
The engine rows train the notebook cell (784-300-100-10, SGD, batch 32, MNIST) with the
stacked engine at ``--seeds`` seeds per program (or each of ``--per-program``), per placement, and report training GFLOP/s
(FLOPs counted as in docs/performance.md, compile excluded) and its fraction of the run's
limit (the best GEMM figure of the run). The 1-minute load average is printed with each row:
on a shared machine only rows of one run, at similar load, compare.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import notebook_configs, time_cell  # noqa: E402


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: compilation, page faults, thread pools
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def xla_chain_gflops(n: int, repeats: int, target_gflop: float = 30.0) -> tuple[float, int]:
    """GFLOP/s of a dependent n x n GEMM chain under XLA, and the chain length L used."""
    import numpy as np
    import tensorflow as tf

    length = max(1, round(target_gflop * 1e9 / (2 * n**3)))
    rng = np.random.default_rng(n)
    # Scaled so that the product's norm stays near 1: no overflow over the chain.
    w = tf.constant((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32))
    x0 = tf.constant(rng.standard_normal((n, n)).astype(np.float32))

    @tf.function(jit_compile=True)
    def chain(x, steps):
        for _ in tf.range(steps):
            x = tf.matmul(x, w)
        return x

    steps = tf.constant(length)
    seconds = _best(lambda: chain(x0, steps).numpy()[0, 0], repeats)
    return 2 * n**3 * length / seconds / 1e9, length


def numpy_gflops(n: int, repeats: int, threads: int) -> float:
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        seconds = _best(lambda: a @ b, repeats)
    return 2 * n**3 / seconds / 1e9


def limit_rows(args: argparse.Namespace, threads: int, when: str) -> list[dict]:
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        load = os.getloadavg()[0]
        gflops, length = xla_chain_gflops(n, args.repeats)
        rows.append({"what": f"XLA GEMM chain n={n} (L={length})", "when": when, "gflops": gflops,
                     "load": load})
        print(json.dumps(rows[-1]), flush=True)
    load = os.getloadavg()[0]
    rows.append({"what": f"numpy sgemm n={args.numpy_size}", "when": when,
                 "gflops": numpy_gflops(args.numpy_size, args.repeats, threads), "load": load})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def engine_rows(args: argparse.Namespace) -> list[dict]:
    from bench.datasets import load_dataset
    from bench.engines import stacked

    data = load_dataset(args.dataset, args.validation_size, train_limit=args.train_limit)
    rows = []
    per_program = [int(s) for s in args.per_program.split(",")] if args.per_program else [args.seeds]
    for placement in args.placements.split(","):
        for per in per_program:
            cfgs = notebook_configs(placement, args.seeds, args.epochs, dataset=args.dataset,
                                    train_limit=args.train_limit, validation_size=args.validation_size,
                                    seeds_per_program=per)
            load = os.getloadavg()[0]
            cell = time_cell(f"stacked S={per}", cfgs, data, stacked.train_cell)
            seeds = "" if per == args.seeds else f" ({args.seeds} seeds)"
            rows.append({"what": f"stacked S={per}{seeds}, {placement}, {args.epochs} epochs",
                         "when": "engine", "gflops": cell.gflops, "load": load})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    limit = max(r["gflops"] for r in rows if r["when"] != "engine")
    out = ["| measurement | when | GFLOP/s | share of the run's limit | load 1-min |",
           "|---|---|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['what']} | {r['when']} | {r['gflops']:.1f} | {r['gflops'] / limit:.0%} "
                   f"| {r['load']:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1024,2048,4096", help="XLA GEMM chain sizes n")
    ap.add_argument("--numpy-size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=8, help="stacked seeds per program (and seeds trained)")
    ap.add_argument("--per-program", default="",
                    help="several seeds per program to time in turn, e.g. 8,4,2 (each trains --seeds seeds)")
    ap.add_argument("--placements", default="none,after+input")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--validation-size", type=int, default=5000)
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="", help="also write the rows to this file")
    args = ap.parse_args(argv)

    from bench.host import cpu_model, library_versions
    from bench.tf_setup import configure_tensorflow

    threads = configure_tensorflow(args.threads, deterministic=True)
    print(f"# {cpu_model()}, {os.cpu_count()} cores, TF/BLAS threads {threads}, "
          f"versions {json.dumps(library_versions())}", flush=True)
    rows = limit_rows(args, threads, "before") + engine_rows(args) + limit_rows(args, threads, "after")
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
