"""``bnbench history add|report``: metrics over commits, and the step changes among them.

``add`` summarizes a gate run's store and/or a pytest-benchmark JSON and appends the
summaries, tagged with the commit, its date, the branch and the machine fingerprint, to a
history store (SQLite). ``report`` draws every metric over commits and finds its steps.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import datetime, timezone

from bench import outputs
from bench.errors import UsageError

DEFAULT_HISTORY = os.environ.get("BNBENCH_HISTORY", "results/history.sqlite")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="keep per-commit metric summaries and report step changes over commits",
        description="Track metrics over commits. 'add' appends one commit's summaries (from "
        "a gate run's store and/or a pytest-benchmark JSON); 'report' draws each metric over "
        "commits per machine, with its 95% band and the step changes found (PELT).",
    )
    hs = p.add_subparsers(dest="history_command", metavar="ACTION", required=True)

    add = hs.add_parser("add", help="append one commit's summaries to the history",
                        description="Summarize a results store (median final accuracy, median "
                        "time per epoch, KM median epochs to target, per grid/cell/arm, with "
                        "95% intervals) and/or a pytest-benchmark JSON, and append them for one "
                        "commit. Adding the same commit again replaces its summaries.")
    add.add_argument("--history", default=DEFAULT_HISTORY, metavar="PATH",
                     help="history store (default: $BNBENCH_HISTORY or %(default)s)")
    add.add_argument("--store", metavar="PATH", help="results store of a gate run to summarize")
    add.add_argument("--grid", metavar="NAME", help="only this grid of --store")
    add.add_argument("--perf", metavar="JSON", help="pytest-benchmark JSON (--benchmark-json) to summarize")
    add.add_argument("--commit", help="commit id (default: $GITHUB_SHA, $CI_COMMIT_SHA or git HEAD)")
    add.add_argument("--date", help="commit date, ISO 8601 (default: the commit's date from git, else now)")
    add.add_argument("--branch", help="branch (default: $GITHUB_REF_NAME, $CI_COMMIT_REF_NAME or git's)")
    add.set_defaults(func=main_add)

    rep = hs.add_parser("report", help="HTML page or Markdown summary of the history",
                        description="Each metric over commits, separately per machine fingerprint, "
                        "with 95% bands and the step changes found, each with its size, interval "
                        "and commit range.")
    rep.add_argument("--history", default=DEFAULT_HISTORY, metavar="PATH",
                     help="history store (default: $BNBENCH_HISTORY or %(default)s)")
    rep.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    rep.add_argument("--format", choices=["html", "markdown"], default="html", help="default: html")
    rep.add_argument("--branch", metavar="NAME", help="only commits recorded on this branch")
    rep.add_argument("--compare-url", metavar="TEMPLATE",
                     help="link for a commit range, with {from} and {to} (default: GitHub's or "
                     "GitLab's compare page when run in their CI, else no link)")
    rep.set_defaults(func=main_report)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def commit_info(commit: str | None, date: str | None, branch: str | None) -> tuple[str, str, str]:
    """(commit, ISO date, branch) from the options, the CI's variables or git."""
    commit = commit or os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA") or _git("rev-parse", "HEAD")
    if not commit:
        raise UsageError("--commit: not given, and not in a git checkout or CI")
    if date:
        try:
            datetime.fromisoformat(date.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--date: {date!r} is not an ISO 8601 date") from None
    else:
        date = _git("show", "-s", "--format=%cI", commit) or datetime.now(timezone.utc).isoformat(timespec="seconds")
    branch = (branch or os.environ.get("GITHUB_REF_NAME") or os.environ.get("CI_COMMIT_REF_NAME")
              or _git("rev-parse", "--abbrev-ref", "HEAD") or "")
    return commit, date, branch


def main_add(args: argparse.Namespace) -> int:
    from bench.history_store import Point, add_points
    from bench.host import host_info, library_versions, machine_fingerprint
    from reports.history import summarize_benchmarks, summarize_store

    if not args.store and not args.perf:
        raise UsageError("history add: give --store (a gate run) and/or --perf (a benchmark JSON)")
    commit, date, branch = commit_info(args.commit, args.date, args.branch)
    summaries = summarize_store(args.store, args.grid) if args.store else []
    if args.perf:
        summaries += summarize_benchmarks(args.perf, machine_fingerprint(host_info(), library_versions()))
    points = [Point(commit, date, branch, **s) for s in summaries]
    n = add_points(args.history, points)
    print(f"history: {n} summaries of commit {commit[:10]} ({branch or 'no branch'}) -> {args.history}",
          file=sys.stderr)
    return 0


def main_report(args: argparse.Namespace) -> int:
    from bench.history_store import read_points
    from reports.history_report import build, render_html, render_markdown

    points = read_points(args.history)
    if args.branch:
        points = points[points["branch"] == args.branch]
    if not len(points):
        raise UsageError(f"--history: {args.history} has no points" + (f" on branch {args.branch!r}"
                                                                         if args.branch else ""))
    built = build(points, args.compare_url)
    text = render_html(built) if args.format == "html" else render_markdown(built)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        outputs.write_text(args.output, text)  # all or nothing: a page there before stays whole
    except OSError as exc:
        raise UsageError(f"--output: cannot write {args.output} ({exc.strerror})") from None
    print(args.output)
    return 0
