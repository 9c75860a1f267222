"""Engines compared where training is chaotic: float-noise differences in the first steps grow
into another trajectory, so after an epoch the engines are compared in distribution over
paired seeds, never by a margin that happened to hold on one CPU (the first steps are compared
tightly elsewhere). Used by tests/test_factor_combinations.py (MLP) and tests/engines/test_cnn.py.
"""

from __future__ import annotations

import numpy as np

#: Seeds for the distribution test: 16 paired seeds let an exact two-sided Wilcoxon signed-rank
#: test reach p = 2/2**16 ~ 3e-5, far below ALPHA.
CHAOTIC_SEEDS = list(range(16))
#: Per-test false-failure rate when the engines are equal in distribution; Bonferroni over the
#: two losses tested, so a correct engine fails this test on a given CPU with probability <= 0.1%.
ALPHA = 0.001


def assert_same_in_distribution(runs_a: list, runs_b: list) -> None:
    """Paired by seed (same order), the end-of-epoch losses of two engines differ only by chaos:
    an exact Wilcoxon signed-rank test finds no systematic difference (size ALPHA per loss)."""
    from scipy.stats import wilcoxon

    assert all(r.status == "ok" for r in runs_a + runs_b)
    for metric in ("train_loss", "val_loss"):
        a = np.array([getattr(r.epochs[0], metric) for r in runs_a])
        b = np.array([getattr(r.epochs[0], metric) for r in runs_b])
        assert np.isfinite(a).all() and np.isfinite(b).all()
        p = wilcoxon(a, b, method="exact").pvalue
        assert p > ALPHA / 2, f"{metric}: engines differ systematically over seeds (p={p:.2g})"
