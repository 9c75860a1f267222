"""The A/B perf gate itself: its decision rule on synthetic timings, its plumbing on toy code.

No TensorFlow and no real benchmark: the decision rule gets seeded simulated rounds, and the
plumbing (two workers, each with its own code, interleaved rounds, planted slow-down,
missing reference) runs a toy suite whose "work" is a spin for a fixed CPU time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from . import gate

TOY_SUITE = '''
import time
import bench

def _work(scratch):
    def run():
        end = time.thread_time() + 0.02 * getattr(bench, "WORK", 1.0)
        while time.thread_time() < end:
            pass
    return run

BENCHMARKS = {"toy_a": _work, "toy_b": _work}
'''


# ----------------------------------------------------------------------------- decision rule


@pytest.mark.parametrize(("n", "k"), [(4, 0), (5, 1), (8, 2), (10, 2), (12, 3), (20, 6)])
def test_lower_bound_rank_is_the_sign_tests(n, k):
    """Sign-test tables: one-sided 5% critical counts 0 (n=5), 1 (n=8, 10), 2 (n=12), 5 (n=20)."""
    assert gate.lower_bound_rank(n) == k
    if k:
        assert binom.cdf(k - 1, n, 0.5) <= 0.05 < binom.cdf(k, n, 0.5)


def test_median_bound_covers_the_median():
    """Seeded simulation, skewed timings (log-normal, median 1): the bound of 8 rounds lies
    below the true median in 1 - 9/256 = 96.5% of runs (exact for any continuous law)."""
    rng = np.random.default_rng(0)
    draws = rng.lognormal(0.0, 0.3, size=(4000, 8))
    covered = np.mean([gate.median_lower_bound(list(d)) < 1.0 for d in draws])
    se = np.sqrt(0.965 * 0.035 / 4000)
    assert abs(covered - (1 - 9 / 256)) < 4 * se


def _calls(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per-call noise on a shared machine: 5% jitter, and with probability 5% a 1.5-2.5x burst."""
    return rng.lognormal(0.0, 0.05, shape) * np.where(rng.random(shape) < 0.05, rng.uniform(1.5, 2.5, shape), 1.0)


def _rounds(rng: np.random.Generator, slowdown: float, rounds: int = 8) -> tuple[list[float], list[float]]:
    """One benchmark's rounds: each pair shares a load factor (1-3x), each call its own noise."""
    load = rng.uniform(1.0, 3.0, rounds)
    ref, cur = 2.0 * load * _calls(rng, (2, rounds))
    return list(ref), list(cur * slowdown)


@pytest.mark.parametrize(("slowdown", "low", "high"), [(1.0, 0.0, 2e-3), (1.05, 0.0, 0.01), (1.25, 0.9, 1.0)])
def test_fail_rate_under_load(slowdown, low, high):
    """4,000 seeded simulated gates under 1-3x load, 5% jitter and 5% bursts per call: unchanged
    code fails < 0.2%, a 5% slow-down < 1%, a 25% one >= 90% (bursts on the reference side are
    what lets it escape)."""
    rng = np.random.default_rng(1)
    rate = np.mean([gate.decide("b", *_rounds(rng, slowdown)).failed for _ in range(4000)])
    assert low <= rate <= high


def test_rule_needs_both_size_and_significance():
    """Median 1.20 but 2 of 8 rounds faster: not significant. All 8 rounds 5-8% slower:
    significant but small. Median 1.20 and 7 of 8 slower: fail."""
    ref = [1.0] * 8
    assert not gate.decide("b", ref, [0.9, 0.95, 1.2, 1.2, 1.2, 1.2, 1.3, 1.3]).failed
    assert not gate.decide("b", ref, [1.05, 1.06, 1.07, 1.08, 1.05, 1.06, 1.07, 1.08]).failed
    assert gate.decide("b", ref, [0.95, 1.05, 1.2, 1.2, 1.2, 1.2, 1.3, 1.3]).failed


def test_machine_speed_and_cpu_model_cancel():
    """Another machine (2.5x slower, or a CPU on which this benchmark is 0.6x) scales both
    sides of every pair: the ratios, and so the verdict, do not change."""
    rng = np.random.default_rng(2)
    ref, cur = _rounds(rng, 1.25)
    base = gate.decide("b", ref, cur)
    for factor in (2.5, 0.6):
        other = gate.decide("b", [t * factor for t in ref], [t * factor for t in cur])
        assert other.ratios == pytest.approx(base.ratios) and other.failed == base.failed


def test_too_few_rounds_never_fail():
    v = gate.decide("b", [1.0] * 4, [3.0] * 4)
    assert not v.failed and v.lower == float("-inf")
    assert "too few rounds" in gate.table([v], 0.1)[1]


def test_too_few_rounds_say_not_gated(tmp_path, repo, toy, capsys):
    ref = _reference(tmp_path, _git(repo, "rev-parse", "HEAD"))
    args = ["--reference-file", str(ref), "--repo", str(repo), "--suite", str(toy), "--only", "toy_a"]
    assert gate.main([*args, "--rounds", "3", "--plant", "1.0"]) == 0
    assert "NOT GATED: 3 rounds give no 95% bound" in capsys.readouterr().out
    assert gate.main([*args, "--rounds", "0"]) == 2


def test_rounds_are_paired():
    with pytest.raises(ValueError):
        gate.decide("b", [1.0, 1.0], [1.0])


