"""The report's batched paths give the numbers of their one-sample definitions, exactly.

A 10,000-run report computes its KM medians, bootstraps, tests and seed pairs for all
cells at once (``reports.stats.km_median_cis``, ``km_median_differences``,
``km_medians_resampled``, the all-cells merge of ``reports.tables.paired_runs``). Each is
checked here against the definition it replaces, sample by sample: ``intervals.interval``
(scipy's bootstrap), ``stats.km_median`` (the KM curve), ``scipy.stats.wilcoxon`` and
``bench.cells.pair`` cell by cell. Equality is exact: the batched paths perform the same
float operations (integer sums are exact in float64), so no tolerance is needed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from bench.cells import pair
from reports import intervals, stats, tables
from reports.load import load


def _samples(rng: np.random.Generator, count: int, n: int, budget: int = 10):
    """``count`` censored samples of ``n`` integer durations (about a third censored)."""
    t = rng.integers(1, budget + 3, size=(count, n))
    e = t <= budget
    return np.minimum(t, budget).astype(float), e


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_km_medians_resampled_equals_the_resamples_one_by_one():
    rng = np.random.default_rng(3)
    t, e = _samples(rng, 7, 9)
    idx = intervals.resample_indices(9, 300)
    fast = stats.km_medians_resampled(t, e, idx)
    assert fast.shape == (7, 300)
    np.testing.assert_array_equal(fast, stats.km_medians(t[:, idx], e[:, idx]))
    for c in range(2):  # and the KM-curve definition, resample by resample
        slow = [stats.km_median(t[c, i], e[c, i]) for i in idx[:60]]
        np.testing.assert_array_equal(fast[c, :60], slow)


def test_resample_indices_are_scipys_draw():
    """The index matrix is the one scipy.stats.bootstrap draws for paired data of n units."""
    seen = []
    scipy.stats.bootstrap((np.arange(7.0),), lambda i, axis=-1: seen.append(i.copy()) or i.mean(axis),
                          n_resamples=50, paired=True, vectorized=True, method="percentile",
                          rng=intervals.rng())
    np.testing.assert_array_equal(seen[0], intervals.resample_indices(7, 50))


@pytest.mark.parametrize("method_n", [4, 6, 11])
def test_km_median_cis_equal_one_interval_per_sample(method_n):
    rng = np.random.default_rng(method_n)
    t, e = _samples(rng, 5, method_n)
    t[0], e[0] = 10.0, False  # all censored: "not reached" bounds
    sizes = [(t[i], e[i]) for i in range(5)] + [(t[0][:3], e[0][:3]), (np.zeros(0), np.zeros(0, bool))]
    sizes.append((t[1].copy(), e[1].copy()))  # a repeated sample: resampled once (stats._distinct)
    batched = stats.km_median_cis(sizes, n_resamples=400)
    for (ti, ei), got in zip(sizes, batched):
        if ti.size == 0:
            assert math.isnan(got.point) and got.n == 0
            continue
        assert got.point == stats.km_median(ti, ei)
        if ti.size < stats.MIN_MEDIAN_N:
            assert math.isnan(got.low) and "6 needed" in got.note
            continue
        ref = intervals.interval((ti, ei.astype(float)), stats.km_medians, method="percentile",
                                 n_resamples=400)
        assert (got.low, got.high) == (ref.low, ref.high)


def test_km_median_differences_equal_one_interval_per_sample():
    rng = np.random.default_rng(5)
    samples, budgets = [], []
    for n in (11, 11, 8, 3, 11):
        ta, ea = _samples(rng, 1, n)
        tb, eb = _samples(rng, 1, n)
        samples.append((ta[0], ea[0], tb[0], eb[0]))
        budgets.append(10)
    samples[1] = (np.full(11, 10.0), np.zeros(11, bool), samples[1][2], samples[1][3])  # ref never
    # repeats (each distinct sample and pair is resampled once, stats._distinct): the same pair,
    # a reference shared with another sample, and a pair again under another budget
    samples += [samples[0], (*samples[0][:2], *samples[4][2:]), samples[4]]
    budgets += [10, 10, 12]
    batched = stats.km_median_differences(samples, budgets, n_resamples=400)
    for (ta, ea, tb, eb), budget, got in zip(samples, budgets, batched):
        m_ref, m_b = stats.km_median(ta, ea), stats.km_median(tb, eb)
        want = math.nan if math.isinf(m_ref) and math.isinf(m_b) else \
            (m_b if math.isfinite(m_b) else budget + 1.0) - (m_ref if math.isfinite(m_ref) else budget + 1.0)
        assert _same(got.point, want)
        if ta.size < stats.MIN_MEDIAN_N:
            assert math.isnan(got.low)
            continue
        cols = tuple(np.asarray(c, dtype=float) for c in (ta, ea, tb, eb))
        kw = {"method": "percentile", "n_resamples": 400}
        assert got.low == intervals.interval(cols, stats._km_bound(budget, upper=False), **kw).low
        assert got.high == intervals.interval(cols, stats._km_bound(budget, upper=True), **kw).high


def test_percentile_bounds_are_scipys_interval_row_by_row():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 12))
    rows = []
    for row in x:
        res = scipy.stats.bootstrap((row,), np.mean, n_resamples=500, method="percentile", rng=intervals.rng())
        rows.append((res.confidence_interval.low, res.confidence_interval.high, res.bootstrap_distribution))
    boot = np.array([r[2] for r in rows])
    low, high = intervals.percentile_bounds(boot)
    # numpy's and scipy's quantile both return (1 - g) x_(j) + g x_(j+1) (Hyndman & Fan 7) but
    # round it differently: g from index arithmetic on numbers <= n (off by <= 2 n eps), the
    # sum by a few ulps. Bound: (2 n eps) |x_(j+1) - x_(j)| + 4 eps max|x|, |x_(j+1) - x_(j)| <= 2 max|x|.
    n = boot.shape[1]
    tol = (4 * n + 4) * np.finfo(float).eps * np.abs(boot).max(axis=1)
    assert np.all(np.abs(low - [r[0] for r in rows]) <= tol) and np.all(np.abs(high - [r[1] for r in rows]) <= tol)


@pytest.mark.parametrize("n", [2, 5, 11, 20, 60])
def test_untied_wilcoxon_p_is_scipys(n):
    """The cache by (n, positive rank sum) returns scipy's own p for every untied sample."""
    rng = np.random.default_rng(n)
    for _ in range(40):
        d = rng.normal(0.2, 1.0, size=n)
        want = scipy.stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue
        assert stats.wilcoxon_p(np.zeros(n), d).p == float(want)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """Uneven seeds per cell, censoring, contended runs, shared programs: every row path."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from synthetic_store import build_store, make_spec

    spec = make_spec(placements=["none", "before", "after"],
                     factors={"activation": ["relu", "tanh"], "learning_rate": [0.01, 0.1]},
                     seeds=9, target=0.93)
    path = build_store(tmp_path_factory.mktemp("vec") / "s.sqlite", spec, through_store=False,
                       diverged=[("after", 3)], failed=[("before", 2)])
    data = load(path)
    r = data.runs
    rng = np.random.default_rng(2)
    r = r[rng.random(len(r)) > 0.1].copy()
    cells = r["cell"].unique()
    shared = r["cell"] == cells[0]
    r.loc[shared, "seeds_in_program"] = 3
    r.loc[shared, "started_at"] = "t" + (r.loc[shared, "seed"] // 3).astype(str)
    r.loc[rng.random(len(r)) < 0.1, "concurrent_workers"] = 2
    data.runs = r.reset_index(drop=True)
    return data


def test_all_cells_pairing_equals_pairing_cell_by_cell(shared_store):
    runs = shared_store.runs[shared_store.runs["analysed"]].copy()
    runs["program"] = tables.program_key(runs)
    ref = shared_store.reference
    for other in shared_store.arms[1:]:
        together = tables.paired_runs(runs, ref, other)
        for cell, cr in runs.groupby("cell", sort=False):
            one = pair(cr, ref, other, tables.PAIR_COLUMNS, on=("seed",))
            mine = together[together["cell"] == cell].drop(columns="cell").reset_index(drop=True)
            pd.testing.assert_frame_equal(mine[one.columns], one)


def test_comparison_rows_equal_the_one_cell_definitions(shared_store):
    """Each cell's rows: the row functions on that cell's own pairs, KM bootstrap unbatched."""
    table = tables.comparison_table(shared_store, n_resamples=300)
    runs = shared_store.runs[shared_store.runs["analysed"]].copy()
    runs["program"] = tables.program_key(runs)
    ref = shared_store.reference
    expected = []
    for cell, cr in runs.groupby("cell", sort=False):
        for other in shared_store.arms[1:]:
            frame = pair(cr, ref, other, tables.PAIR_COLUMNS, on=("seed",))
            frame["unit"] = frame["program_a"] + "||" + frame["program_b"]
            p = tables.Columns.of(frame)
            cols = tuple(np.asarray(frame[c], dtype=float)
                         for c in ("ett_duration_a", "reached_a", "ett_duration_b", "reached_b"))
            budget = tables._budget(p)
            kw = {"method": "percentile", "n_resamples": 300}
            m_ref, m_b = stats.km_median(cols[0], cols[1]), stats.km_median(cols[2], cols[3])
            point = math.nan if math.isinf(m_ref) and math.isinf(m_b) else \
                float(stats._km_bound(budget, upper=math.isinf(m_ref))(*cols))
            if len(p) < stats.MIN_MEDIAN_N:  # no interval of a median below 6 pairs
                diff = intervals.Interval(point, n=len(p), note=stats._few(len(p)))
            else:
                diff = intervals.Interval(
                    point, intervals.interval(cols, stats._km_bound(budget, upper=False), **kw).low,
                    intervals.interval(cols, stats._km_bound(budget, upper=True), **kw).high, n=len(p))
            found = [*tables.accuracy_rows(p), tables.test_accuracy_row(p),
                     tables.epochs_row(p, 300, diff), tables.timing_row(p)]
            if ((p["status_a"] == "diverged") | (p["status_b"] == "diverged")).any():
                found.append(tables.divergence_row(p))
            expected += [{"cell": cell, "arm": other, "reference": ref, **r} for r in found if r]
    pd.testing.assert_frame_equal(table, pd.DataFrame(expected, columns=tables.COLUMNS))
    assert (table["metric"] == "epoch_s").any() and table["p_note"].str.contains("program").any()
    assert (table.loc[table["metric"] == "epochs_to_target", "n_pairs"] < stats.MIN_MEDIAN_N).any()


def test_within_block_order_equals_the_argsort_of_block_plus_key():
    from reports.interactions import within_block_order

    rng = np.random.default_rng(5)
    codes = np.sort(rng.integers(0, 40, size=300))  # uneven blocks, some of one row
    keys = rng.random((50, codes.size))
    np.testing.assert_array_equal(within_block_order(codes, keys), np.argsort(codes + keys, axis=1))
    for blocks, size in [(30, 7), (200, 2), (2, 1100)]:  # unpadded path, pairs, argsort fallback
        even = np.repeat(np.arange(blocks), size)
        keys = rng.random((20, even.size))
        np.testing.assert_array_equal(within_block_order(even, keys),
                                      np.argsort(even + keys, axis=1, kind="stable"))
    keys[:, 1::2] = keys[:, ::2]  # tied keys: the earlier row first, as a stable sort orders them
    np.testing.assert_array_equal(within_block_order(even, keys),
                                  np.argsort(even + keys, axis=1, kind="stable"))
    pairs = np.repeat(np.arange(4), 2)
    tied = np.repeat(rng.random((3, 4)), 2, axis=1)
    np.testing.assert_array_equal(within_block_order(pairs, tied), np.tile(np.arange(8), (3, 1)))


def test_interaction_p_values_equal_the_full_sort_definition(make_store):
    """The permutation test's p-values with the full-row argsort (the definition) and with
    ``within_block_order``: equal, since both draw the same keys and order each block alike."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from synthetic_store import make_spec

    from reports import interactions as ix

    spec = make_spec(placements=["none", "after"], seeds=6,
                     factors={"activation": ["relu", "tanh", "sigmoid"], "learning_rate": [0.01, 0.03, 0.1]})
    data = load(make_store(spec, through_store=False, diverged=[("after", 3)]))
    fast = ix.interaction_tests(data, n_permutations=1500, seed=7)
    original = ix.within_block_order
    ix.within_block_order = lambda codes, keys: np.argsort(codes + keys, axis=1)
    try:
        slow = ix.interaction_tests(data, n_permutations=1500, seed=7)
    finally:
        ix.within_block_order = original
    assert len(fast) and fast["p"].notna().any()
    pd.testing.assert_frame_equal(fast, slow)


