"""The CI recipe of docs/ci.md that keeps the history on a results branch (ci/history_branch.sh),
run for real in fresh git repositories: first push, a second clone appending, and a push
refused because another job pushed meanwhile (retried, nothing lost)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.history_store import read_points

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci" / "history_branch.sh"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("git") is None, reason="no git")]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _clone(origin: Path, where: Path, message: str) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(where)], check=True, capture_output=True)
    _git(where, "config", "user.email", "t@example.org")
    _git(where, "config", "user.name", "t")
    (where / "f.txt").write_text(message)
    _git(where, "add", "f.txt")
    _git(where, "commit", "-qm", message)
    return where


@pytest.fixture()
def env(tmp_path):
    perf = tmp_path / "perf.json"
    perf.write_text(json.dumps({"benchmarks": [{"name": "test_x", "stats": {"median": 1.0, "iqr": 0.1,
                                                                            "rounds": 5}}]}))
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_"))}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    e["BNBENCH"] = f"{shlex.quote(sys.executable)} -m bench.cli"
    return e, perf


def _run(clone: Path, env: dict, perf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--perf", str(perf)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=300)


def _branch_history(origin: Path, tmp: Path):
    out = tmp / "fetched.sqlite"
    out.write_bytes(subprocess.run(["git", "show", "bnbench-history:history.sqlite"], cwd=origin,
                                   check=True, capture_output=True).stdout)
    return read_points(out)


def test_results_branch_recipe(tmp_path, env):
    e, perf = env
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    a = _clone(origin, tmp_path / "a", "one")
    _git(a, "push", "-q", "origin", "HEAD")
    b = _clone(origin, tmp_path / "b", "two")

    first = _run(a, e, perf)  # the branch does not exist yet
    assert first.returncode == 0, first.stderr
    assert _branch_history(origin, tmp_path)["commit_id"].tolist() == [_git(a, "rev-parse", "HEAD")]

    # Another job pushes while b is adding: a BNBENCH that runs clone a's job first.
    _git(a, "commit", "-q", "--allow-empty", "-m", "three")
    racer = tmp_path / "racer.sh"
    racer.write_text(
        "#!/bin/bash\n"
        f"if [ ! -e {tmp_path}/raced ]; then touch {tmp_path}/raced; "
        f"(cd {a} && bash {SCRIPT} --perf {perf}) || exit 9; fi\n"
        f'exec {e["BNBENCH"]} "$@"\n')
    second = _run(b, {**e, "BNBENCH": f"bash {racer}"}, perf)
    assert second.returncode == 0, second.stderr
    assert "moved meanwhile; retrying" in second.stderr

    commits = set(_branch_history(origin, tmp_path)["commit_id"])
    assert commits == {_git(a, "rev-parse", "HEAD~1"), _git(a, "rev-parse", "HEAD"), _git(b, "rev-parse", "HEAD")}
    assert _git(b, "status", "--porcelain") == "?? history/"  # the work tree's files are untouched
    assert int(_git(origin, "rev-list", "--count", "bnbench-history")) == 3
