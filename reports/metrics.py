"""The one table of metrics the report, its figures, the interaction analysis and ``compare`` read.

A metric's words and units live here once, so a label or a direction cannot differ between
the report's tables, its figures and the gate. What each analysis computes from a metric
(its summary statistic, its Holm family, the column it ranks) stays with that analysis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # column of the runs table
    label: str  # words for tables and figures
    unit: str  # the unit a shown change is in
    scale: float  # multiply a stored difference by this to show it in ``unit`` (fractions -> pp)
    higher_is_better: bool
    timing: bool  # a time: measured per program, compared only between comparable machines
    kind: str  # how a change is stated: "diff" (b - a) or "ratio" (b / a; times change by factors)


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("final_val_acc", "final validation accuracy", "pp", 100.0, True, False, "diff"),
        Metric("test_acc", "test accuracy at the best-validation epoch", "pp", 100.0, True, False, "diff"),
        Metric("epochs_to_target", "epochs to target", "epochs", 1.0, False, False, "diff"),
        Metric("epoch_s", "time per epoch", "s", 1.0, False, True, "ratio"),
        Metric("time_to_target_s", "time to target", "s", 1.0, False, True, "ratio"),
    )
}
