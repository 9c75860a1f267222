"""Record this machine's perf baseline: tests/perf/baselines/<machine fingerprint>.json.

Usage (from the repository root, in the test environment, on a QUIET machine)::

    python tests/perf/record_baseline.py                  # runs the whole perf suite, then saves
    python tests/perf/record_baseline.py --from run.json  # saves a suite run made before

The file is keyed by the fingerprint the run recorded (``gate.this_machine``: CPU model,
cores, TensorFlow/Keras/NumPy versions), so it gates only runs from the same kind of
machine. Commit it. The whole suite runs, so every benchmark, the report-rendering ones
included, enters the baseline. The 1-minute load average before and after is stored with it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gate

ROOT = Path(__file__).resolve().parents[2]


def run_suite(json_path: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "tests/perf", "--benchmark-only",
           f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q"]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="source", type=Path,
                    help="save this pytest-benchmark JSON of a suite run instead of running the suite")
    ap.add_argument("--baselines", type=Path, default=gate.BASELINES, help="folder to save into")
    args = ap.parse_args(argv)
    try:
        if args.source:
            path = gate.record(args.source, args.baselines)
        else:
            load_before = os.getloadavg()[0]
            print(f"load average (1 min) before: {load_before:.2f} on {gate.this_machine()['cores']} cores; "
                  "record on an otherwise idle machine", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                run_json = Path(tmp) / "perf.json"
                run_suite(run_json)
                path = gate.record(run_json, args.baselines, {
                    "recorded_load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
    except gate.GateError as exc:
        print(f"record_baseline: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"record_baseline: the perf suite failed (exit {exc.returncode}); nothing saved", file=sys.stderr)
        return 1
    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
