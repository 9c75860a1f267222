"""Side-by-side engine timings for docs/performance.md, all in one process and one run.

    python tests/perf/measure_engines.py --epochs 10            # the notebook run, ~15 min
    python tests/perf/measure_engines.py --epochs 1 --train-limit 11000 --placements none

For each placement and engine it trains the notebook cell (784-300-100-10, SGD 1e-3, batch
32, MNIST with the first 5,000 images held out) and prints a Markdown table: seconds per
run (training only, i.e. the sum of epoch times; and everything included: model build,
compile, validation), compile seconds, final validation accuracy, and runs per hour. The
stacked engine's S=8 times are per run (program time / 8). Machine load (1-minute load
average) is sampled before and after each measurement and printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ENGINES = {
    "keras fit (plain)": ("keras", 1, {"jit_compile": False, "steps_per_execution": 1}),
    "keras + XLA": ("keras", 1, {"jit_compile": True, "steps_per_execution": 200,
                                 "deterministic": False}),
    "stacked S=1": ("stacked", 1, {"seeds_per_program": 1}),
    "stacked S=8": ("stacked", 8, {"seeds_per_program": 8}),
}


def _load() -> float:
    return os.getloadavg()[0]


def measure(placement: str, engine: str, epochs: int, train_limit: int) -> dict:
    from bench.datasets import load_dataset
    from bench.engines import get_engine
    from bench.spec import parse_spec

    name, seeds, settings = ENGINES[engine]
    spec = parse_spec({"grid": {"name": "measure", "seeds": seeds, "epochs": epochs,
                                "train_limit": train_limit},
                       "factors": {"placement": placement}})
    cfgs = [replace(c, engine=replace(c.engine, name=name, **settings)) for c in spec.expand()]
    data = load_dataset("mnist", 5000, train_limit=train_limit)
    load_before, t0 = _load(), time.perf_counter()
    results = get_engine(name)(cfgs, data)
    wall = time.perf_counter() - t0
    accs = [r.epochs[-1].val_acc for r in results]
    return {
        "placement": placement, "engine": engine, "seeds": seeds,
        "train_s_per_run": statistics.mean(sum(e.epoch_s for e in r.epochs) for r in results),
        "wall_s_per_run": wall / seeds,
        "compile_s_per_run": statistics.mean(r.compile_s for r in results),
        "val_acc_seed0": accs[0], "val_acc_mean": statistics.mean(accs),
        "statuses": sorted({r.status for r in results}),
        "load_before": load_before, "load_after": _load(),
    }


def table(rows: list[dict]) -> str:
    out = ["| placement | engine | train s/run | wall s/run | compile s/run | val acc (seed 0) "
           "| val acc (mean) | runs/hour | load 1-min |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(
            f"| {r['placement']} | {r['engine']} | {r['train_s_per_run']:.1f} | "
            f"{r['wall_s_per_run']:.1f} | {r['compile_s_per_run']:.2f} | {r['val_acc_seed0']:.4f} | "
            f"{r['val_acc_mean']:.4f} | {3600 / r['wall_s_per_run']:.0f} | "
            f"{r['load_before']:.1f}->{r['load_after']:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-limit", type=int, default=0, help="0 = all 55,000 images")
    ap.add_argument("--placements", default="none,before,after,after+input")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="", help="also write the rows to this file")
    args = ap.parse_args(argv)

    from bench.host import cpu_model
    from bench.tf_setup import configure_tensorflow

    threads = configure_tensorflow(args.threads, deterministic=False)
    print(f"# {cpu_model()}, {os.cpu_count()} cores, TF threads {threads}, "
          f"epochs {args.epochs}, train_limit {args.train_limit or 55000}", flush=True)
    rows = []
    for placement in args.placements.split(","):
        for engine in args.engines.split(","):
            rows.append(measure(placement, engine, args.epochs, args.train_limit))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
