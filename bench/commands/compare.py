"""``bnbench compare BASELINE CURRENT``: the CI regression gate.

Exit 0 when nothing got significantly worse than its threshold, 1 when something did,
2 on bad input. The statistics live in :mod:`reports.compare`; this module parses the
thresholds and renders the result as a terminal table, Markdown (CI summaries) or JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from bench import outputs
from bench.errors import UsageError
from bench.thresholds import parse_amount

FORMATS = ("table", "markdown", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs with a baseline; exit 1 on a significant regression (CI gate)",
        description="Match the cells of BASELINE and CURRENT by factor levels (not run_id) "
        "and compare epochs-to-target and time-to-target (permutation log-rank, "
        "censoring-aware), final validation accuracy (as counts) and time per epoch "
        "(permutation rank-sum), per cell and pooled over cells, with 95% bootstrap "
        "intervals. The tests are against the thresholds, not against zero: a metric fails "
        "only when it is significantly worse than its threshold (one-sided test of the "
        "current runs shifted by the threshold, Holm-adjusted p < --alpha) and its estimate "
        "is past it. The output says which changes the comparison can detect with 80% "
        "power. Timing metrics are skipped when the machine fingerprints differ. "
        "Exit codes: 0 pass, 1 regression, 2 bad input.",
    )
    p.add_argument("baseline", help="baseline store (.sqlite) or `bnbench export` folder")
    p.add_argument("current", help="current store (.sqlite) or `bnbench export` folder")
    p.add_argument("--grid", metavar="NAME", help="only this grid's runs on both sides")
    p.add_argument("--max-slowdown", default="10%", metavar="PCT",
                   help="allowed increase of median time per epoch (default: %(default)s)")
    p.add_argument("--max-accuracy-drop", default="0.5pp", metavar="PP",
                   help="allowed drop of median final validation accuracy, in percentage "
                   "points (default: %(default)s)")
    p.add_argument("--max-epochs-increase", default=1.0, type=float, metavar="N",
                   help="allowed increase of the KM median epochs-to-target (default: 1)")
    p.add_argument("--max-time-to-target-increase", default="auto", metavar="PCT",
                   help="allowed increase of the KM median time-to-target; 'auto' (default) "
                   "derives it per cell from the two above: (1 + max slowdown) x (1 + max epochs "
                   "increase / baseline median epochs), so it is never a stricter back door")
    p.add_argument("--alpha", default=0.05, type=float,
                   help="significance level for Holm-adjusted p-values (default: 0.05)")
    p.add_argument("--allow-different-hardware", action="store_true",
                   help="compare timings even when the machine fingerprints differ "
                        "(never between a CPU and a GPU)")
    p.add_argument("--format", choices=FORMATS, default="table", help="stdout format (default: table)")
    p.add_argument("--markdown-file", metavar="PATH", help="also write the Markdown report here")
    p.add_argument("--json-file", metavar="PATH", help="also write the JSON report here")
    p.add_argument("--resamples", type=int, default=2000, metavar="N",
                   help="bootstrap resamples per interval (default: 2000)")
    p.add_argument("--power-sims", type=int, default=100, metavar="N",
                   help="simulations per planted change for the 'can detect with 80%% power' "
                   "line (default: 100; 0 skips it)")
    p.set_defaults(func=main)


def thresholds_from(args: argparse.Namespace):
    from reports.compare import Thresholds

    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha: {args.alpha} is not in (0, 1)")
    if args.max_epochs_increase < 0:
        raise UsageError(f"--max-epochs-increase: {args.max_epochs_increase} is negative")
    return Thresholds(
        max_epochs_increase=args.max_epochs_increase,
        max_accuracy_drop=parse_amount("--max-accuracy-drop", args.max_accuracy_drop, points=True),
        max_slowdown=parse_amount("--max-slowdown", args.max_slowdown),
        max_time_to_target_increase=None if str(args.max_time_to_target_increase) == "auto"
        else parse_amount("--max-time-to-target-increase", args.max_time_to_target_increase),
        alpha=args.alpha,
    )


# -------------------------------------------------------------------------- rendering


def _seconds(v: float) -> str:
    if not math.isfinite(v):
        return "not reached" if v == math.inf else "–"
    return f"{v * 1000:.3g} ms" if v < 1 else f"{v:.3g} s"


def _level(r: dict[str, Any], which: str) -> str:
    v = r[which]
    if r["metric"] == "epochs_to_target":
        share = r.get(f"{which}_success", math.nan)
        rate = f" ({share:.0%} reached)" if isinstance(share, float) and math.isfinite(share) else ""
        return ("not reached" if v == math.inf else "–" if not math.isfinite(v) else f"{v:g}") + rate
    if r["metric"] == "final_val_acc":
        return f"{v:.2%}" if math.isfinite(v) else "–"
    return _seconds(v)


def _change(r: dict[str, Any]) -> str:
    def one(v: float, sign: bool = True) -> str:
        if math.isnan(v):
            return "?"
        if r["kind"] == "ratio":
            return f"{(v - 1) * 100:+.1f}%" if math.isfinite(v) else ("+inf" if v > 0 else "-inf")
        scale, fmt = (100, "{:+.2f}") if r["metric"] == "final_val_acc" else (1, "{:+.3g}")
        return fmt.format(v * scale) if math.isfinite(v) else ("+inf" if v > 0 else "-inf")

    if math.isnan(r["change"]):
        return "–"
    unit = " pp" if r["metric"] == "final_val_acc" else " ep" if r["metric"] == "epochs_to_target" else ""
    ci = f" [{one(r['change_low'])}, {one(r['change_high'])}]" if not math.isnan(r["change_low"]) else ""
    return f"{one(r['change'])}{unit}{ci}"


def _limit(r: dict[str, Any]) -> str:
    v = r["limit"]
    if not math.isfinite(v):
        return "–"
    if r["kind"] == "ratio":
        return f"{(v - 1) * 100:+.3g}%"
    return f"{v * 100:+.3g} pp" if r["metric"] == "final_val_acc" else f"{v:+g} ep"


def _p(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.2g}" if v >= 0.001 else f"{v:.1e}"


def table_rows(comparison) -> list[list[str]]:
    rows = []
    for r in comparison.rows.to_dict("records"):
        rows.append([r["cell"], r["label"], _level(r, "baseline"), _level(r, "current"),
                     _change(r), _limit(r), _p(r["p"]), _p(r["p_holm"]), r["verdict"]])
    return rows


HEADER = ["cell", "metric", "baseline", "current", "change [95% CI]", "limit", "p (vs limit)", "p (Holm)",
          "verdict"]


def _preamble(comparison) -> list[str]:
    t = comparison.thresholds
    hw = comparison.hardware
    lines = [
        f"baseline: {comparison.baseline}",
        f"current:  {comparison.current}",
        "hardware: " + ("same machine fingerprint " + hw["baseline"][0] if hw["same"] else
                        "DIFFERENT machine fingerprints; timing metrics "
                        + ("compared anyway (--allow-different-hardware)" if hw["timing_compared"]
                           else "SKIPPED (quality metrics only)")),
        f"fails when significantly worse than its limit: epochs-to-target +{t.max_epochs_increase:g} ep, "
        f"accuracy -{t.max_accuracy_drop * 100:g} pp, time/epoch +{t.max_slowdown:.0%}, time-to-target "
        + (f"+{t.max_time_to_target_increase:.0%}" if t.max_time_to_target_increase is not None
           else "derived per cell from the two") + f" (one-sided test vs the limit, Holm-adjusted p < {t.alpha:g})",
    ]
    if comparison.detectable:
        lines.append(power_line(comparison))
    lines += [f"warning: {w}" for w in comparison.warnings]
    if comparison.baseline_only:
        lines.append(f"warning: cells only in the baseline (not compared): {'; '.join(comparison.baseline_only)}")
    if comparison.current_only:
        lines.append(f"warning: cells only in the current runs (not compared): {'; '.join(comparison.current_only)}")
    return lines


WHAT = {"final_val_acc": "an accuracy drop of {:.3g} pp", "epochs_to_target": "{:.3g} more epochs to target",
        "epoch_s": "a slow-down of {:.3g}%"}
NAME = {"final_val_acc": "accuracy drops", "epochs_to_target": "more epochs to target", "epoch_s": "slow-downs"}


def power_line(comparison) -> str:
    """'this comparison can detect ... with 80% power' from the simulated power."""
    can, cannot = [], []
    for d in comparison.detectable:
        if math.isfinite(d.change):
            size = {"final_val_acc": -d.change * 100, "epochs_to_target": d.change,
                    "epoch_s": (d.change - 1) * 100}[d.metric]
            can.append(WHAT[d.metric].format(size) + f" ({d.multiple:g}x its limit)")
        else:
            cannot.append(f"{NAME[d.metric]} ({d.note})")
    text = "power: this comparison can detect " + ("; ".join(can) if can else "nothing listed")
    text += " with 80% power (simulated from the baseline's runs, per-cell tests: a lower bound)"
    return text + ("; it cannot detect " + "; ".join(cannot) if cannot else "")


def _verdict_line(comparison) -> str:
    if comparison.passed:
        return "PASS: no metric is significantly worse than its limit"
    reg = comparison.regressions
    what = "; ".join(f"{c}: {m}" for c, m in zip(reg["cell"], reg["label"]))
    return f"FAIL: {len(reg)} regression(s): {what}"


def render_table(comparison) -> str:
    rows = [HEADER, *table_rows(comparison)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = _preamble(comparison) + ["", fmt(HEADER), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows[1:]] + ["", _verdict_line(comparison)]
    return "\n".join(lines) + "\n"


def render_markdown(comparison) -> str:
    """The terminal table's preamble, rows and verdict through ``reports/templates/compare.md.j2``."""
    from reports.render import render_template

    rows = [dict(zip(HEADER, r)) for r in table_rows(comparison)]
    return render_template("compare.md.j2", {"passed": comparison.passed, "verdict": _verdict_line(comparison),
                                             "preamble": _preamble(comparison), "rows": rows})


def render_json(comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "json": render_json}


def main(args: argparse.Namespace) -> int:
    from reports.compare import compare_paths

    if args.resamples < 100:
        raise UsageError(f"--resamples: {args.resamples} is too few (at least 100)")
    if args.power_sims < 0:
        raise UsageError(f"--power-sims: {args.power_sims} is negative")
    thresholds = thresholds_from(args)
    comparison = compare_paths(
        args.baseline, args.current, thresholds, grid=args.grid,
        allow_different_hardware=args.allow_different_hardware, n_resamples=args.resamples,
        power_sims=args.power_sims,
    )
    for w in comparison.warnings:
        print(f"bnbench compare: warning: {w}", file=sys.stderr)
    sys.stdout.write(RENDERERS[args.format](comparison))
    if args.markdown_file:
        outputs.write_report(args.markdown_file, render_markdown(comparison))
    if args.json_file:
        outputs.write_report(args.json_file, render_json(comparison))
    return 0 if comparison.passed else 1
