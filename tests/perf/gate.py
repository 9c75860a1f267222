"""Perf regression gate: the working tree against a pinned reference commit, timed alternately.

Usage (repository root, test environment)::

    python tests/perf/gate.py                         # the gate (.ci/run, tox -e perf)
    python tests/perf/gate.py --only 'test_render_*'  # a subset (fnmatch patterns)
    python tests/perf/gate.py --set-reference HEAD --why "accepted: ..."   # then commit it

Why A/B in one run: on a shared 2-core VM the same code measured twice, 40 minutes apart,
moved by -41% to +41% per benchmark (issue 15), and a baseline from another CPU is off by
as much again (microarchitecture). So, as asv's ``continuous`` does, the gate times the
reference code (the commit pinned in ``tests/perf/reference.toml``, extracted with
``git archive``) and the current code in the same run: two worker processes
(``ab_worker.py``), same interpreter, each with its side's ``bench``/``reports`` first on
``sys.path``, asked for one timed call at a time, alternating (reference then current, then
current then reference, ...) for every benchmark in every round. The CPU model and the
library versions hit both sides of a pair alike, and cancel in the pair's ratio
``current / reference``. What is compared is each call's process CPU time (all threads),
not its wall time: at a 1-minute load of 14-20 on 2 cores, unchanged code's per-round
wall-time ratios spread 0.60-1.49 (a 2 s render took 35-55 s, and the load changed within
a call), which no rule can gate on; CPU time counts only the time the code ran. Wall-time
ratios are printed too.

Decision, per benchmark, from the R per-round ratios, as asv's ``continuous`` decides (a
change must be both large and significant): the gate fails when the median ratio is at
least ``1 + threshold`` (default 1.15) AND a one-sided 95% lower confidence bound of the
median ratio lies above 1 (the current code is significantly slower at all). The bound is
the sign test's (distribution-free: the k-th smallest of R ratios, with k the largest for
which P(Binomial(R, 1/2) <= k - 1) <= 5%), so a few rounds hit by a burst of load, on
either side, cannot move it. With R = 8 it is the 2nd smallest ratio: a benchmark fails when
its median round is >= 15% slower and at least 7 of its 8 rounds are slower than the
reference. A first rule (bound > 1.10) missed a planted 25% slow-down at load 8-15 (bound
1.08, median 1.24: docs/performance.md). A benchmark that fails on the reference code only
(a benchmark newer than the reference) is listed as not compared.

Exit status: 0 pass or NOT GATED (no reference commit in this clone: it says how to fetch
it), 1 a benchmark significantly slower, 2 unusable (bad arguments, the current code fails
a benchmark, a worker died).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import functools
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import binom

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFERENCE = HERE / "reference.toml"
WORKER = HERE / "ab_worker.py"
#: What the reference side needs from its commit; benchmark definitions are the current tree's.
REFERENCE_PATHS = ("bench", "reports")
DEFAULT_THRESHOLD = 0.15
DEFAULT_ALPHA = 0.05
#: 8 rounds: the sign-test bound at 95% is the 2nd smallest ratio; the default set then needs
#: an estimated 6-7 minutes on a quiet 2-core AMD EPYC VM (docs/performance.md, "Time").
DEFAULT_ROUNDS = 8
SET_COMMAND = 'python tests/perf/gate.py --set-reference HEAD --why "..."'


class GateError(RuntimeError):
    """The gate cannot measure (exit 2)."""


# ----------------------------------------------------------------------------- decision rule


@functools.cache
def lower_bound_rank(n: int, alpha: float = DEFAULT_ALPHA) -> int:
    """k such that the k-th smallest of n samples is a one-sided 1 - alpha lower bound of the median.

    Sign test: P(k-th smallest > median) = P(Binomial(n, 1/2) <= k - 1). The largest k with
    that <= alpha; 0 when even the minimum is no bound (n < 5 at alpha = 0.05).
    """
    k = 0
    while k < n and binom.cdf(k, n, 0.5) <= alpha:
        k += 1
    return k


def median_lower_bound(ratios: list[float], alpha: float = DEFAULT_ALPHA) -> float:
    """Distribution-free lower confidence bound of the median ratio (``-inf``: too few rounds)."""
    k = lower_bound_rank(len(ratios), alpha)
    return sorted(ratios)[k - 1] if k else float("-inf")


@dataclass(frozen=True)
class Verdict:
    name: str
    reference_s: float  # medians over rounds, seconds
    current_s: float
    ratios: tuple[float, ...]  # per round, current / reference
    median: float
    lower: float
    failed: bool


def decide(name: str, reference: list[float], current: list[float],
           threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> Verdict:
    """Round i's two times were measured back to back: compare them pairwise."""
    if len(reference) != len(current) or not reference:
        raise ValueError(f"{name}: need one reference and one current time per round")
    ratios = tuple(c / r for r, c in zip(reference, current))
    lower = median_lower_bound(list(ratios), alpha)
    median = statistics.median(ratios)
    return Verdict(name, statistics.median(reference), statistics.median(current), ratios,
                   median, lower, median >= 1 + threshold and lower > 1)


