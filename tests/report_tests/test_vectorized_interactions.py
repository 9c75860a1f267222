"""The interaction and ranking analyses' batched paths give their definitions' numbers.

``reports.interactions`` sums a full factorial's shuffled differences by level with a
reduction over blocks instead of a one-hot matrix product, pairs runs by integer keys
instead of a pandas merge, and splits pairs by level with numpy instead of ``groupby``.
Each is checked here against the code it replaced (kept below as the definition) on seeded
data with ties, missing values, unequal and shuffled blocks. The permutation p-values and
the statistic are equal: the permuted statistics may differ in their last bits (the sums run
in another order), which the test's tie margin ``interactions._rounding_bound`` (the most two
computed values of the statistic can differ by, in any summation order) absorbs; the observed
statistic is a sequential sum per level instead of a BLAS product, whose order depends on the
CPU's kernel, so it is compared within that same bound.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.cells import PairingError
from reports import interactions as ix
from reports import stats


def _definition(d, levels, blocks, n_permutations, seed):
    """``permutation_interaction_p`` as first written: each permutation a stable sort of the
    rows by (block, key), the level sums a product with the one-hot level matrix."""
    d = np.asarray(d, float)
    keep = np.isfinite(d)
    d, levels, blocks = d[keep], np.asarray(levels)[keep], np.asarray(blocks)[keep]
    _, codes = np.unique(levels, return_inverse=True)
    _, block_codes = np.unique(blocks, return_inverse=True)
    k = codes.max() + 1 if codes.size else 0
    if k < 2 or d.size < 3:
        return math.nan, math.nan, math.inf
    order = np.argsort(block_codes, kind="stable")
    d, codes, block_codes = d[order], codes[order], block_codes[order]
    d = d - (np.bincount(block_codes, d) / np.bincount(block_codes))[block_codes]
    onehot = (codes[:, None] == np.arange(k)).astype(float)
    n_l = onehot.sum(0)

    def ss(values):
        return ((values @ onehot / n_l) ** 2 * n_l).sum(-1)

    observed = float(ss(d[None, :])[0])
    rounding = ix._rounding_bound(d, int(k))
    if observed <= rounding:
        return observed, 1.0, rounding
    rng = stats._rng(seed)
    exceed = 0
    for start in range(0, n_permutations, 1000):
        keys = rng.random((min(1000, n_permutations - start), d.size))
        perms = np.array([np.lexsort((row, block_codes)) for row in keys])  # exact, stable
        exceed += int((ss(d[perms]) >= observed - rounding).sum())
    return observed, (1.0 + exceed) / (1.0 + n_permutations), rounding


def _same(got, want):
    """Same p-value exactly, same statistic up to the summation order (see the module)."""
    return got[1] == want[1] and abs(got[0] - want[0]) <= want[2]


def _factorial(rng, n_blocks, n_levels, same_layout, discrete):
    """Differences of ``n_blocks`` blocks each holding every level once: with ``same_layout``
    the levels in one (not sorted) order in every block, blocks listed in a random order;
    else the rows in a random order (so each block has its own order of levels)."""
    if same_layout:
        levels = np.tile(rng.permutation(n_levels), n_blocks)
    else:
        levels = np.concatenate([rng.permutation(n_levels) for _ in range(n_blocks)])
    blocks = np.repeat(rng.permutation(n_blocks) * 7 + 3, n_levels)  # codes need not be 0..B-1
    effect = 0.3 * (levels == 1)
    d = rng.integers(-3, 4, blocks.size).astype(float) if discrete else rng.normal(0, 1, blocks.size)
    d = d + effect + np.repeat(rng.normal(0, 1, n_blocks), n_levels)  # a block (seed) effect
    order = np.arange(blocks.size) if same_layout else rng.permutation(blocks.size)
    return d[order], levels[order] * 0.01 + 0.001, blocks[order]


@pytest.mark.parametrize("n_levels", [2, 3, 7])
@pytest.mark.parametrize("same_layout", [False, True])
@pytest.mark.parametrize("discrete", [False, True])
def test_factorial_level_sums_give_the_definitions_p_value(n_levels, same_layout, discrete):
    rng = np.random.default_rng(100 * n_levels + 10 * same_layout + discrete)
    d, levels, blocks = _factorial(rng, 23, n_levels, same_layout, discrete)
    for seed in (1, 2):
        got = ix.permutation_interaction_p(d, levels, blocks, n_permutations=1500, seed=seed)
        assert _same(got, _definition(d, levels, blocks, 1500, seed))
    if discrete:  # many exact ties with the observed statistic: the margin must count them alike
        tied = np.round(d)
        assert _same(ix.permutation_interaction_p(tied, levels, blocks, n_permutations=999, seed=3),
                     _definition(tied, levels, blocks, 999, 3))


def test_fallbacks_give_the_definitions_p_value():
    """Missing values (a block loses a level), uneven blocks, one block (``blocks=None``),
    and levels repeated within a block take the one-hot product: the same p."""
    rng = np.random.default_rng(8)
    d, levels, blocks = _factorial(rng, 15, 4, True, False)
    d[[2, 17, 30]] = np.nan
    cases = [(d, levels, blocks), (d[5:], levels[5:], blocks[5:]),
             (rng.normal(size=30), rng.integers(0, 3, 30), None),
             (rng.normal(size=40), np.tile([0, 0, 1, 1], 10), np.repeat(np.arange(10), 4))]
    for d_, levels_, blocks_ in cases:
        blocks_ = np.zeros(d_.size, int) if blocks_ is None else blocks_
        assert _same(ix.permutation_interaction_p(d_, levels_, blocks_, n_permutations=1200, seed=4),
                     _definition(d_, levels_, blocks_, 1200, 4))


# ----------------------------------------------------------------------------- pairing, levels

def _merge_pairs(runs, reference, other, column):
    """``paired_frame`` as first written: an inner merge on cell and seed."""
    keep = [c for c in runs.columns if c != "arm"]
    a = runs.loc[runs["arm"] == reference, ["cell", "seed", column]]
    b = runs.loc[runs["arm"] == other, keep]
    pairs = b.merge(a, on=["cell", "seed"], suffixes=("", "_ref"))
    pairs["d"] = pairs[column].astype(float) - pairs[f"{column}_ref"].astype(float)
    return pairs


@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """3 placements x 2 activations x 3 learning rates x 6 seeds, one diverged and one failed
    seed, and a seventh of the runs dropped: unmatched pairs in every arm."""
    from synthetic_store import build_store, make_spec

    from reports.load import load

    spec = make_spec(placements=["none", "before", "after"], seeds=6,
                     factors={"activation": ["relu", "tanh"], "learning_rate": [0.01, 0.03, 0.1]})
    data = load(build_store(tmp_path_factory.mktemp("gappy") / "s.sqlite", spec, through_store=False,
                            diverged=[("after", 3)], failed=[("before", 2)]))
    data.runs = data.runs.drop(index=data.runs.index[::7]).reset_index(drop=True)
    return data


def test_paired_frame_equals_the_merge(gappy):
    import pandas as pd

    runs = ix._analysed(gappy, None)
    assert len(gappy.arms) == 3
    for reference in gappy.arms:
        for other in gappy.arms:
            for column in ix.METRICS.values():
                pd.testing.assert_frame_equal(ix.paired_frame(runs, reference, other, column),
                                              _merge_pairs(runs, reference, other, column), check_exact=True)


def test_effects_by_level_equal_the_groupby_definition(gappy):
    """``bn_effect_by_level`` splits pairs by level with numpy; the definition grouped the
    merged frames with pandas."""
    import pandas as pd

    from reports.intervals import Interval

    runs = ix._analysed(gappy, 0.1)
    rows = []
    for arm in gappy.arms[1:]:
        for metric, column in ix.METRICS.items():
            pairs = _merge_pairs(runs, gappy.reference, arm, column)
            for factor in gappy.cell_factors:
                for level, g in pairs.groupby(factor, sort=True):
                    d = g["d"].to_numpy(float)
                    finite = np.isfinite(d)
                    if metric == "epochs_to_target" and not (g[column] <= g["epochs_budget"]).any() \
                            and not (g[f"{column}_ref"] <= g["epochs_budget"]).any():
                        est, note = Interval(math.nan, n=int(finite.sum())), "no run reached the target"
                    else:
                        est = stats.bootstrap_ci(d[finite], n_resamples=200, seed=1)
                        note = est.note
                    rows.append({"factor": factor, "level": level, "arm": arm, "reference": gappy.reference,
                                 "metric": metric, "n_pairs": int(finite.sum()), "n_dropped": int((~finite).sum()),
                                 "diff": est.point, "diff_low": est.low, "diff_high": est.high, "note": note})
    got = ix.bn_effect_by_level(gappy, diverged_value=0.1, n_resamples=200, seed=1)
    assert (got["note"] == "no run reached the target").any() or got["n_pairs"].gt(0).all()
    pd.testing.assert_frame_equal(got, pd.DataFrame(rows, columns=got.columns), check_exact=True)


def test_probability_of_improvement_equals_the_merged_pairs(gappy):
    import pandas as pd

    runs = ix._analysed(gappy, None)
    for metric, column in ix.METRICS.items():
        higher = metric == "final_val_acc"
        rows = []
        for a in gappy.arms:
            for b in gappy.arms:
                if a != b:
                    pairs = _merge_pairs(runs, b, a, column)
                    d = pairs["d"].to_numpy(float)
                    keep = np.isfinite(d)
                    d, cells, seeds = d[keep], pairs["cell"].to_numpy()[keep], pairs["seed"].to_numpy()[keep]
                    est = ix.seed_clustered_proportion(0.5 * (1 + np.sign(d if higher else -d)), seeds)
                    rows.append({"arm": a, "versus": b, "metric": metric, "n_pairs": int(d.size),
                                 "n_cells": int(np.unique(cells).size), "n_seeds": int(np.unique(seeds).size),
                                 "p_improve": est.point, "low": est.low, "high": est.high})
        got = ix.probability_of_improvement(gappy, metric=metric)
        pd.testing.assert_frame_equal(got, pd.DataFrame(rows, columns=got.columns), check_exact=True)


# ----------------------------------------------------------------------------- loading

def test_load_keeps_the_settings_and_joins_epochs_as_the_merge(gappy, tmp_path):
    import sqlite3

    import pandas as pd

    from bench.cells import settings_frame
    from bench.store import read_epochs
    from reports.load import _with_runs, load

    data = load(gappy.path)
    pd.testing.assert_frame_equal(data.settings, settings_frame(data.runs), check_exact=True)
    cols = ["cell", "arm", "placement", "seed", "status"]
    some = data.runs.iloc[::3]  # epochs of runs that are not listed drop out, as in an inner merge
    raw = data.epochs[["run_id", "epoch", "val_acc", "epoch_s"]]
    pd.testing.assert_frame_equal(_with_runs(raw, some, cols),
                                  raw.merge(some[["run_id", *cols]], on="run_id", how="inner"))
    conn = sqlite3.connect(f"file:{gappy.path}?mode=ro", uri=True)
    try:
        ordered = pd.read_sql_query("SELECT * FROM epochs ORDER BY run_id, epoch", conn)
        pd.testing.assert_frame_equal(read_epochs(conn), ordered, check_exact=True)
    finally:
        conn.close()


def test_frame_rows_of_text_and_unsigned_columns_equal_the_records():
    import pandas as pd

    from reports import render

    frame = pd.DataFrame({"text": ["a|b", "", "ü", "x", "3.5"], "uint": np.uint8([0, 1, 2, 3, 255]),
                          "bool": [True, False, True, False, True]})
    expected = [{c: (render.num(v, 4) if isinstance(v, float) else str(v)) for c, v in row.items()}
                for row in frame.to_dict("records")]
    assert render.frame_rows(frame) == expected


def test_one_block_of_many_levels_gives_the_definitions_p_value():
    """1,100 levels once each in one block: positions do not fit beside a 53-bit key, so the
    general path (argsort) runs."""
    rng = np.random.default_rng(11)
    d, levels = rng.normal(size=1100), rng.permutation(1100)
    blocks = np.zeros(1100, int)
    assert _same(ix.permutation_interaction_p(d, levels, blocks, n_permutations=60, seed=2),
                 _definition(d, levels, blocks, 60, 2))


def test_labels_per_distinct_row_equal_the_row_by_row_definitions(gappy):
    """``bench.cells`` writes a label once per distinct combination of settings; the labels
    equal joining every run's own settings (the definition), and ``_varies`` is ``nunique > 1``."""
    import pandas as pd

    from bench import cells

    rng = np.random.default_rng(4)
    s = pd.DataFrame({c: rng.choice(["a", "b", "0.1", "unknown"][:k], 300) for c, k in
                      [("one", 1), ("two", 2), ("three", 3), ("four", 4)]})
    s["normalizer"], s["placement"] = "batch", rng.choice(["none", "after"], 300)
    varying = [c for c in s.columns if c not in ("normalizer", "placement") and s[c].nunique() > 1]
    expected = [", ".join(f"{c}={v}" for c, v in zip(varying, row)) for row in s[varying].itertuples(index=False)]
    assert cells.cell_labels(s, ("normalizer", "placement"), s).tolist() == expected
    assert cells.varying_settings(s, ("normalizer", "placement"), s) == varying == ["two", "three", "four"]
    for col in [pd.Series([np.nan, np.nan]), pd.Series([None, "a"]), pd.Series(["a", np.nan]),
                pd.Series([], dtype=object), pd.Series([1.0, 1.0]), pd.Series([1, 2])]:
        assert cells._varies(col) == (col.nunique() > 1)
    settings = cells.settings_frame(gappy.runs)
    by_key = {k: lab for k, lab in zip(*(gappy.arm_spec.table(gappy.runs, settings)[c] for c in ("key", "label")))}
    names = list(gappy.arm_spec.factors)
    assert gappy.arm_spec.labels(gappy.runs, settings=settings).tolist() == [
        by_key[tuple(k)] for k in settings[names].itertuples(index=False)] == gappy.runs["arm"].tolist()
    assert set(gappy.arm_spec.table(gappy.runs, settings)["key"]) == set(
        map(tuple, settings[names].itertuples(index=False)))


