"""``bnbench report STORE``: render the statistical report of a results store.

Reads the store read-only through the ``reports`` package (which never imports TensorFlow),
so it runs anywhere, even while a grid is still writing.
"""

from __future__ import annotations

import argparse
import atexit
import gc
from pathlib import Path

from bench import outputs
from bench.errors import UsageError

DESCRIPTION = """\
Render the report of a results store: findings in plain words, per cell x arm
summaries with 95% intervals of the median, seed-paired comparisons against the reference
arm, by default 'none' (an arm is a combination of the compared factors, by default
normalizer x placement: 'none', 'batch before', 'layer after'; a grid's [report] table may
declare others) (accuracy as counts with diverged runs at chance plus a sensitivity row; median
paired difference, P(seed improves), Wilcoxon p; divergence by exact McNemar; epochs to
target as a difference of Kaplan-Meier medians ("at least N" where censoring only bounds
it) with a seed-paired permutation log-rank test; time per epoch per program, contended
runs excluded; Holm-corrected within one family per question), figures, a methods section
generated from the data, every failed and diverged run with its error, and the raw
per-run table.

HTML is one self-contained file (inline SVG and CSS, no scripts, nothing fetched).
Markdown holds the same tables without figures, for CI logs."""

EPILOG = """\
examples:
  bnbench report results.db                      # writes report.html
  bnbench report results.db --grid placement -o placement.html
  bnbench report results.db --format markdown -o -   # to stdout
  bnbench report results.db --compare placement --reference after   # other arms
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="render the statistical HTML (or Markdown) report of a results store",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("store", metavar="STORE", help="results store (SQLite file written by 'bnbench run')")
    p.add_argument("-o", "--output", metavar="PATH", default=None,
                   help="where to write the report ('-' for stdout; default: report.html or "
                   "report.md next to the current folder)")
    p.add_argument("--grid", metavar="NAME", default=None,
                   help="only the runs this grid requested (default: every run in the store)")
    p.add_argument("--format", choices=("html", "markdown"), default=None,
                   help="html or markdown (default: markdown for an output ending in .md, "
                   "else html)")
    p.add_argument("--compare", metavar="F1,F2", default=None,
                   help="the compared factors whose combinations are the arms (default: the "
                   "grid's [report] compare, else normalizer,placement)")
    p.add_argument("--reference", metavar="ARM", default=None,
                   help="the arm every other is compared with, e.g. 'none' or 'batch before' "
                   "(default: the grid's [report] reference, else none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reports.render import render_report  # pandas/matplotlib only when reporting

    if args.format is None:  # -o report.md means Markdown
        args.format = "markdown" if (args.output or "").lower().endswith(".md") else "html"
    default = "report.html" if args.format == "html" else "report.md"
    out = args.output or default
    if out != "-":
        target = Path(out)
        if target.is_dir():
            raise UsageError(f"{target}: is a folder; give a file name for the report")
        if not target.parent.exists():
            raise UsageError(f"{target}: folder {target.parent} does not exist")
    arms = _arms(args)
    _refuse_empty(args.store, args.grid)
    text = render_report(args.store, grid=args.grid, fmt=args.format, arms=arms)
    if out == "-":
        print(text)
    else:
        outputs.write_report(out, text)  # all or nothing: a report there before stays whole
        print(f"wrote {out}")
    # When the process ends, the objects left (pandas' and scipy's modules, the caches) are
    # frozen first, so the interpreter's last collection does not free them one by one (~0.3 s,
    # a twentieth of a 10,000-run report); the OS takes the memory back. At exit, not here: a
    # caller of ``bench.cli.main`` (a notebook, the tests) keeps its collector until then.
    atexit.register(gc.freeze)
    return 0


def _arms(args: argparse.Namespace):
    """``--compare``/``--reference`` as ``bench.cells.Arms`` (None: what the grid declares)."""
    if args.compare is None and args.reference is None:
        return None
    from bench.cells import Arms
    from bench.factors import SpecError

    compare = None if args.compare is None else [c.strip() for c in args.compare.split(",")]
    try:
        return Arms.parse(compare, args.reference, key="--report")
    except SpecError as exc:
        raise UsageError(str(exc).replace("--report.", "--", 1)) from None


def _refuse_empty(store: str, grid: str | None) -> None:
    """A store (or grid) without runs has nothing to report: say so instead of an empty report."""
    from contextlib import closing

    from bench.store import count_runs, open_readonly

    if Path(store).is_dir():
        return  # the report's loader names that problem
    with closing(open_readonly(store)) as conn:
        n = count_runs(conn, grid)  # None: an unknown grid, which the loader names with the known ones
    if n == 0:
        where = f"grid {grid!r} in {store}" if grid else store
        raise UsageError(f"{where}: nothing to report (no runs stored yet; 'bnbench run SPEC' first)")
