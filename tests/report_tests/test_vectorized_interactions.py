"""The interaction and ranking analyses' batched paths give their definitions' numbers.

``reports.interactions`` sums a full factorial's shuffled differences by level with a
reduction over blocks instead of a one-hot matrix product, pairs runs by integer keys
instead of a pandas merge, and splits pairs by level with numpy instead of ``groupby``.
Each is checked here against the code it replaced (kept below as the definition) on seeded
data with ties, missing values, unequal and shuffled blocks. The permutation p-values and
the statistic are equal exactly; the permuted statistics may differ in their last bits (the
sums run in another order), which the test's relative margin of 1e-9 absorbs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

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
        return math.nan, math.nan
    order = np.argsort(block_codes, kind="stable")
    d, codes, block_codes = d[order], codes[order], block_codes[order]
    d = d - (np.bincount(block_codes, d) / np.bincount(block_codes))[block_codes]
    onehot = (codes[:, None] == np.arange(k)).astype(float)
    n_l = onehot.sum(0)

    def ss(values):
        return ((values @ onehot / n_l) ** 2 * n_l).sum(-1)

    observed = float(ss(d[None, :])[0])
    rng = stats._rng(seed)
    exceed = 0
    for start in range(0, n_permutations, 1000):
        keys = rng.random((min(1000, n_permutations - start), d.size))
        perms = np.array([np.lexsort((row, block_codes)) for row in keys])  # exact, stable
        exceed += int((ss(d[perms]) >= observed * (1 - 1e-9)).sum())
    return observed, (1.0 + exceed) / (1.0 + n_permutations)


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
        assert got == _definition(d, levels, blocks, 1500, seed)
    if discrete:  # many exact ties with the observed statistic: the margin must count them alike
        tied = np.round(d)
        assert (ix.permutation_interaction_p(tied, levels, blocks, n_permutations=999, seed=3)
                == _definition(tied, levels, blocks, 999, 3))


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
        assert (ix.permutation_interaction_p(d_, levels_, blocks_, n_permutations=1200, seed=4)
                == _definition(d_, levels_, blocks_, 1200, 4))
