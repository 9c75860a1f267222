"""The perf gate itself (plain unit tests, no timing): planted slow-downs in benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import gate

NAMES = {"test_calibration_numpy": 0.08, "test_calibration_tf": 0.07,
         "test_one_epoch[stacked_s8-none]": 1.9, "test_one_epoch[keras_fit-none]": 1.7}


def _write(path: Path, times: dict[str, float], local: dict[str, float] | None = None) -> Path:
    local = local or {}
    doc = {"benchmarks": [{"name": n, "stats": {"min": t, "median": t},
                           "extra_info": {"calibration_s": local[n]} if n in local else {}}
                          for n, t in times.items()]}
    path.write_text(json.dumps(doc))
    return path


def _scaled(factor: float, only: str | None = None) -> dict[str, float]:
    return {n: t * (factor if only in (None, n) else 1.0) for n, t in NAMES.items()}


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return _write(tmp_path / "baseline.json", NAMES)


def _run(tmp_path: Path, baseline: Path, times: dict[str, float]) -> int:
    return gate.main([str(_write(tmp_path / "current.json", times)), "--baseline", str(baseline)])


def test_planted_25_percent_slowdown_fails(tmp_path, baseline, capsys):
    slow = _scaled(1.25, only="test_one_epoch[stacked_s8-none]")
    assert _run(tmp_path, baseline, slow) == 1
    assert "FAIL" in capsys.readouterr().out


def test_planted_30_percent_slowdown_fails_on_busy_machine(tmp_path, baseline):
    """Everything 2x slower (busy machine) and the engine a further 1.3x: still caught."""
    times = {n: t * 2 for n, t in _scaled(1.3, only="test_one_epoch[keras_fit-none]").items()}
    assert _run(tmp_path, baseline, times) == 1


def test_planted_slowdown_in_a_real_benchmark_json_fails(tmp_path):
    """A recorded pytest-benchmark file (the committed baseline) with one engine 25% slower."""
    doc = json.loads(gate.DEFAULT_BASELINE.read_text())
    for bench in doc["benchmarks"]:
        if bench["name"] == "test_one_epoch[stacked_s8-after+input]":
            bench["stats"] = {k: v * 1.25 if isinstance(v, float) else v
                              for k, v in bench["stats"].items()}
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(doc))
    assert gate.main([str(slow)]) == 1
    assert gate.main([str(gate.DEFAULT_BASELINE)]) == 0


def test_five_percent_noise_passes(tmp_path, baseline):
    noisy = {n: t * f for (n, t), f in zip(NAMES.items(), (0.97, 1.03, 1.05, 0.95))}
    assert _run(tmp_path, baseline, noisy) == 0


def test_uniformly_slower_machine_passes(tmp_path, baseline):
    assert _run(tmp_path, baseline, _scaled(2.5)) == 0


def test_missing_benchmark_is_reported_not_failed(tmp_path, baseline, capsys):
    times = dict(NAMES)
    times.pop("test_one_epoch[keras_fit-none]")
    assert _run(tmp_path, baseline, times) == 0
    assert "missing from the current run" in capsys.readouterr().out


def test_missing_calibration_is_an_input_error(tmp_path, baseline):
    times = dict(NAMES)
    times.pop("test_calibration_tf")
    assert _run(tmp_path, baseline, times) == 2


def test_committed_baseline_is_usable():
    times = gate.load_times(gate.DEFAULT_BASELINE)
    assert gate.calibration_scale(times, "baseline") > 0
    assert any(n.startswith("test_one_epoch[stacked_s8") for n in times)


def test_local_calibration_cancels_load_during_one_benchmark(tmp_path):
    """Load that hit only one benchmark (2x) is cancelled by its own calibration (also 2x);
    a 30% regression under the same load is still caught."""
    name = "test_one_epoch[stacked_s8-none]"
    base = _write(tmp_path / "b.json", NAMES, {name: 0.3})
    loaded = _scaled(2.0, only=name)
    assert gate.main([str(_write(tmp_path / "c.json", loaded, {name: 0.6})), "--baseline", str(base)]) == 0
    loaded = _scaled(2.6, only=name)
    assert gate.main([str(_write(tmp_path / "c.json", loaded, {name: 0.6})), "--baseline", str(base)]) == 1