def test_summary_table_against_each_groups_own_counts_and_medians(shared_store):
    """The column-wise summary checked group by group against answers computed here from the
    group's runs with pandas and numpy (counts, success rate, medians, means), not by the
    code under test; its intervals hold their points (their arithmetic is checked against the
    one-group definition in test_batched_tables.py)."""
    data = shared_store
    table = tables.summary_table(data, n_resamples=200).set_index(["cell", "arm"])
    found = data.runs.groupby(["cell", "arm"], sort=False)
    assert len(table) == found.ngroups
    for key, g in found:
        row, a = table.loc[key], g[g["analysed"]]
        assert row["n_seeds"] == g["seed"].nunique()
        for status in ("ok", "diverged", "failed"):
            assert row[f"n_{status}"] == int((g["status"] == status).sum()), (key, status)
        reached = a["reached"].astype(bool)
        assert row["n_reached"] == int(reached.sum())
        assert _same(row["success_rate"], float(reached.mean()) if len(a) else math.nan)
        assert row["budget"] == int(g["epochs_budget"].max())
        assert _same(row["mean_ett_reached"],
                     float(a.loc[reached, "epochs_to_target"].mean()) if reached.any() else math.nan)
        assert _same(row["compile_s"], float(np.nanmedian(a["compile_s"])) if a["compile_s"].notna().any() else math.nan)
        for col in ("final_val_acc", "best_val_acc", "test_acc_at_best"):
            values = a[col].dropna().to_numpy(float)
            assert _same(row[col], float(np.median(values)) if len(values) else math.nan), (key, col)
            if len(values) > 1 and np.ptp(values) > 0:
                assert row[f"{col}_low"] <= row[col] <= row[f"{col}_high"], (key, col)
    assert table["note"].str.contains("beside other workers").any()


