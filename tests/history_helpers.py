"""Simulated metric histories with planted steps, for the history tests (no training).

One commit per day. Time per epoch is 2 s times log-normal noise (``cv``); final accuracy
0.92 plus normal noise (``acc_sd``). Each commit reports a 95% interval of its own noise
size, as a gate run with a few seeds would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SERIES = "gate / all runs / none"


def simulated_history(seed: int, n: int = 60, *, slow_at: int | None = 37, slowdown: float = 1.15,
                      drop_at: int | None = 22, drop: float = 0.01, cv: float = 0.04,
                      acc_sd: float = 0.0025, fingerprint: str = "m1") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    commits = [f"{i:04d}{rng.integers(1 << 32):08x}" for i in range(n)]
    dates = pd.date_range("2026-01-01", periods=n, freq="D").strftime("%Y-%m-%dT%H:%M:%SZ")
    t = 2.0 * np.exp(cv * rng.standard_normal(n))
    a = 0.92 + acc_sd * rng.standard_normal(n)
    if slow_at is not None:
        t[slow_at:] *= slowdown
    if drop_at is not None:
        a[drop_at:] -= drop
    common = {"branch": "main", "fingerprint": fingerprint, "source": "gate", "series": SERIES, "n": 8}
    rows = []
    for i in range(n):
        rows.append({**common, "commit_id": commits[i], "commit_date": dates[i], "metric": "epoch_s",
                     "value": t[i], "low": t[i] * (1 - 1.96 * cv), "high": t[i] * (1 + 1.96 * cv)})
        rows.append({**common, "commit_id": commits[i], "commit_date": dates[i], "metric": "final_val_acc",
                     "value": a[i], "low": a[i] - 1.96 * acc_sd, "high": a[i] + 1.96 * acc_sd})
    return pd.DataFrame(rows)
