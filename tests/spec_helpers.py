"""Tiny grid specs that train in seconds, shared by the runner, CLI and distributed tests."""

from __future__ import annotations

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
