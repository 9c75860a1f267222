"""Holm families in which no comparison can be significant: the bound, and what the report says.

``reports.power.min_possible_p`` claims that no test of the comparison table can go below it;
it is checked against the tests themselves: attained by the data where every pair points one
way, never beaten by random data with and without ties, in each test's exact and approximate
branch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_store import make_spec

from reports import power, stats
from reports.render import render_report
from reports.signed_rank import EXACT_MAX_TIED, signed_rank_p

#: A p computed in floats may land an ulp or so below its exact value (the normal branch's z
#: is a ratio of sums of n terms): a relative slack of 64 eps covers n <= 60 with room.
SLACK = 1 - 64 * np.finfo(float).eps


def test_min_possible_p_is_attained_by_one_sided_data():
    """Every pair one way: McNemar reaches 2/2^n at every n, the signed-rank test up to 50
    untied pairs (its exact range); the normal branches (signed-rank above 50 untied or 16 tied
    pairs, log-rank above 16) stay at 2 Phi(-sqrt(n)), above the bound."""
    for n in range(2, 61):
        bound = power.min_possible_p(n)
        assert bound == 2.0 / 2**n
        assert stats.mcnemar_counts(0, n).p == pytest.approx(bound, rel=1e-12)
        distinct = signed_rank_p(np.arange(1.0, n + 1)[None])[0]
        equal = signed_rank_p(np.ones((1, n)))[0]  # all tied
        normal = math.erfc(math.sqrt(n / 2))
        assert distinct == pytest.approx(bound, rel=1e-12) if n <= 50 else distinct > bound
        assert equal == pytest.approx(bound if n <= EXACT_MAX_TIED else normal, rel=1e-12)
        assert stats._signflip_p(np.ones(n)) == pytest.approx(bound if n <= EXACT_MAX_TIED else normal, rel=1e-12)
        assert normal > bound or n <= EXACT_MAX_TIED  # why the normal branches never set the bound
    assert power.min_possible_p(0) == power.min_possible_p(1) == 1.0


def test_no_test_goes_below_the_bound():
    rng = np.random.default_rng(20261128)
    for n in range(2, 61):
        for digits in (0, 1, 6):  # heavy ties, some ties, none
            d = np.round(rng.normal(0.5, 1.0, size=(200, n)), digits)
            d = np.where(rng.random((200, n)) < 0.9, np.abs(d), d)  # mostly one-sided: small p
            bound = power.min_possible_p(n) * SLACK
            assert np.nanmin(signed_rank_p(d)) >= bound, (n, digits)
            assert min(stats._signflip_p(row) for row in d[:40]) >= bound, (n, digits)
        assert min(stats.mcnemar_counts(n - b, b).p for b in range(n + 1)) >= bound, n


def _family(name: str, m: int, n: int, p: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({"family": [name] * m, "n_pairs": [n] * m, "p": [p] * m})


def test_closed_exactly_where_holm_cannot_reject_the_best_case():
    """10 pairs: the best p is 2/1024, so Holm can reject in a family of 25 tests, not of 26."""
    for m in (1, 2, 25, 26, 27, 668):
        frame = _family("accuracy", m, 10)
        closed = power.closed_families(frame)
        best_case = stats.holm(np.full(m, power.min_possible_p(10)))  # every test at its best
        assert bool(closed) == (best_case.min() >= 0.05), m
    assert [f.tests for f in power.closed_families(_family("accuracy", 26, 10))] == [26]
    assert power.closed_families(_family("accuracy", 25, 10)) == []


def test_closed_families_count_only_tested_rows():
    frame = pd.concat([
        _family("accuracy", 3, 4),  # best 2/16 = 0.125 >= 0.05/3: closed
        _family("accuracy", 5, 4, p=math.nan),  # untested rows are not Holm's tests
        _family("", 40, 4),  # sensitivity rows: no family
        _family("time per epoch", 1, 6),  # best 2/64 < 0.05: open
        _family("divergence", 2, 5),  # 2/32 = 0.0625 >= 0.025: closed
    ], ignore_index=True)
    closed = power.closed_families(frame)
    assert [(f.family, f.tests, f.max_pairs) for f in closed] == [("accuracy", 3, 4), ("divergence", 2, 5)]
    assert closed[0].best_p == 0.125 and closed[0].threshold == pytest.approx(0.05 / 3)


def test_report_says_when_nothing_can_be_significant(make_store, planted_store):
    """4 seeds, 2 placements: the best p is 2/16 = 0.125, never below 0.05; 10 seeds, 2 cells x
    2 arms (the planted store): findings are possible and the report claims nothing."""
    small = make_store(make_spec(placements=["none", "after"], seeds=4))
    for fmt in ("html", "markdown"):
        text = render_report(small, fmt=fmt, n_resamples=200)
        findings = text.split("Findings", 1)[1][:3000]
        assert "No comparison can be significant in these Holm families: accuracy, " in findings
        assert "(1 test each: Holm needs p" in findings
        assert "at most 4 pairs give p ≥ 0.12" in findings, fmt
        assert "not corrected for multiplicity" in text
    planted = render_report(planted_store, fmt="markdown", n_resamples=200)
    assert "can be significant" not in planted


def test_families_of_one_size_share_a_clause():
    from reports.render import closed_families_finding

    frame = pd.concat([_family("accuracy", 668, 10), _family("time per epoch", 668, 10),
                       _family("divergence", 334, 10)], ignore_index=True)
    text = closed_families_finding(power.closed_families(frame))
    assert text.startswith("No comparison can be significant in these Holm families: accuracy and time per "
                           "epoch (668 tests each: Holm needs p < 7.5e-05; at most 10 pairs give p ≥ 0.002), "
                           "divergence (334 tests: Holm needs p < 0.00015; at most 10 pairs give p ≥ 0.002). ")
    one = closed_families_finding(power.closed_families(_family("accuracy", 1, 3)))
    assert one.startswith("No comparison can be significant in this Holm family: accuracy (1 test: Holm needs "
                          "p < 0.05; at most 3 pairs give p ≥ 0.25). ")
