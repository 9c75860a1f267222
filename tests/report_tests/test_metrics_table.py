"""One metric table (reports.metrics): the report, its figures, the interactions and compare read it."""

from __future__ import annotations

from reports import compare, figures, interactions, render
from reports.metrics import METRICS


def test_every_analysis_reads_the_one_table():
    for key, (label, unit, scale) in {**render.IX_METRICS, **figures.EFFECT_METRICS}.items():
        assert (label, unit, scale) == (METRICS[key].label, METRICS[key].unit, METRICS[key].scale)
    assert set(interactions.METRICS) <= set(METRICS)
    for key, m in compare.METRICS.items():
        assert m is METRICS[key]
        assert compare._row("c", m, compare._Result(*[float("nan")] * 6, "t"))["label"].startswith(m.label)


def test_directions_and_kinds():
    """Accuracy up is better, time and epochs down; times change by factors (ratios)."""
    assert [k for k, m in METRICS.items() if m.higher_is_better] == ["final_val_acc", "test_acc"]
    assert {k for k, m in METRICS.items() if m.kind == "ratio"} == {k for k, m in METRICS.items() if m.timing}
