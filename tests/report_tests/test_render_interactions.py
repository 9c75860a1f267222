"""The report's Interactions and Ranking sections: a planted interaction is shown and put into words."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/interaction_helpers.py

from interaction_helpers import build_interaction_store  # noqa: E402
from synthetic_store import make_spec  # noqa: E402

from reports.render import interaction_finding, render_report  # noqa: E402

FAST = {"n_resamples": 200, "n_permutations": 1000}
#: BN after the activation: +3 pp at lr 0.001, +0.5 pp at lr 0.1; BN before: +1 pp at both.
PLANTED = {0.001: {"none": 0.0, "before": 0.01, "after": 0.03},
           0.1: {"none": 0.0, "before": 0.01, "after": 0.005}}
AFTER = (r"The effect of BN after the activation on final validation accuracy depends on "
         r"learning_rate: \+(\d+\.\d) pp \[(\d+\.\d), (\d+\.\d)\] at 0\.001 vs "
         r"\+(\d+\.\d) pp \[(−?\d+\.\d), (\d+\.\d)\] at 0\.1 "
         r"\(permutation test within seeds, Holm p = [\d.e-]+\)\.")


@pytest.fixture(scope="module")
def two_factor(tmp_path_factory):
    path = tmp_path_factory.mktemp("ixr") / "two.sqlite"
    build_interaction_store(path, effects=PLANTED, seeds=6, extra_factors={"activation": ["relu", "tanh"]})
    return path


@pytest.fixture(scope="module")
def html(two_factor):
    return render_report(two_factor, **FAST)


@pytest.fixture(scope="module")
def md(two_factor):
    return render_report(two_factor, fmt="markdown", **FAST)


def _section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}">')[1].split("</section>")[0]


def test_html_has_interactions_and_ranking_sections(html):
    for name, title in (("interactions", "Interactions"), ("ranking", "Ranking of placements")):
        assert f'<section id="{name}">' in html
        assert f'<a href="#{name}">{title}</a>' in html
    ix = _section(html, "interactions")
    assert ix.count("<svg") == 1 and "95% bootstrap interval" in ix
    assert 'id="effect-by-level-table"' in ix and 'id="interaction-test-table"' in ix
    assert "learning_rate" in ix and "activation" in ix
    rk = _section(html, "ranking")
    assert 'id="improvement-table"' in rk and 'id="profile-table"' in rk
    assert "within 0.5 pp" in rk


def test_planted_interaction_is_a_finding_with_covering_intervals(html, md):
    findings = _section(html, "findings")
    m = re.search(AFTER, findings)
    assert m, findings[:3000]
    d1, lo1, hi1, d2, lo2, hi2 = (float(g.replace("−", "-")) for g in m.groups())
    assert lo1 <= 3.0 <= hi1 and lo2 <= 0.5 <= hi2
    assert re.search(AFTER, md)
    # BN before has no planted interaction: no finding of the permutation test about it.
    assert "The effect of BN before the activation on final validation accuracy depends" not in findings
    # interaction findings come before the per-cell comparisons
    assert findings.index("The effect of BN after") < findings.index("In activation=")


def test_interaction_test_table_flags_the_planted_pair(html):
    table = html.split('id="interaction-test-table"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows]
    by_key = {tuple(c[:3]): c for c in cells if c}
    after = by_key[("final validation accuracy", "learning_rate", "after − none")]
    assert after[-1] == "yes" and float(after[5]) < 0.05  # Holm p
    before = by_key[("final validation accuracy", "learning_rate", "before − none")]
    assert float(before[5]) >= 0.05


def test_markdown_has_the_sections_and_tables(md):
    for heading in ("## Interactions", "### Interaction tests (", "## Ranking of placements",
                    "### Performance profile (final validation accuracy)"):
        assert heading in md
    assert "| metric | factor | level | comparison | pairs | median paired diff [95% CI] | note |" in md
    assert "| metric | placement | versus | seed pairs | cells | P(improvement) [95% CI] |" in md
    assert md.index("## Interactions") < md.index("## Ranking of placements") < md.index("## Methods")
    assert "<svg" not in md


def test_methods_name_the_tests_and_the_diverged_policy(html):
    methods = _section(html, "methods")
    for words in ("permutation test", "1000 random reassignments", "Holm-corrected across the",
                  "Probability of improvement", "ties counting one half", "Performance profile",
                  "keep their recorded final accuracy", "drops its pair"):
        assert words in methods, words


def test_single_factor_grid_has_ranking_but_no_interactions(make_store):
    path = make_store(make_spec(placements=["none", "before", "after"], seeds=5))
    html = render_report(path, **FAST)
    assert '<section id="interactions">' not in html and 'href="#interactions"' not in html
    assert '<section id="ranking">' in html
    assert "permutation test" not in html
    assert "Probability of improvement" in _section(html, "methods")
    md = render_report(path, fmt="markdown", **FAST)
    assert "## Interactions" not in md and "## Ranking of placements" in md
    assert "| after | none |" in md


def test_one_placement_has_neither_section(make_store):
    path = make_store(make_spec(placements=["none"], factors={"activation": ["relu", "tanh"]}, seeds=3))
    html = render_report(path, **FAST)
    assert '<section id="interactions">' not in html and '<section id="ranking">' not in html


def _frames(effects_rows, p_holm, reference="none"):
    effects = pd.DataFrame([{"factor": "learning_rate", "arm": "before", "reference": reference,
                             "metric": m, "level": lv, "diff": d, "diff_low": lo, "diff_high": hi}
                            for m, lv, d, lo, hi in effects_rows])
    test = pd.Series({"factor": "learning_rate", "arm": "before", "reference": reference,
                      "metric": effects_rows[0][0], "p_holm": p_holm})
    return test, effects


def _words(arm: str) -> str:
    """The report's words for placement-only arms (BN everywhere)."""
    from reports.load import StoreData

    levels = {"none": {"placement": "none"}, "before": {"normalizer": "batch", "placement": "before"},
              "after": {"normalizer": "batch", "placement": "after"}}
    empty = pd.DataFrame()
    return StoreData(Path("x"), None, empty, empty, empty, [], list(levels), arm_levels=levels).arm_words(arm)


def test_finding_wording():
    test, effects = _frames([("final_val_acc", 0.001, 0.109, 0.086, 0.112),
                             ("final_val_acc", 0.01, 0.05, 0.04, 0.06),
                             ("final_val_acc", 0.1, 0.001, -0.005, 0.010)], 0.0008)
    assert interaction_finding(test, effects, _words) == (
        "The effect of BN before the activation on final validation accuracy depends on "
        "learning_rate: +10.9 pp [8.6, 11.2] at 0.001 vs +0.1 pp [−0.5, 1.0] at 0.1 "
        "(permutation test within seeds, Holm p = 0.0008).")
    test, effects = _frames([("epochs_to_target", 0.001, -1.0, -2.0, -1.0),
                             ("epochs_to_target", 0.1, -0.0001, 0.0, 0.0)], 0.004, reference="after")
    assert interaction_finding(test, effects, _words) == (
        "The effect of BN before the activation (vs BN after the activation) on epochs to target "
        "depends on learning_rate: −1.0 epochs [−2.0, −1.0] at 0.001 vs +0.0 epochs [0.0, 0.0] at 0.1 "
        "(permutation test within seeds, Holm p = 0.004).")
