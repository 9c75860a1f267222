"""Seeds per program side by side: the stacked engine's whole-run throughput at several S, in one run.

    python tests/perf/measure_seeds.py --per-program 8,2,4 --rounds 2     # ~4 min quiet

Each round trains the notebook cell (784-300-100-10, SGD, batch 32, full MNIST, ``--epochs``)
for ``--seeds`` seeds once per S in ``--per-program`` (the S values interleaved, so that load
drifts touch all of them), per placement, and prints training GFLOP/s (compile excluded,
validation and test passes included as in measure_limit.py). Each program shape is compiled
once per process (the engine's cache), so later rounds time training only. The best round is
kept; the 1-minute load is printed with every row. ``--threads 1`` in two processes started
together times the ``bnbench run --jobs 2`` layout on 2 cores (add their GFLOP/s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import notebook_configs, time_cell  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-program", default="8,2,4", help="seeds per program S to compare")
    ap.add_argument("--seeds", type=int, default=8, help="seeds trained per S (a multiple of each S)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--placements", default="none,after+input")
    ap.add_argument("--threads", type=int, default=2,
                    help="TensorFlow threads (1 with two processes side by side: the --jobs 2 layout)")
    args = ap.parse_args(argv)

    from bench.datasets import load_dataset
    from bench.engines import stacked
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(args.threads, deterministic=True)
    data = load_dataset("mnist", 5000)
    best: dict[tuple[str, int], float] = {}
    for rnd in range(args.rounds):
        for placement in args.placements.split(","):
            for per in (int(s) for s in args.per_program.split(",")):
                cfgs = notebook_configs(placement, args.seeds, args.epochs, seeds_per_program=per)
                load = os.getloadavg()[0]
                cell = time_cell(f"S={per}", cfgs, data, stacked.train_cell)
                best[placement, per] = max(best.get((placement, per), 0.0), cell.gflops)
                print(json.dumps({"round": rnd, "placement": placement, "S": per, "gflops": round(cell.gflops, 1),
                                  "train_s_per_run": round(cell.train_s / cell.seeds, 2),
                                  "mean_val_acc": round(cell.mean_acc, 4), "load": load,
                                  "threads": args.threads}), flush=True)
    print("| placement | S | GFLOP/s (best round) |\n|---|---:|---:|")
    for (placement, per), g in best.items():
        print(f"| {placement} | {per} | {g:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
