"""The device check's tiny CPU mode runs end to end (so CI keeps the GPU script working), and
the FLOP count that every GFLOP/s figure uses matches the hand count in docs/performance.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .throughput import run_flops, train_flops_per_sample

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = (784, 300, 100, 10)


def test_flops_match_the_hand_count():
    # docs/performance.md, "Compute floor": per training sample and per notebook run.
    assert train_flops_per_sample(NOTEBOOK, "none") == 1_126_800
    assert train_flops_per_sample(NOTEBOOK, "after") == 1_126_800
    assert train_flops_per_sample(NOTEBOOK, "after+input") == 1_597_200
    assert round(run_flops(NOTEBOOK, "none", 55_000, 5_000, 10) / 1e9) == 646
    assert round(run_flops(NOTEBOOK, "after+input", 55_000, 5_000, 10) / 1e9) == 905


@pytest.mark.slow
def test_device_check_cpu_mode_runs(tmp_path: Path):
    out = tmp_path / "rows.json"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "tests/perf/device_check.sh", "--cpu", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "device check: ok" in proc.stdout
    assert '"kind": "cpu"' in proc.stdout
    import json

    rows = json.loads(out.read_text())
    assert [r["label"] for r in rows[:3]] == ["stacked S=auto on cpu", "keras fit on cpu", "CPU reference"]
    assert {r["placement"] for r in rows} == {"none", "after+input"}
    assert all(r["runs_per_hour"] > 0 and r["gflops"] > 0 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("per_program", [[], ["--per-program", "2,1"]])
def test_measure_limit_runs_in_one_process(tmp_path: Path, capsys, per_program):
    """Tiny sizes: the script's code paths, not its numbers (timings are never asserted)."""
    from . import measure_limit

    out = tmp_path / "limit.json"
    assert measure_limit.main(["--sizes", "64,128", "--numpy-size", "128", "--repeats", "1",
                               "--epochs", "1", "--seeds", "2", "--dataset", "digits",
                               "--validation-size", "300", "--placements", "none",
                               "--json", str(out), *per_program]) == 0
    import json

    rows = json.loads(out.read_text())
    engines = [r["what"] for r in rows if r["when"] == "engine"]
    assert [r["when"] for r in rows] == ["before"] * 3 + ["engine"] * len(engines) + ["after"] * 3
    assert engines == (["stacked S=2, none, 1 epochs", "stacked S=1 (2 seeds), none, 1 epochs"] if per_program
                       else ["stacked S=2, none, 1 epochs"])
    assert all(r["gflops"] > 0 for r in rows)
    assert "share of the run's limit" in capsys.readouterr().out