def test_signed_rank_p_one_row_at_a_time_equals_the_batch():
    """One row takes the cached null CDF of its sorted weights (``signed_rank._one_cdf``), a
    batch of tied rows the batched dynamic programme on the weights as they come: the same p,
    exactly, with and without ties and zeros."""
    from reports.signed_rank import signed_rank_p

    rng = np.random.default_rng(11)
    tied = rng.integers(-3, 4, size=(60, 9)).astype(float)  # ties and zeros
    plain = rng.normal(0.3, 1.0, size=(30, 9))
    tied_normal = rng.integers(-6, 7, size=(30, 20)).astype(float)  # > 16 nonzero: normal approximation
    plain_normal = rng.normal(0.3, 1.0, size=(20, 55))  # > 50 untied: normal approximation
    edge = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [2.0, -2.0, 0.0]])
    for d in (tied, plain, tied_normal, plain_normal, edge):
        batch = signed_rank_p(d)
        one = np.array([signed_rank_p(row)[0] for row in d])
        assert np.isfinite(batch).sum() >= len(d) // 2
        np.testing.assert_array_equal(one, batch)


#: The report template's table macro before ``render.html_table`` (one escape per cell).
OLD_TABLE_MACRO = """{% macro table(rows, id="") %}
{% if rows %}
<div class="scroll"><table{% if id %} id="{{ id }}"{% endif %}>
<thead><tr>{% for c in rows[0] %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for r in rows %}
<tr>{% for c in r %}<td>{{ r[c] }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
{% else %}
<p class="empty">None.</p>
{% endif %}
{% endmacro %}"""


