"""Shared fixtures: tiny specs that train in seconds."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import helper modules in tests/

from spec_helpers import tiny_spec_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab, .ci/run's callers)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_prerequisite(available: object, what: str, how: str) -> None:
    """A test's prerequisite (a browser, a dataset): skip locally when missing, FAIL in CI.

    CI must not pass green while these tests silently skip; ``.ci/run`` installs them.
    """
    if available:
        return
    message = f"{what} is not available; {how}"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def require():
    """``require(available, what, how)``: see ``require_prerequisite``."""
    return require_prerequisite


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_spec_text())
    return path
