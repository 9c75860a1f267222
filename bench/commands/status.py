"""``bnbench status``: what the store holds, per grid, and what a spec still needs."""

from __future__ import annotations

import argparse

from bench.commands.common import add_store_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="show the grids in a store and how many of their runs are done",
        description="List each grid in the store with its runs done / total and their "
        "statuses (ok, diverged, failed). With a SPEC, also say how many of its runs are "
        "still to train.",
    )
    p.add_argument("spec", nargs="?", help="optional grid spec: count its missing runs")
    add_store_option(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from bench.store import open_readonly
    from bench.spec import load_spec

    spec = load_spec(args.spec) if args.spec else None
    conn = open_readonly(args.store)
    # The total is the grid's own run list (grid_runs), which holds each run once and only
    # the current spec's runs, so "done" can never exceed it.
    rows = conn.execute(
        "SELECT g.name, COUNT(gr.run_id), "
        "  SUM(r.status = 'ok'), SUM(r.status = 'diverged'), SUM(r.status = 'failed') "
        "FROM grids g LEFT JOIN grid_runs gr ON gr.grid = g.name "
        "LEFT JOIN runs r ON r.run_id = gr.run_id GROUP BY g.name ORDER BY g.created_at"
    ).fetchall()
    print(f"store: {args.store}")
    if not rows:
        print("  no grids yet")
    for name, n_runs, ok, div, fail in rows:
        done = (ok or 0) + (div or 0) + (fail or 0)
        print(f"  {name}: {done}/{n_runs} runs done (ok {ok or 0}, diverged {div or 0}, failed {fail or 0})")
    if spec is not None:
        # Failed runs count as "to train": the next `bnbench run` retries them.
        stored = {r[0] for r in conn.execute("SELECT run_id FROM runs WHERE status != 'failed'")}
        missing = sum(r.run_id not in stored for r in spec.iter_runs())
        print(f"spec {args.spec} ({spec.name}): {spec.n_runs - missing}/{spec.n_runs} runs stored, "
              f"{missing} to train")
    conn.close()
    return 0
