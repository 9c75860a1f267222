"""Side-by-side CNN engine timings for docs/performance.md ("CNN"), in one process.

    python tests/perf/measure_cnn.py --rounds 2 --train-limit 2048

Trains the CNN (``bench.cnn``, widths ``--widths``, BN ``--placement``, SGD, batch 32) on an
MNIST slice (Fashion-MNIST has the same shapes, hence the same speed) with Keras ``fit`` (the
spec's defaults: op determinism on, so no XLA; steps_per_execution 200) and with the stacked
engine at S = 1, 4, 8 (seeds 0..S-1 in one program), for 2 epochs each, and prints the warm
epoch's seconds per seed (training + validation, compile excluded: epoch 2). The engines run
interleaved, round after round, because other processes share the cores: compare within a
round (the ratio column), not across rounds. The 1-minute load is printed per measurement.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the engine helpers


def measure(engine: str, n_seeds: int, widths: tuple[int, ...], placement: str, data) -> float:
    from bench.engines import get_engine
    from engines.engine_helpers import make_configs

    opts = {"seeds_per_program": n_seeds} if engine == "stacked" else {}
    cfgs = make_configs(n_seeds, epochs=2, engine=engine, engine_opts={"steps_per_execution": 200, **opts},
                        dataset="mnist", placement=placement, learning_rate=0.01,
                        architecture="cnn", widths=list(widths))
    results = get_engine(engine)(cfgs, data)
    assert all(r.status == "ok" for r in results)
    if engine == "stacked":  # epoch_s is already the program's time / S
        return results[0].epochs[1].epoch_s
    return sum(r.epochs[1].epoch_s for r in results) / n_seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=2048)
    ap.add_argument("--widths", default="8,16")
    ap.add_argument("--placement", default="before")
    ap.add_argument("--seeds", default="1,4,8", help="stacked S values")
    args = ap.parse_args()
    from bench.datasets import load_dataset
    from bench.tf_setup import configure_tensorflow

    configure_tensorflow(2)
    data = load_dataset("mnist", 1000, args.train_limit)
    widths = tuple(int(w) for w in args.widths.split(","))
    runs = [("keras fit", "keras", 1)] + [(f"stacked S={s}", "stacked", int(s)) for s in args.seeds.split(",")]
    print(f"widths {widths}, placement {args.placement}, {args.train_limit} training + 1000 validation images")
    print("| round | engine | s/epoch/seed | Keras / this | load 1-min |")
    print("|---|---|---:|---:|---|")
    for r in range(1, args.rounds + 1):
        keras_s = None
        for label, engine, n in runs:
            before = os.getloadavg()[0]
            t = measure(engine, n, widths, args.placement, data)
            keras_s = t if engine == "keras" else keras_s
            print(f"| {r} | {label} | {t:.2f} | {keras_s / t:.2f} | {before:.1f}->{os.getloadavg()[0]:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
