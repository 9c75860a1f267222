"""``bnbench history``: the store, the step detection (planted steps, flat histories), the CLI."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main as cli
from bench.history_store import Point, add_points, read_points
from history_helpers import simulated_history
from reports.changepoints import detect_steps, false_alarm_rate
from reports.history import find_steps
from reports.history_report import build, render_html, render_markdown
from synthetic_store import build_store

ROOT = Path(__file__).resolve().parents[1]


def _steps(history, metric):
    st = find_steps(history)
    return st[st["metric"] == metric]


def test_planted_slowdown_and_accuracy_drop_found_at_their_commits():
    h = simulated_history(seed=3)
    slow, acc = _steps(h, "epoch_s"), _steps(h, "final_val_acc")
    assert slow["index"].tolist() == [37] and acc["index"].tolist() == [22]
    commits = list(dict.fromkeys(h["commit_id"]))
    assert (slow["from_commit"].iloc[0], slow["to_commit"].iloc[0]) == (commits[36], commits[37])
    s, a = slow.iloc[0], acc.iloc[0]
    assert s["low"] <= 1.15 <= s["high"] and s["ratio"]
    assert a["low"] <= -0.01 <= a["high"] and not a["ratio"]


def test_planted_steps_located_exactly_in_most_histories():
    # 15% slow-down at 4% noise per commit (3.5 noise units) and a 1 pp drop at 0.25 pp
    # (4 units): measured over 200 histories, exact commit 91% and 94.5%, the step's 95%
    # interval covering the planted size in 96% of those. 100 histories: >= 80% is over
    # three binomial SDs (3 points) below the measured rates.
    n, slow_ok, drop_ok = 100, 0, 0
    for seed in range(n):
        h = simulated_history(seed)
        slow_ok += _steps(h, "epoch_s")["index"].tolist() == [37]
        drop_ok += _steps(h, "final_val_acc")["index"].tolist() == [22]
    assert slow_ok >= 80 and drop_ok >= 80, (slow_ok, drop_ok)


@pytest.mark.parametrize("noise", ["normal", "t"])
def test_flat_histories_rarely_show_a_step(noise):
    # Measured (500 histories of 60 commits): 0.0% normal noise, 1.2% t(3) noise.
    assert false_alarm_rate(60, 300, noise=noise, seed=11) <= 0.05


def test_flat_simulated_histories_through_find_steps():
    flagged = sum(len(find_steps(simulated_history(1000 + s, slow_at=None, drop_at=None))) > 0
                  for s in range(100))
    assert flagged <= 5


def test_step_interval_is_welchs():
    rng = np.random.default_rng(5)
    y = np.r_[rng.normal(0, 1, 20), rng.normal(6, 1, 20)]
    (st,) = detect_steps(y)
    import scipy.stats

    ci = scipy.stats.ttest_ind(y[20:], y[:20], equal_var=False).confidence_interval()
    assert st.index == 20 and st.change == pytest.approx(y[20:].mean() - y[:20].mean())
    assert (st.low, st.high) == pytest.approx((ci.low, ci.high))


def test_identical_values_make_no_step_and_a_jump_beyond_their_intervals_does():
    se = np.full(12, 0.002)
    assert detect_steps(np.full(12, 0.9), se) == []
    (st,) = detect_steps(np.r_[np.full(6, 0.9), np.full(6, 0.85)], se)
    assert st.index == 6 and st.change == pytest.approx(-0.05)


def _point(commit: str, value: float, fingerprint: str = "m1") -> Point:
    return Point(commit, f"2026-01-01T00:00:{int(commit[1:]) % 60:02d}Z", "main", fingerprint, "gate",
                 "g / c / none", "final_val_acc", value, value - 0.01, value + 0.01, 8)


def test_add_again_replaces_and_machines_stay_apart(tmp_path):
    path = tmp_path / "h.sqlite"
    add_points(path, [_point("c1", 0.9), _point("c2", 0.9)])
    add_points(path, [_point("c2", 0.8), _point("c2", 0.7, fingerprint="m2")])
    pts = read_points(path)
    assert len(pts) == 3
    assert sorted(pts.loc[pts["commit_id"] == "c2", "value"]) == [0.7, 0.8]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


_APPENDER = """
import sys
from bench.history_store import Point, add_points
who = sys.argv[1]
for i in range(40):
    add_points(sys.argv[2], [Point(f"{who}{i}", "2026-01-01T00:00:00Z", who, "m1", "gate", s, "epoch_s",
                                   1.0, 0.9, 1.1, 3) for s in ("a", "b", "c")])
