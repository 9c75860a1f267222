"""One side of the A/B speed gate: times benchmarks on request, with one side's code.

Started by ``gate.py`` as ``python tests/perf/ab_worker.py --code DIR`` twice, once with the
reference commit's tree and once with the working tree. ``DIR`` goes first on ``sys.path``
(so ``bench`` and ``reports`` are that side's); the benchmark definitions
(``--suite``, default ``perf.ab_suite``) and test helpers come from this file's tree.
The worker stays up for the whole gate, so TensorFlow starts and programs compile once per
side, and the gate can alternate the two sides round by round.

Protocol: one JSON object per line on stdin, one reply per line on the original stdout
(anything the code prints goes to stderr instead):

- ``{"cmd": "names"}`` -> ``{"names": [...]}``;
- ``{"cmd": "prepare", "names": [...]}`` -> ``{"ready": [...], "errors": {name: message}}``
  (builds each benchmark's inputs and calls it once, untimed);
- ``{"cmd": "time", "name": NAME}`` -> ``{"s": wall seconds, "cpu": CPU seconds of the
  process, all threads}`` or ``{"error": message}``;
- ``{"cmd": "quit"}``.

``--plant F`` (tests of the gate only) makes every timed call cost F x its own CPU time more,
by spinning the CPU right after it, like code that does F more work.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def spin(cpu_seconds: float) -> None:
    """Busy-wait for this much CPU time of this thread: extra work, not a sleep, so that a
    planted slow-down costs CPU time and competes for cores like slower code."""
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


def load_suite(suite: str):
    """A module name (``perf.ab_suite``) or a file path (a test's own suite)."""
    if not suite.endswith(".py"):
        return importlib.import_module(suite)
    spec = importlib.util.spec_from_file_location(Path(suite).stem, suite)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve(suite: str, plant: float, proto, scratch: Path) -> None:
    benchmarks = load_suite(suite).BENCHMARKS
    ready: dict[str, object] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            return
        if msg["cmd"] == "names":
            reply = {"names": list(benchmarks)}
        elif msg["cmd"] == "prepare":
            errors = {}
            for name in msg["names"]:
                try:
                    fn = benchmarks[name](scratch)
                    fn()  # untimed warm-up: compilation, caches
                    ready[name] = fn
                except Exception as exc:  # reported per benchmark; the gate decides
                    traceback.print_exc()
                    errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            reply = {"ready": list(ready), "errors": errors}
        else:
            try:
                fn = ready[msg["name"]]
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                spin(plant * (time.process_time() - c0))
                reply = {"s": time.perf_counter() - t0, "cpu": time.process_time() - c0}
            except Exception as exc:
                traceback.print_exc()
                reply = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--code", type=Path, required=True, help="tree whose bench/ and reports/ to time")
    ap.add_argument("--suite", default="perf.ab_suite", help="module with BENCHMARKS (name -> factory)")
    ap.add_argument("--plant", type=float, default=0.0, help="planted slow-down fraction (gate tests)")
    args = ap.parse_args()
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the protocol owns the real stdout; prints from the code go to stderr
    sys.stdout = sys.stderr
    sys.path[:1] = [str(args.code.resolve()), str(TESTS)]  # not this script's folder
    import bench
    import reports

    hello = {"bench": bench.__file__, "reports": reports.__file__, "pid": os.getpid()}
    proto.write(json.dumps(hello) + "\n")
    proto.flush()
    with tempfile.TemporaryDirectory(prefix="bnbench-ab-") as scratch:
        serve(args.suite, args.plant, proto, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
