"""The ``bnbench`` command line. Each subcommand lives in ``bench/commands/<name>.py``.

A command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed args and returning an exit code. Exit codes:
0 success, 1 a gate failed (e.g. ``compare`` found a regression), 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["run", "status", "rm", "report", "export", "plan", "compare", "baseline", "history"]

EXIT_OK, EXIT_GATE, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnbench",
        description="Benchmark and ablation harness for batch normalization: run grids of "
        "seeds x placements x factors, store every epoch, report the statistics.",
    )
    parser.add_argument("--version", action="version", version=f"bnbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bench.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"bnbench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"bnbench {args.command}: interrupted; finished runs are in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
