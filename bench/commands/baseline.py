"""``bnbench baseline update|show``: keep a small committed store that CI compares against.

``update`` copies one grid's runs (rows and epochs, byte for byte) from a results store
into a fresh baseline file, written atomically and left in rollback-journal mode so a
committed baseline never grows ``-wal``/``-shm`` companions. ``show`` summarizes one.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

from bench.commands.common import add_store_option
from bench.errors import UsageError

#: Baselines are committed to git; warn above this size.
MAX_BASELINE_BYTES = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline",
        help="write or summarize the baseline store that `compare` gates against",
        description="Manage baseline stores for `bnbench compare` (see docs/ci.md).",
    )
    bsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    u = bsub.add_parser(
        "update",
        help="copy a grid's runs from a store into a baseline file (replacing it)",
        description="SOURCE is a grid spec (its grid's runs are taken from --store) or a "
        "store file (all runs, or --grid's). Typical use: `bnbench run SPEC --store S && "
        "bnbench baseline update SPEC --store S --baseline ablations/baselines/NAME.sqlite`.",
    )
    u.add_argument("source", metavar="SPEC_OR_STORE", help="grid spec (.toml) or store file")
    add_store_option(u)
    u.add_argument("--baseline", required=True, metavar="PATH", help="baseline file to (re)write")
    u.add_argument("--grid", metavar="NAME", help="grid to take from a store SOURCE")
    u.add_argument("--engine", metavar="NAME", help="only runs of this engine (needed when a "
                   "grid was trained with several)")
    u.set_defaults(func=update_main)
    s = bsub.add_parser("show", help="summarize a baseline (or any) store",
                        description="Runs, cells, seeds, engines, hardware and per-cell medians.")
    s.add_argument("path", metavar="PATH", help="baseline store file")
    s.set_defaults(func=show_main)


# ----------------------------------------------------------------------------- update


def _select(source: Path, args: argparse.Namespace) -> tuple[Path, str, list[str], int | None]:
    """(store, grid, run_ids, expected run count or None) for the runs to copy."""
    from bench.store import open_readonly, read_grids, read_runs

    spec = None
    if source.suffix == ".toml":
        from bench.spec import load_spec

        spec = load_spec(source)
        store, grid = Path(args.store), spec.name
    else:
        store, grid = source, args.grid
    conn = open_readonly(store)
    try:
        grids = list(read_grids(conn)["name"])
        if grid is None:
            if len(grids) != 1:
                raise UsageError(f"{store}: holds grids {', '.join(grids) or '(none)'}; name one with --grid")
            grid = grids[0]
        if grid not in grids:
            raise UsageError(f"{store}: no grid named {grid!r} (grids: {', '.join(grids) or 'none'}); "
                             "run it first with `bnbench run`")
        runs = read_runs(conn, grid)
    finally:
        conn.close()
    if spec is not None:  # the spec's cells and seeds only, whatever else the grid once held
        wanted = {(tuple(str(v) for v in c.factor_values().values()), c.seed) for c in spec.expand()}
        from bench.store import FACTOR_COLUMNS

        keys = [(tuple(str(v) for v in row[:-1]), row[-1])
                for row in runs[[*FACTOR_COLUMNS, "seed"]].itertuples(index=False)]
        runs = runs[[k in wanted for k in keys]]
        runs = runs[(runs["epochs_budget"] == spec.epochs) & (runs["target_accuracy"] == spec.target_accuracy)]
    if args.engine:
        runs = runs[runs["engine"] == args.engine]
    engines = sorted(set(runs["engine"]))
    if len(engines) > 1:
        raise UsageError(f"grid {grid!r} has runs of several engines ({', '.join(engines)}); pick one with --engine")
    if runs.empty:
        raise UsageError(f"{store}: no runs of grid {grid!r} to copy" + (f" with engine {args.engine!r}" if args.engine else ""))
    expected = len(spec.expand()) if spec is not None else None
    return store, grid, list(runs["run_id"]), expected


def write_baseline(store: Path, grid: str, run_ids: list[str], target: Path) -> int:
    """Copy the runs (and their epochs and grid row) into ``target`` atomically; its size."""
    from bench.store import Store

    if not target.parent.exists():
        raise UsageError(f"--baseline: folder {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    Store(tmp).close()  # the current schema
    conn = sqlite3.connect(f"file:{tmp}", uri=True)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (f"file:{store.resolve()}?mode=ro",))
        conn.execute("CREATE TEMP TABLE chosen (run_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO chosen VALUES (?)", [(r,) for r in run_ids])
        with conn:
            for table in ("runs", "epochs"):
                cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
                conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM src.{table} "
                             "WHERE run_id IN (SELECT run_id FROM chosen)")
            conn.execute("INSERT INTO main.grids (name, spec_toml, factors_json, n_runs, created_at) "
                         "SELECT name, spec_toml, factors_json, ?, created_at FROM src.grids WHERE name = ?",
                         (len(run_ids), grid))
            conn.execute("INSERT INTO main.grid_runs SELECT ?, run_id FROM chosen", (grid,))
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("baseline_of", str(store)), ("baseline_grid", grid),
                              ("baseline_written_at", now)])
        conn.execute("DETACH DATABASE src")
        conn.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file for git
        conn.execute("VACUUM")
    finally:
        conn.close()
    os.replace(tmp, target)
    return target.stat().st_size


def update_main(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if not source.exists():
        raise UsageError(f"{source}: no such spec or store file")
    store, grid, run_ids, expected = _select(source, args)
    target = Path(args.baseline)
    size = write_baseline(store, grid, run_ids, target)
    print(f"{target}: baseline of grid {grid!r}, {len(run_ids)} runs from {store} ({size / 1024:.0f} KiB)")
    if expected is not None and len(run_ids) < expected:
        print(f"bnbench baseline: warning: only {len(run_ids)} of the spec's {expected} runs are "
              f"in {store}; run the grid to completion first", file=sys.stderr)
    if size > MAX_BASELINE_BYTES:
        print(f"bnbench baseline: warning: {target} is {size / 1e6:.1f} MB; baselines are meant "
              "to be committed: use a smaller grid", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------- show


def show_main(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    import pandas as pd

    from bench.store import open_readonly
    from reports import stats
    from reports.load import load

    path = Path(args.path)
    data = load(path)
    conn = open_readonly(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    runs = data.runs
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB, {len(runs)} runs, "
          f"{runs['cell'].nunique() if len(runs) else 0} cell(s) x {len(data.arms)} {data.arm_word}(s), "
          f"seeds {sorted(set(runs['seed']))}")
    if "baseline_grid" in meta:
        print(f"grid {meta['baseline_grid']!r} copied from {meta.get('baseline_of')} at {meta.get('baseline_written_at')}")
    if len(runs):
        print(f"trained {runs['finished_at'].min()} .. {runs['finished_at'].max()}; engines: "
              f"{', '.join(sorted(set(runs['engine'])))}; status: "
              + ", ".join(f"{k} {v}" for k, v in runs["status"].value_counts().items()))
        for fp, group in runs.groupby("machine_fingerprint"):
            host, versions = json.loads(group["host_json"].iloc[0]), json.loads(group["versions_json"].iloc[0])
            libs = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
            print(f"machine {fp}: {host.get('cpu')}, {host.get('cores')} cores; {libs} ({len(group)} runs)")
    rows = []
    for (cell, arm), g in runs.groupby(["cell", "arm"], sort=False):
        a = g[g["analysed"]]
        rows.append({
            "cell": cell, data.arm_word: arm, "runs": len(g),
            "reached": f"{a['reached'].mean():.0%}" if len(a) else "-",
            "KM median epochs": stats.km_median(a["ett_duration"], a["reached"]) if len(a) else np.nan,
            "final val acc": np.nanmedian(a["final_val_acc"]) if a["final_val_acc"].notna().any() else np.nan,
            "time/epoch (s)": np.nanmedian(a["epoch_s_median"]) if a["epoch_s_median"].notna().any() else np.nan,
        })
    if rows:
        print()
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
