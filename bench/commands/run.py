"""``bnbench run SPEC``: train every run of a grid that the store does not hold yet."""

from __future__ import annotations

import argparse
import sys

from bench.commands.common import add_store_option
from bench.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train a grid spec's runs into the store (resumes where it stopped)",
        description="Expand a grid spec (TOML) into runs, skip those already in the store, "
        "train the rest and store each finished run in its own transaction. Kill it at any "
        "time; running it again finishes the grid. A bad spec is rejected before any training.",
    )
    p.add_argument("spec", help="grid spec TOML file (see ablations/)")
    add_store_option(p)
    p.add_argument(
        "--jobs", "-j", type=int, default=1, metavar="N",
        help="worker processes on this machine (default 1); TensorFlow threads per worker are "
        "pinned to cores // N unless the spec sets engine.threads",
    )
    p.add_argument("--engine", choices=["keras", "stacked"], help="override the spec's engine.name")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from bench.runner import run_grid
    from bench.spec import load_spec

    if args.jobs < 1:
        raise UsageError(f"--jobs: {args.jobs} is not a count >= 1")
    spec = load_spec(args.spec)
    if args.engine:
        spec = spec.with_engine(name=args.engine)
    outcome = run_grid(spec, args.store, jobs=args.jobs, progress=not args.no_progress)
    print(f"{spec.name}: {outcome.summary()}; store: {args.store}", file=sys.stderr)
    return 0