def test_html_table_equals_the_template_loop(planted_store):
    """``html_table`` writes what the template's cell loop wrote: raw runs of a store, and
    cells that need escaping, hold the separator, are numbers or are empty."""
    from reports import render
    from reports.tables import raw_runs

    env = render._env()
    env.autoescape = True  # as for the report's .html.j2 template (strings default to off)
    old = env.from_string(OLD_TABLE_MACRO + '{{ table(rows, id) }}|{{ table([], "e") }}')
    new = env.from_string('{% macro table(rows, id="") %}\n{{ html_table(rows, id) }}{% endmacro %}'
                          '{{ table(rows, id) }}|{{ table([], "e") }}')
    odd = [{"a": '<b>"x" & \'y\'</b>', "b": 1.5, "c": ""}, {"a": "sep\x00in", "b": 2, "c": "ok\nline"},
           {"a": "–", "b": None, "c": "q"}]
    for rows, id in [(render.frame_rows(raw_runs(load(planted_store))), "raw-runs"), (odd, 'i"d'), (odd, "")]:
        want = old.render(rows=rows, id=id)
        assert "<td>" in want
        assert new.render(rows=rows, id=id) == want


def _order_bounds_loop(n: int, confidence: float = 0.95) -> tuple[int, float, float, float]:
    """``intervals.order_statistic_bounds`` as it was written before (one scipy.stats.binom cdf
    per k), with the next order's coverage too."""
    binom = scipy.stats.binom(n, 0.5)

    def cover(k: int) -> float:
        return float(binom.cdf(n - k) - binom.cdf(k - 1)) if 2 * k <= n else 0.0

    k = 0
    while cover(k + 1) >= confidence:
        k += 1
    if k == 0:
        return 0, 0.0, cover(1), math.nan
    g_k, g_next = cover(k), cover(k + 1)
    share = (g_k - confidence) / (g_k - g_next)
    return k, float((n - k) * share / (k + (n - 2 * k) * share)), g_k, g_next


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_order_statistic_bounds_vectorized_equals_the_loop(confidence):
    """The same k and, to float rounding, the same weight and coverage as scipy.stats.binom's."""
    from reports.intervals import order_statistic_bounds

    # scipy.special's incomplete beta against scipy.stats.binom's: the same function, each a few
    # ulps from exact, so a coverage (the difference of two CDFs <= 1) moves by <= 16 eps.
    du = 16 * np.finfo(float).eps
    for n in [*range(1, 80), 101, 500, 1001, 3300]:
        k, lam, cover = order_statistic_bounds(n, confidence)
        k_ref, lam_ref, g_k, g_next = _order_bounds_loop(n, confidence)
        assert k == k_ref and abs(cover - g_k) <= du, n
        if k:
            # lam = (n-k) s / (k + (n-2k) s) with s = (g_k - c) / (g_k - g_next) <= 1: s moves by
            # <= 2 du / (g_k - g_next - 2 du), lam by at most |dlam/ds| = k (n-k) / (k + (n-2k) s)^2
            # (largest at the smallest s) times that.
            s = (g_k - confidence) / (g_k - g_next)
            ds = 2 * du / (g_k - g_next - 2 * du)
            assert abs(lam - lam_ref) <= k * (n - k) / (k + (n - 2 * k) * max(s - ds, 0.0)) ** 2 * ds, n


