"""The perf gate itself (plain unit tests, no timing): planted slow-downs in benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.host import machine_fingerprint

from . import gate

NAMES = {"test_calibration_numpy": 0.08, "test_calibration_tf": 0.07,
         "test_one_epoch[stacked_s8-none]": 1.9, "test_one_epoch[keras_fit-none]": 1.7,
         "test_render_html_report[3000_runs]": 1.5}
INTEL = {"fingerprint": "111111111111", "cpu": "Intel(R) Xeon(R) Processor", "cores": 2,
         "machine": "x86_64", "versions": {"tensorflow-cpu": "2.21.0"}}
AMD = dict(INTEL, fingerprint="222222222222", cpu="AMD EPYC")
COMMITTED = sorted(gate.BASELINES.glob("*.json"))


def _write(path: Path, times: dict[str, float], local: dict[str, float] | None = None,
           machine: dict | None = None) -> Path:
    local = local or {}
    doc = {"machine_info": {"bnbench": machine or INTEL},
           "benchmarks": [{"name": n, "stats": {"min": t, "median": t},
                           "extra_info": {"calibration_s": local[n]} if n in local else {}}
                          for n, t in times.items()]}
    path.write_text(json.dumps(doc))
    return path


def _scaled(factor: float, only: str | None = None) -> dict[str, float]:
    return {n: t * (factor if only in (None, n) else 1.0) for n, t in NAMES.items()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A baselines folder holding one baseline, the Intel machine's."""
    path = tmp_path / "baselines"
    path.mkdir()
    _write(gate.baseline_path(INTEL["fingerprint"], path), NAMES)
    return path


def _run(tmp_path: Path, folder: Path, times: dict[str, float], machine: dict | None = None) -> int:
    current = _write(tmp_path / "current.json", times, machine=machine)
    return gate.main([str(current), "--baselines", str(folder)])


def test_planted_25_percent_slowdown_fails(tmp_path, folder, capsys):
    slow = _scaled(1.25, only="test_one_epoch[stacked_s8-none]")
    assert _run(tmp_path, folder, slow) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and f"{INTEL['fingerprint']}.json" in out


def test_report_rendering_is_gated(tmp_path, folder, capsys):
    assert _run(tmp_path, folder, _scaled(1.25, only="test_render_html_report[3000_runs]")) == 1
    assert "FAIL: 1 benchmark(s)" in capsys.readouterr().out


@pytest.mark.parametrize("factor", [1.25, 3.0])
def test_other_machine_is_not_gated_however_slow(tmp_path, folder, capsys, factor):
    """The same slow-down that fails on the Intel machine passes, and says why, on an AMD one
    that has no baseline: only the baseline's own machine is compared."""
    slow = _scaled(factor, only="test_one_epoch[stacked_s8-none]")
    assert _run(tmp_path, folder, slow, machine=AMD) == 0
    out = capsys.readouterr().out
    assert f"NOT GATED: no baseline for machine {AMD['fingerprint']}" in out
    assert gate.RECORD_COMMAND in out and "FAIL" not in out
    assert INTEL["fingerprint"] in out  # the baselines that do exist are listed
    assert _run(tmp_path, folder, slow, machine=INTEL) == 1


