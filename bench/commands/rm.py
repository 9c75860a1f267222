"""``bnbench rm``: remove stored runs by grid and filters (like ``asv rm``), e.g. to retrain them."""

from __future__ import annotations

import argparse
import sys

from bench.commands.common import add_store_option
from bench.errors import UsageError

#: Columns a KEY=VALUE filter may name, besides the factors.
OTHER_KEYS = ("seed", "engine", "status", "epochs_budget", "train_limit", "validation_size")

EPILOG = """\
examples:
  bnbench rm --grid placement status=failed --dry-run    # list what would go
  bnbench rm --grid placement placement=after learning_rate=0.1
  bnbench rm run_id=3f2a9c0d1e2b4a5c
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rm",
        help="remove stored runs (and their epochs) by grid and KEY=VALUE filters",
        description="Remove the runs that match every filter, with their epochs, in one\n"
        "transaction. Each removed run is printed (run_id, grid, status, seed) to stdout and\n"
        "a summary to stderr. The grids keep listing the runs, so the next 'bnbench run'\n"
        "trains them again. At least one filter is required; --dry-run changes nothing.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("filters", nargs="*", metavar="KEY=VALUE",
                   help="a factor (placement=after), seed, engine, status, run_id, ...")
    add_store_option(p)
    p.add_argument("--grid", metavar="NAME", help="only the runs this grid requested")
    p.add_argument("--dry-run", "-n", action="store_true", help="print what would be removed; change nothing")
    p.set_defaults(func=main)


def parse_filters(items: list[str], columns: list[str]) -> dict[str, str]:
    """KEY=VALUE strings -> {key: value}; unknown keys are bad input."""
    from bench.store import FACTOR_COLUMNS

    allowed = ["run_id", *FACTOR_COLUMNS, *OTHER_KEYS]
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"filter {item!r} is not KEY=VALUE")
        if key not in allowed or key not in columns:
            raise UsageError(f"filter {key!r}: unknown key (allowed: {', '.join(allowed)})")
        out[key] = value
    return out


def matching(frame, filters: dict[str, str]):
    """The rows of ``frame`` equal to every filter (numbers compared as numbers)."""
    import pandas as pd

    mask = pd.Series(True, index=frame.index)
    for key, value in filters.items():
        col = frame[key]
        if pd.api.types.is_numeric_dtype(col):
            try:
                mask &= col == float(value)
            except ValueError:
                raise UsageError(f"filter {key}={value!r}: {key} is a number") from None
        else:
            mask &= col.astype(str) == value
    return frame[mask]


def main(args: argparse.Namespace) -> int:
    from contextlib import closing

    from bench.store import Store, open_readonly, read_grids, read_runs

    if not args.filters and not args.grid:
        raise UsageError("give --grid NAME and/or KEY=VALUE filters (refusing to remove every run)")
    with closing(open_readonly(args.store)) as conn:  # matching never writes
        if args.grid is not None:
            grids = list(read_grids(conn).name)
            if args.grid not in grids:
                raise UsageError(f"--grid: no grid {args.grid!r} in {args.store} (grids: {', '.join(grids) or 'none'})")
        frame = read_runs(conn, args.grid)
    chosen = matching(frame, parse_filters(args.filters, list(frame.columns)))
    for row in chosen.itertuples():
        print(f"{row.run_id}  {row.grid}  {row.status}  seed={row.seed}")
    if args.dry_run:
        print(f"would remove {len(chosen)} runs from {args.store} (dry run: nothing changed)", file=sys.stderr)
        return 0
    removed = 0
    if len(chosen):
        with Store(args.store) as store:
            removed = store.remove_runs(chosen.run_id)
    print(f"removed {removed} runs and their epochs from {args.store}", file=sys.stderr)
    return 0
