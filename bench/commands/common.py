"""Arguments several subcommands share."""

from __future__ import annotations

import argparse
import os

DEFAULT_STORE = os.environ.get("BNBENCH_STORE", "results/bnbench.sqlite")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="PATH",
        help="results store (SQLite file; default: $BNBENCH_STORE or %(default)s)",
    )