def test_sorted_medians_are_numpys_median():
    """``intervals.median_intervals`` takes the medians' points from its one sort per size
    (``sorted_medians``, here one row at a time): numpy's median, to the bit."""
    rng = np.random.default_rng(3)
    for n in range(1, 40):
        for x in (rng.normal(size=n) * 10.0 ** rng.integers(-8, 9), rng.integers(-3, 4, n).astype(float),
                  rng.random(n) + 1e15):
            assert float(intervals.sorted_medians(np.sort(x)[None, :])[0]) == float(np.median(x)), (n, x)


def test_frame_rows_equal_the_record_by_record_definition():
    """``render.frame_rows`` formats column by column; the text equals formatting each
    record of ``to_dict("records")`` (NaN, infinities, None, numpy scalars in an object
    column, an extension dtype's NA)."""
    from reports import render

    frame = pd.DataFrame({
        "float": [1.5, np.nan, np.inf, -np.inf, 0.123456], "int": [1, 2, 3, 4, 5],
        "object": ["x|y", None, np.float64(2.5), np.int64(3), np.nan],
        "bool": [True, False, True, True, False], "Int64": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "float32": np.float32([1, 2, 3, 4, np.nan]),
    })
    def record(v):
        return render.num(v, 4) if isinstance(v, float) else ("" if v is None else str(v))
    for f in (frame, frame.iloc[:0]):
        expected = [{c: record(v) for c, v in row.items()} for row in f.to_dict("records")]
        assert render.frame_rows(f) == expected


#: The Markdown table macro as the templates had it (a loop per cell), the definition
#: ``render.md_table`` must reproduce.
_MD_TABLE_LOOP = """{%- macro table(rows, strong=()) -%}
{%- if not rows -%}
_none_
{% else -%}
| {{ rows[0].keys() | join(" | ") }} |
|{% for _ in rows[0] %}---|{% endfor %}

{% for r in rows -%}
| {% for v in r.values() %}{% if v in strong %}**{{ v | md_cell }}**{% else %}{{ v | md_cell }}{% endif %}{{ " | " if not loop.last }}{% endfor %} |
{% endfor -%}
{%- endif -%}
{%- endmacro -%}
{{ table(rows, strong) }}"""


@pytest.mark.parametrize("rows, strong", [
    ([], ()), ([{}], ()), ([{"a": "x|y", "b": 1.5}], ()),
    ([{"a": "REGRESSION", "b": "two\nlines"}, {"a": "", "b": None}], ("REGRESSION",)),
])
def test_md_table_equals_the_template_loop(rows, strong):
    import jinja2

    from reports import render

    loop = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    loop.filters["md_cell"] = render._md_cell
    expected = loop.from_string(_MD_TABLE_LOOP).render(rows=rows, strong=strong)
    macro = render._env().from_string('{%- from "table.md.j2" import table -%}\n{{ table(rows, strong) }}')
    assert macro.render(rows=rows, strong=strong) == expected