def table(verdicts: list[Verdict], threshold: float) -> list[str]:
    lines = [f"{'benchmark':45s} {'ref s':>7s} {'cur s':>7s} {'ratio':>6s} {'low95':>6s} "
             f"{'rounds min-max':>13s}  verdict"]
    for v in verdicts:
        verdict = (f"SLOWER (fail: ratio >= {1 + threshold:.2f}, low95 > 1)" if v.failed
                   else "ok" if v.lower != float("-inf") else "too few rounds: not gated")
        lines.append(f"{v.name:45s} {v.reference_s:7.3f} {v.current_s:7.3f} {v.median:6.2f} "
                     f"{v.lower:6.2f} {min(v.ratios):6.2f}-{max(v.ratios):<6.2f}  {verdict}")
    return lines


# ----------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class Reference:
    commit: str
    why: str
    set_on: str


def load_reference(path: Path = REFERENCE) -> Reference:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return Reference(str(doc["commit"]), str(doc.get("why", "")), str(doc.get("set_on", "")))
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise GateError(f"{path}: no usable reference ({exc})") from None


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)


def unavailable(repo: Path, commit: str) -> str | None:
    """Why the reference commit cannot be used here, or None when it can."""
    try:
        if _git(repo, "rev-parse", "--git-dir").returncode:
            return f"{repo} is not a git checkout"
    except FileNotFoundError:
        return "git is not installed"
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode:
        shallow = _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        return (f"the reference commit {commit} is not in this clone"
                + (" (a shallow clone)" if shallow else ""))
    return None


def extract(repo: Path, commit: str, dest: Path) -> Path:
    """The reference commit's ``bench``/``reports`` in ``dest`` (``git archive``: no checkout)."""
    out = _git(repo, "archive", "--format=tar", commit, *REFERENCE_PATHS)
    if out.returncode:
        raise GateError(f"git archive {commit}: {out.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def set_reference(repo: Path, rev: str, why: str, path: Path = REFERENCE) -> Reference:
    out = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}")
    if out.returncode:
        raise GateError(f"--set-reference: {rev!r} is not a commit here")
    ref = Reference(out.stdout.decode().strip(), why, dt.date.today().isoformat())
    path.write_text(
        "# The code the perf gate times the working tree against (tests/perf/gate.py).\n"
        f"# Refresh after accepting a speed change: {SET_COMMAND}, then commit this file.\n"
        f"commit = {json.dumps(ref.commit)}\nwhy = {json.dumps(ref.why)}\nset_on = {json.dumps(ref.set_on)}\n",
        encoding="utf-8")
    return ref


# ----------------------------------------------------------------------------- measuring


class Worker:
    """One side's ``ab_worker.py`` process, asked for one thing at a time."""

    def __init__(self, side: str, code: Path, suite: str, plant: float, log: Path) -> None:
        self.side, self.log = side, log
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(code)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--code", str(code), "--suite", suite, "--plant", str(plant)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT, env=env)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise GateError(f"the {self.side} worker exited ({self.proc.returncode}):\n  " + "\n  ".join(tail))
        return json.loads(line)

    def send(self, **msg: Any) -> None:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        return self._read()

    def ask(self, **msg: Any) -> dict[str, Any]:
        self.send(**msg)
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self._log.close()


@dataclass
class Measurement:
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> side -> CPU s
    wall: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # name -> side -> wall s
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why not compared
    code: dict[str, dict[str, Any]] = field(default_factory=dict)  # side -> worker's hello


