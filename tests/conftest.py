"""Shared fixtures: tiny specs that train in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import helper modules in tests/

ROOT = Path(__file__).resolve().parents[1]

TINY_SPEC = """
[grid]
name = "tiny"
seeds = {seeds}
epochs = {epochs}
target_accuracy = 0.5
validation_size = 297
train_limit = 600

[factors]
dataset = "digits"
placement = {placements}
hidden = [32, 16]
learning_rate = {lr}
batch_size = 32

[engine]
name = "{engine}"
"""


def tiny_spec_text(
    *, seeds: int = 2, epochs: int = 2, placements: str = '["none", "after"]',
    lr: float = 0.05, engine: str = "keras",
) -> str:
    return TINY_SPEC.format(seeds=seeds, epochs=epochs, placements=placements, lr=lr, engine=engine)


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tiny_spec_text())
    return path
