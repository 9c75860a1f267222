"""The quality gate on real training: an A/A rerun passes, a planted regression fails."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from bench.cli import main
from bench.runner import run_grid
from bench.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "ablations" / "gate.toml"
BASELINE = ROOT / "ablations" / "baselines" / "gate.sqlite"


def gate_limits() -> list[str]:
    """The limits ci/quality_gate.sh passes to `bnbench compare` (its GATE_LIMITS default)."""
    text = (ROOT / "ci" / "quality_gate.sh").read_text()
    return re.search(r'GATE_LIMITS:-(.*?)}"', text).group(1).split()


@pytest.mark.slow
def test_gate_passes_a_rerun_and_fails_a_planted_regression(tmp_path, capsys):
    spec = load_spec(GATE)
    fresh = tmp_path / "fresh.sqlite"
    run_grid(spec, fresh, progress=False)
    assert main(["compare", str(BASELINE), str(fresh), *gate_limits()]) == 0, capsys.readouterr().out

    # Same configuration on paper, worse results in fact: what a code regression looks like.
    learning_rate = spec.factors["learning_rate"][0]
    slow = tmp_path / "slow.sqlite"
    worse = replace(spec, factors={**spec.factors, "learning_rate": (learning_rate / 5,)})
    run_grid(worse, slow, progress=False)
    with sqlite3.connect(slow) as conn:
        conn.execute("UPDATE runs SET learning_rate = ?", (learning_rate,))
    capsys.readouterr()
    assert main(["compare", str(BASELINE), str(slow), *gate_limits()]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "final validation accuracy" in out