def measure(reference: Path, current: Path, patterns: list[str] | None, rounds: int, *,
            suite: str = "perf.ab_suite", plant: float = 0.0, logs: Path, progress: bool = True) -> Measurement:
    """Time the suite's benchmarks (those matching ``patterns``) for ``rounds`` rounds; in
    each, both sides back to back, order alternating."""
    out = Measurement()
    workers, begin = {}, time.perf_counter()
    try:
        for side, code in (("reference", reference), ("current", current)):
            workers[side] = Worker(side, code, suite, plant if side == "current" else 0.0,
                                   logs / f"{side}.log")
            out.code[side] = workers[side].hello
        names = select(workers["current"].ask(cmd="names")["names"], patterns)
        if progress:
            print(f"  {len(names)} benchmarks x {rounds} rounds: {', '.join(names)}", flush=True)
        for w in workers.values():  # both sides build and warm up at once; only rounds are timed
            w.send(cmd="prepare", names=names)
        prepared = {side: w.receive() for side, w in workers.items()}
        if progress:
            print(f"  prepared (inputs built, one untimed call each) in {time.perf_counter() - begin:.0f} s",
                  flush=True)
        if prepared["current"]["errors"]:
            bad = "; ".join(f"{n}: {e}" for n, e in prepared["current"]["errors"].items())
            raise GateError(f"the current code fails benchmark(s): {bad} (log: {logs / 'current.log'})")
        for name, err in prepared["reference"]["errors"].items():
            out.skipped[name] = f"fails on the reference code ({err})"
        names = [n for n in names if n not in out.skipped]
        out.times = {n: {"reference": [], "current": []} for n in names}
        out.wall = {n: {"reference": [], "current": []} for n in names}
        start = time.perf_counter()
        for r in range(rounds):
            for i, name in enumerate(names):
                order = ("reference", "current") if (r + i) % 2 == 0 else ("current", "reference")
                for side in order:
                    reply = workers[side].ask(cmd="time", name=name)
                    if "error" in reply:
                        raise GateError(f"{name} failed on the {side} code: {reply['error']}")
                    out.times[name][side].append(reply["cpu"])
                    out.wall[name][side].append(reply["s"])
            if progress:
                print(f"  round {r + 1}/{rounds} done ({time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        for w in workers.values():
            w.close()
    return out


# ----------------------------------------------------------------------------- command line


def select(names: list[str], patterns: list[str] | None) -> list[str]:
    """The suite's names that match any pattern (all without patterns)."""
    chosen = [n for n in names if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise GateError(f"--only {' '.join(patterns or [])}: no benchmark matches (have: {', '.join(names)})")
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds per benchmark (default {DEFAULT_ROUNDS})")
    ap.add_argument("--only", nargs="+", metavar="PATTERN", help="benchmarks matching these fnmatch patterns")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                    help="fail when the median ratio is >= 1 + this and significantly > 1 (default 0.15)")
    ap.add_argument("--reference-file", type=Path, default=REFERENCE, help="default tests/perf/reference.toml")
    ap.add_argument("--repo", type=Path, default=ROOT, help="git checkout holding the reference commit")
    ap.add_argument("--json", type=Path, help="also write every round's times here")
    ap.add_argument("--plant", type=float, default=0.0,
                    help="test the gate: make the current code this fraction slower (e.g. 0.25)")
    ap.add_argument("--suite", default="perf.ab_suite", help=argparse.SUPPRESS)
    ap.add_argument("--set-reference", metavar="REV", help="pin REV as the reference and exit (commit the file)")
    ap.add_argument("--why", default="", help="with --set-reference: why (e.g. which slow-down was accepted)")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except GateError as exc:
        print(f"perf gate: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.set_reference:
        ref = set_reference(args.repo, args.set_reference, args.why, args.reference_file)
        print(f"perf gate: reference set to {ref.commit}; commit {args.reference_file}")
        return 0
    if args.rounds < 1:
        raise GateError(f"--rounds must be >= 1, got {args.rounds}")
    ref = load_reference(args.reference_file)
    why_not = unavailable(args.repo, ref.commit)
    if why_not:
        print(f"perf gate: NOT GATED: {why_not}.\n"
              f"  The gate times this code against the reference commit named in {args.reference_file}.\n"
              f"  Fetch it and run again: git fetch --unshallow  (or: git fetch origin {ref.commit})")
        return 0
    print(f"perf gate: current code ({ROOT}) against the reference {ref.commit[:12]}"
          f" ({ref.why or 'no reason recorded'}; set {ref.set_on})", flush=True)
    if args.plant:
        print(f"perf gate: PLANTED slow-down: the current side spins {args.plant:.0%} of each call's time "
              "(a test of the gate, not a measurement of the code)")
    with tempfile.TemporaryDirectory(prefix="bnbench-gate-") as tmp:
        tree = extract(args.repo, ref.commit, Path(tmp) / "reference")
        m = measure(tree, ROOT, args.only, args.rounds, suite=args.suite, plant=args.plant, logs=Path(tmp))
    for side, hello in m.code.items():
        print(f"  {side}: bench from {hello['bench']}")
    verdicts = [decide(n, t["reference"], t["current"], args.threshold) for n, t in m.times.items()]
    print("CPU seconds of each call (all threads of the worker), medians over rounds; ratio = current / reference:")
    print("\n".join(table(verdicts, args.threshold)))
    walls = {n: statistics.median(c / r for r, c in zip(t["reference"], t["current"])) for n, t in m.wall.items()}
    print("wall-clock ratios (shown, not gated): " + ", ".join(f"{n} {r:.2f}" for n, r in walls.items()))
    for name, why in m.skipped.items():
        print(f"{name:45s} not compared: {why}")
    if args.json:
        args.json.write_text(json.dumps({"reference": ref.commit, "rounds": args.rounds, "plant": args.plant,
                                         "cpu": m.times, "wall": m.wall, "skipped": m.skipped}, indent=1) + "\n")
    failed = [v.name for v in verdicts if v.failed]
    if all(v.lower == float("-inf") for v in verdicts):
        print(f"perf gate: NOT GATED: {args.rounds} rounds give no 95% bound (5 or more do)")
        return 0
    if failed:
        print(f"perf gate: FAIL: {len(failed)} benchmark(s) {args.threshold:.0%} or more slower than the "
              f"reference (median ratio), significantly (95% lower bound > 1): {', '.join(failed)}")
        return 1
    print("perf gate: pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
