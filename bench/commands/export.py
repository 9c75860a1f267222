"""``bnbench export``: the store's runs and epochs as CSV or Parquet for other tools, or the
per-epoch curves as TensorBoard event files (:mod:`bench.tensorboard_export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import add_store_option
from bench.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write the store's runs and epochs as CSV or Parquet, or curves for TensorBoard",
        description="Write runs.<ext> (one row per run, every factor a column) and "
        "epochs.<ext> (one row per run and epoch) into a folder. --format tensorboard writes "
        "one event file per run instead, in DIR/<grid>/<cell>/<arm>/seed_<n>, with the "
        "per-epoch losses, accuracies and epoch times (view: tensorboard --logdir DIR).",
    )
    add_store_option(p)
    p.add_argument("-o", "--output", default="export", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--format", choices=["csv", "parquet", "tensorboard"], default="csv",
                   help="file format (default: csv)")
    p.add_argument("--grid", metavar="NAME", help="only this grid's runs")
    p.set_defaults(func=main)


def export_store(store: str, output: str | Path, fmt: str = "csv", grid: str | None = None) -> list[Path]:
    """Write runs and epochs tables; returns the files written."""
    from bench.store import open_readonly, read_epochs, read_runs

    conn = open_readonly(store)
    try:
        tables = {"runs": read_runs(conn, grid), "epochs": read_epochs(conn, grid)}
    finally:
        conn.close()
    if grid is not None and tables["runs"].empty:
        raise UsageError(f"--grid: no runs for grid {grid!r} in {store}")
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output: cannot create {out} ({exc.strerror})") from None
    written: list[Path] = []
    try:
        for name, frame in tables.items():
            path = out / f"{name}.{fmt}"
            written.append(path)
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
    except OSError as exc:  # read-only folder, full disk: no half export left behind
        for path in written:
            path.unlink(missing_ok=True)
        raise UsageError(f"--output: cannot write {path} ({exc.strerror or exc})") from None
    return written


def main(args: argparse.Namespace) -> int:
    if args.format == "tensorboard":
        from bench.tensorboard_export import export_tensorboard

        folders = export_tensorboard(args.store, args.output, args.grid)
        print(f"{len(folders)} runs -> {args.output} (tensorboard --logdir {args.output})")
        return 0
    for path in export_store(args.store, args.output, args.format, args.grid):
        print(path)
    return 0