# ----------------------------------------------------------------------------- the reference


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository whose one commit has toy ``bench``/``reports`` packages."""
    path = tmp_path / "repo"
    for pkg in ("bench", "reports"):
        (path / pkg).mkdir(parents=True)
        (path / pkg / "__init__.py").write_text("WORK = 1.0\n")
    _git(path, "init", "-q")
    _git(path, "add", ".")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy")
    return path


def _reference(tmp_path: Path, commit: str) -> Path:
    path = tmp_path / "reference.toml"
    path.write_text(f'commit = "{commit}"\nwhy = "test"\n')
    return path


def test_missing_reference_commit_is_not_gated(tmp_path, repo, capsys):
    ref = _reference(tmp_path, "0" * 40)
    assert gate.main(["--reference-file", str(ref), "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "NOT GATED" in out and "0" * 40 in out and "git fetch" in out


def test_shallow_clone_says_so(tmp_path, repo, capsys):
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "bench" / "x.py").write_text("")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    assert gate.main(["--reference-file", str(_reference(tmp_path, first)), "--repo", str(clone)]) == 0
    out = capsys.readouterr().out
    assert "NOT GATED" in out and "shallow clone" in out and "git fetch --unshallow" in out


def test_not_a_git_checkout_is_not_gated(tmp_path, capsys):
    ref = _reference(tmp_path, "0" * 40)
    assert gate.main(["--reference-file", str(ref), "--repo", str(tmp_path)]) == 0
    assert "not a git checkout" in capsys.readouterr().out


def test_set_reference_pins_the_full_commit(tmp_path, repo):
    path = tmp_path / "reference.toml"
    assert gate.main(["--set-reference", "HEAD", "--why", "accepted 3% slower report", "--repo", str(repo),
                      "--reference-file", str(path)]) == 0
    ref = gate.load_reference(path)
    assert ref.commit == _git(repo, "rev-parse", "HEAD") and ref.why == "accepted 3% slower report"
    assert gate.main(["--set-reference", "nope", "--repo", str(repo), "--reference-file", str(path)]) == 2


def test_committed_reference_is_a_full_commit_id():
    ref = gate.load_reference()
    assert len(ref.commit) == 40 and int(ref.commit, 16) >= 0 and ref.why


# ----------------------------------------------------------------------------- plumbing, toy code


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy_suite.py"
    path.write_text(TOY_SUITE)
    return path


def _tree(tmp_path: Path, name: str, work: float) -> Path:
    for pkg in ("bench", "reports"):
        (tmp_path / name / pkg).mkdir(parents=True)
        (tmp_path / name / pkg / "__init__.py").write_text(f"WORK = {work}\n")
    return tmp_path / name


def test_each_side_runs_its_own_code(tmp_path, toy):
    """The current tree's toy work is twice the reference's: ratio 2, fail; each worker
    reports its own tree's package."""
    ref, cur = _tree(tmp_path, "ref", 1.0), _tree(tmp_path, "cur", 2.0)
    m = gate.measure(ref, cur, ["toy_a"], 6, suite=str(toy), logs=tmp_path, progress=False)
    assert m.code["reference"]["bench"].startswith(str(ref)) and m.code["current"]["bench"].startswith(str(cur))
    v = gate.decide("toy_a", m.times["toy_a"]["reference"], m.times["toy_a"]["current"])
    assert list(m.times) == ["toy_a"] and v.median > 1.5 and v.failed


def test_gate_end_to_end_aa_passes_and_planted_slowdown_fails(tmp_path, repo, toy, capsys):
    """``main`` with a reference commit in a git repository: the same work passes; a planted
    25% slow-down (spun on the current side only) fails with exit 1."""
    ref = _reference(tmp_path, _git(repo, "rev-parse", "HEAD"))
    args = ["--reference-file", str(ref), "--repo", str(repo), "--suite", str(toy)]
    assert gate.main(args) == 0
    assert "perf gate: pass" in capsys.readouterr().out
    assert gate.main([*args, "--plant", "0.25", "--only", "toy_b"]) == 1
    out = capsys.readouterr().out
    assert "PLANTED" in out and "FAIL: 1 benchmark(s)" in out and "toy_b" in out and "toy_a" not in out


def test_benchmark_newer_than_the_reference_is_not_compared(tmp_path, toy):
    suite = tmp_path / "suite2.py"
    suite.write_text(TOY_SUITE + '\ndef _new(scratch):\n    bench.NEW\n    return lambda: None\n'
                     'BENCHMARKS["toy_new"] = _new\n')
    ref, cur = _tree(tmp_path, "ref", 1.0), _tree(tmp_path, "cur", 1.0)
    (cur / "bench" / "__init__.py").write_text("WORK = 1.0\nNEW = 1\n")
    m = gate.measure(ref, cur, ["toy_a", "toy_new"], 2, suite=str(suite), logs=tmp_path, progress=False)
    assert list(m.times) == ["toy_a"] and "reference" in m.skipped["toy_new"]


def test_current_code_failing_a_benchmark_is_an_error(tmp_path, toy):
    ref, cur = _tree(tmp_path, "ref", 1.0), _tree(tmp_path, "cur", 1.0)
    (cur / "bench" / "__init__.py").write_text("WORK = 'broken'\n")
    with pytest.raises(gate.GateError, match="current code fails"):
        gate.measure(ref, cur, ["toy_a"], 2, suite=str(toy), logs=tmp_path, progress=False)


def test_unknown_pattern_is_an_error(tmp_path, toy):
    tree = _tree(tmp_path, "ref", 1.0)
    with pytest.raises(gate.GateError, match="no benchmark matches"):
        gate.measure(tree, tree, ["nothing*"], 2, suite=str(toy), logs=tmp_path, progress=False)
