"""A/A size of the log-rank test at small samples: chi-square vs permutation (docs/ci.md).

``python tests/logrank_size.py 1000``: epochs to target 2..6 with a budget of 5 (censored
past it), n runs a side, both sides drawn from the same distribution; share of trials with
p < 0.05 for the chi-square log-rank (two-sided, reports.stats.logrank), its normal
approximation one-sided, and the gate's one-sided permutation log-rank.
"""

import sys

import numpy as np
import scipy.stats as st

from reports import stats
from reports.threshold_tests import logrank_p, logrank_z


def main(trials: int) -> None:
    rng = np.random.default_rng(2026)
    for n in (5, 8, 12, 20):
        chi = one = perm = 0
        for _ in range(trials):
            t = rng.choice([2, 3, 4, 5, 6], size=2 * n, p=[0.2, 0.3, 0.25, 0.15, 0.1]).astype(float)
            e = t <= 5
            t = np.minimum(t, 5)
            chi += stats.logrank(t, e, np.repeat(["b", "c"], n)).p < 0.05
            z = -logrank_z(t, e, np.r_[np.zeros(n, bool), np.ones(n, bool)][None])[0]
            one += st.norm.sf(z) < 0.05
            perm += logrank_p(t[:n], e[:n], t[n:], e[n:], 999, rng) < 0.05
        print(f"n={n} per side: chi-square two-sided {chi / trials:.1%}, normal one-sided {one / trials:.1%}, "
              f"permutation one-sided {perm / trials:.1%} ({trials} A/A trials)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