def test_explicit_baseline_of_other_machine_is_shown_not_gated(tmp_path, folder, capsys):
    slow = _scaled(3.0, only="test_one_epoch[stacked_s8-none]")
    current = _write(tmp_path / "current.json", slow, machine=AMD)
    base = gate.baseline_path(INTEL["fingerprint"], folder)
    assert gate.main([str(current), "--baseline", str(base), "--baselines", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "slower (other machine: not gated)" in out and "NOT GATED" in out and "FAIL" not in out


def test_no_baselines_folder_is_not_gated(tmp_path, capsys):
    assert _run(tmp_path, tmp_path / "nowhere", _scaled(3.0), machine=AMD) == 0
    assert "NOT GATED" in capsys.readouterr().out


def test_planted_30_percent_slowdown_fails_on_busy_machine(tmp_path, folder):
    """Everything 2x slower (busy machine) and the engine a further 1.3x: still caught."""
    times = {n: t * 2 for n, t in _scaled(1.3, only="test_one_epoch[keras_fit-none]").items()}
    assert _run(tmp_path, folder, times) == 1


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_planted_slowdown_in_a_committed_baseline_fails(tmp_path, path):
    """A recorded pytest-benchmark file with one engine 25% slower fails against itself."""
    doc = json.loads(path.read_text())
    for bench in doc["benchmarks"]:
        if bench["name"] == "test_one_epoch[stacked_s8-after+input]":
            bench["stats"] = {k: v * 1.25 if isinstance(v, float) else v
                              for k, v in bench["stats"].items()}
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(doc))
    assert gate.main([str(slow)]) == 1
    assert gate.main([str(path)]) == 0


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_committed_baseline_is_keyed_by_its_own_fingerprint(path):
    """The file name is the store's fingerprint of what the file says about its machine."""
    machine = gate.load_run(path).machine
    host = {k: machine[k] for k in ("cpu", "cores", "machine")}
    assert path.stem == machine["fingerprint"] == machine_fingerprint(host, machine["versions"])
    times = gate.load_times(path)
    assert gate.calibration_scale(times, "baseline") > 0
    assert any(n.startswith("test_one_epoch[stacked_s8") for n in times)


def test_this_machine_uses_the_store_fingerprint():
    from bench.host import host_info, library_versions

    assert gate.this_machine()["fingerprint"] == machine_fingerprint(host_info(), library_versions())


def test_record_keys_the_file_by_the_runs_fingerprint(tmp_path, capsys):
    folder = tmp_path / "baselines"
    run = _write(tmp_path / "run.json", NAMES, machine=AMD)
    path = gate.record(run, folder, {"recorded_load_1min": [0.1, 0.2]})
    assert path == folder / f"{AMD['fingerprint']}.json"
    assert set(gate.load_times(path)) == set(NAMES)
    assert gate.load_run(path).machine["recorded_load_1min"] == [0.1, 0.2]
    assert _run(tmp_path, folder, NAMES, machine=AMD) == 0
    assert "perf gate: pass" in capsys.readouterr().out
    assert _run(tmp_path, folder, _scaled(1.25, only="test_render_html_report[3000_runs]"), machine=AMD) == 1


def test_five_percent_noise_passes(tmp_path, folder):
    noisy = {n: t * f for (n, t), f in zip(NAMES.items(), (0.97, 1.03, 1.05, 0.95, 1.04))}
    assert _run(tmp_path, folder, noisy) == 0


def test_uniformly_slower_machine_passes(tmp_path, folder):
    assert _run(tmp_path, folder, _scaled(2.5)) == 0


def test_missing_benchmark_is_reported_not_failed(tmp_path, folder, capsys):
    times = dict(NAMES)
    times.pop("test_one_epoch[keras_fit-none]")
    assert _run(tmp_path, folder, times) == 0
    assert "missing from the current run" in capsys.readouterr().out


def test_benchmark_missing_from_baseline_says_to_re_record(tmp_path, folder, capsys):
    assert _run(tmp_path, folder, dict(NAMES, test_new=9.9)) == 0
    out = capsys.readouterr().out
    assert "1 benchmark(s) not in this machine's baseline" in out and gate.RECORD_COMMAND in out


def test_missing_calibration_is_an_input_error(tmp_path, folder):
    times = dict(NAMES)
    times.pop("test_calibration_tf")
    assert _run(tmp_path, folder, times) == 2


def test_missing_fingerprint_is_an_input_error(tmp_path, folder, capsys):
    current = tmp_path / "current.json"
    current.write_text(json.dumps({"benchmarks": [{"name": n, "stats": {"min": t}} for n, t in NAMES.items()]}))
    assert gate.main([str(current), "--baselines", str(folder)]) == 2
    assert "no machine fingerprint" in capsys.readouterr().err


def test_local_calibration_cancels_load_during_one_benchmark(tmp_path):
    """Load that hit only one benchmark (2x) is cancelled by its own calibration (also 2x);
    a 30% regression under the same load is still caught."""
    name = "test_one_epoch[stacked_s8-none]"
    base = _write(tmp_path / "b.json", NAMES, {name: 0.3})
    loaded = _scaled(2.0, only=name)
    assert gate.main([str(_write(tmp_path / "c.json", loaded, {name: 0.6})), "--baseline", str(base)]) == 0
    loaded = _scaled(2.6, only=name)
    assert gate.main([str(_write(tmp_path / "c.json", loaded, {name: 0.6})), "--baseline", str(base)]) == 1
