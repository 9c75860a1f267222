"""``bnbench run SPEC``: train every run of a grid that the store does not hold yet."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack

from bench.commands.common import add_store_option
from bench.errors import UsageError
from bench.factors import reference_lines
from bench.spec import ENGINES

DEFAULT_RETRIES = 2  # bench.runner.DEFAULT_RETRIES; not imported so that --help stays fast


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train a grid spec's runs into the store (resumes where it stopped)",
        description="Expand a grid spec (TOML) into runs, skip those already in the store, "
        "train the rest and store each finished run in its own transaction. Kill it at any "
        "time; running it again finishes the grid (runs stored as failed are retried). A bad "
        "spec is rejected before any training; an edited spec under a grid name already in "
        "the store is refused (new name, or --replace).",
        epilog="factors (the [factors] table; a scalar is one level, a list several):\n"
        + "\n".join(f"  {line}" for line in reference_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help="grid spec TOML file (see ablations/)")
    add_store_option(p)
    p.add_argument(
        "--jobs", "-j", type=int, default=1, metavar="N",
        help="worker processes on this machine (default 1); TensorFlow threads per worker are "
        "pinned to cores // N unless the spec sets engine.threads; on a GPU machine worker i "
        "trains on GPU i mod #GPUs (N = the number of GPUs)",
    )
    p.add_argument("--engine", choices=ENGINES, help="override the spec's engine.name (auto: stacked "
                   "for the MLP, keras for the CNN)")
    p.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="train on a Dask cluster: tcp://HOST:PORT of a running 'dask scheduler' (see "
        "docs/distributed.md), or 'local' for a LocalCluster of --jobs single-threaded worker "
        "processes. Results stream back; only this process writes the store",
    )
    p.add_argument(
        "--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
        help="extra attempts for a task whose worker process died (killed, out of memory) "
        "before its runs are stored as failed (default %(default)s)",
    )
    p.add_argument(
        "--skip-failed", action="store_true",
        help="keep runs stored as failed instead of training them again (by default each "
        "run retries them; their attempt counts add up)",
    )
    p.add_argument(
        "--replace", action="store_true",
        help="the spec was edited: re-point the grid of that name at the new spec's runs "
        "(the old runs stay in the store, outside the grid). Without it an edited spec "
        "under an existing grid name is refused",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from bench.runner import run_grid
    from bench.spec import load_spec

    if args.jobs < 1:
        raise UsageError(f"--jobs: {args.jobs} is not a count >= 1")
    if args.retries < 0:
        raise UsageError(f"--retries: {args.retries} is not a count >= 0")
    if args.scheduler and args.scheduler != "local" and not args.scheduler.startswith(("tcp://", "tls://")):
        raise UsageError(f"--scheduler: {args.scheduler!r} is not tcp://HOST:PORT, tls://HOST:PORT or 'local'")
    spec = load_spec(args.spec)
    if args.engine:
        spec = spec.with_engine(name=args.engine)
    with ExitStack() as stack:
        source = None
        if args.scheduler:
            from bench.distributed import DaskSource

            source = stack.enter_context(DaskSource(args.scheduler, jobs=args.jobs, retries=args.retries))
        outcome = run_grid(spec, args.store, jobs=args.jobs, progress=not args.no_progress,
                           retries=args.retries, results_source=source,
                           retry_failed=not args.skip_failed, replace=args.replace)
    for line in outcome.busy_notices():
        print(f"{spec.name}: {line}", file=sys.stderr)
    print(f"{spec.name}: {outcome.summary()}; store: {args.store}", file=sys.stderr)
    return 0