"""


def test_two_processes_append_at_once(tmp_path):
    path = tmp_path / "h.sqlite"  # not created yet: both race to create the schema too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, who, str(path)], env=env,
                              stderr=subprocess.PIPE, text=True) for who in ("x", "y")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    pts = read_points(path)
    assert len(pts) == 2 * 40 * 3 and pts["commit_id"].nunique() == 80


@pytest.fixture(scope="module")
def history_file(tmp_path_factory):
    """Eight commits of a synthetic gate store; accuracy drops 2 pp from commit 6 on."""
    d = tmp_path_factory.mktemp("hist")
    good, worse = build_store(d / "good.sqlite"), build_store(d / "worse.sqlite", base=0.90)
    for i in range(8):
        store = good if i < 5 else worse
        assert cli(["history", "add", "--history", str(d / "h.sqlite"), "--store", str(store),
                    "--commit", f"{i:02d}abcdef", "--date", f"2026-01-0{i + 1}T12:00:00Z",
                    "--branch", "main"]) == 0
    return d / "h.sqlite"


def test_cli_report_html_is_self_contained_and_links_steps(history_file, tmp_path):
    out = tmp_path / "history.html"
    assert cli(["history", "report", "--history", str(history_file), "-o", str(out),
                "--compare-url", "https://example.org/r/compare/{from}...{to}"]) == 0
    page = out.read_text()
    assert page.count("<svg") >= 3 and "<script" not in page and "src=" not in page
    assert 'href="https://example.org/r/compare/04abcdef...05abcdef"' in page
    assert "-2.00 pp" in page


def test_cli_report_markdown(history_file, capsys):
    assert cli(["history", "report", "--history", str(history_file), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("## bnbench history: 8 commits")
    acc_rows = [r for r in md.splitlines() if "final_val_acc" in r]
    assert len(acc_rows) == 2 and all("-2.00 pp" in r and "04abcdef..05abcdef" in r for r in acc_rows)
    assert all("| none |" in r for r in md.splitlines() if "epoch_s" in r)


def test_perf_json_is_summarized_with_the_machine_fingerprint(tmp_path):
    doc = {"benchmarks": [
        {"name": "test_a", "stats": {"median": 0.2, "iqr": 0.02, "rounds": 16}},
        {"name": "test_b", "stats": {"median": 1.0, "iqr": 0.1, "rounds": 4, "data": [0.9, 1.0, 1.0, 1.2]}},
    ]}
    (tmp_path / "perf.json").write_text(json.dumps(doc))
    h = tmp_path / "h.sqlite"
    assert cli(["history", "add", "--history", str(h), "--perf", str(tmp_path / "perf.json"),
                "--commit", "abc", "--date", "2026-02-01"]) == 0
    from bench.host import host_info, library_versions, machine_fingerprint

    pts = read_points(h).set_index("series")
    assert set(pts["fingerprint"]) == {machine_fingerprint(host_info(), library_versions())}
    half = 1.57 * 0.02 / math.sqrt(16)  # McGill's notch
    assert (pts.loc["test_a", "low"], pts.loc["test_a", "high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert pts.loc["test_b", "value"] == 1.0 and pts.loc["test_b", "low"] <= 1.0 <= pts.loc["test_b", "high"]


@pytest.mark.parametrize("argv, needle", [
    (["history", "add", "--commit", "a"], "--store"),
    (["history", "add", "--commit", "a", "--date", "yesterday", "--perf", "x.json"], "--date"),
    (["history", "add", "--commit", "a", "--perf", "missing.json"], "--perf"),
    (["history", "report"], "no such store"),
])
def test_bad_input_exits_2_and_writes_nothing(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BNBENCH_HISTORY", "h.sqlite")
    assert cli([*argv[:2], "--history", "h.sqlite", *argv[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "h.sqlite").exists()


def test_build_and_render_without_a_store():
    built = build(simulated_history(seed=3))
    assert len(built["steps"]) == 2
    assert "<svg" in render_html(built) and "+15" in render_markdown(built)