def test_a_statistic_zero_up_to_rounding_is_not_significant():
    """Level sums that are zero in exact arithmetic (0.1 + 0.2 + 0.3 - 0.6 at level 0) come
    out as ~1e-17: every permutation's statistic is >= 0 = the exact observed one, so p = 1.
    With a margin relative to the observed ~6e-33 the exact ties were missed (p = 0.933)."""
    x = np.array([0.1, 0.2, 0.3, -0.6])
    d = np.ravel(np.column_stack([x, -x]))  # block b holds (x_b, -x_b)
    levels, blocks = np.tile([0, 1], 4), np.repeat(np.arange(4), 2)
    observed, p = ix.permutation_interaction_p(d, levels, blocks, n_permutations=999, seed=3)
    assert observed <= ix._rounding_bound(d, 2)  # ~6e-33 here: rounding, not an effect
    assert p == 1.0


@pytest.mark.parametrize("arm", ["none", "after"])
def test_paired_frame_refuses_two_runs_of_one_arm_cell_and_seed(arm):
    """As ``bench.cells.pair`` does: such runs are not a pair (the merge it replaced would have
    paired each with each)."""
    runs = pd.DataFrame({"cell": ["c"] * 5, "seed": [0, 1, 0, 1, 1], "final_val_acc": np.linspace(0.5, 0.9, 5),
                         "arm": ["none", "none", "after", "after", arm]})
    with pytest.raises(PairingError, match="share one cell and seed"):
        ix.paired_frame(runs, "none", "after", "final_val_acc")
