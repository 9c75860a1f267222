"""``bnbench export --format tensorboard``: read back with TensorBoard's own event reader."""

from __future__ import annotations

import pytest

from bench.cli import main as cli
from bench.store import open_readonly, read_epochs, read_runs
from synthetic_store import build_store, make_spec

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

TAGS = {"train/loss": "train_loss", "train/accuracy": "train_acc", "val/loss": "val_loss",
        "val/accuracy": "val_acc", "time/epoch_s": "epoch_s"}


def _read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return acc


def test_every_run_and_epoch_reads_back(tmp_path):
    spec = make_spec(factors={"learning_rate": [0.01, 0.1]}, seeds=3, epochs=4)
    store = build_store(tmp_path / "s.sqlite", spec)
    out = tmp_path / "tb"
    assert cli(["export", "--store", str(store), "--format", "tensorboard", "-o", str(out)]) == 0
    assert cli(["export", "--store", str(store), "--format", "tensorboard", "-o", str(out)]) == 0  # again

    conn = open_readonly(store)
    runs, epochs = read_runs(conn), read_epochs(conn)
    conn.close()
    folders = sorted(p.parent for p in out.rglob("events.out.tfevents.*"))
    assert len(folders) == len(runs) == 2 * 2 * 3  # one event file per run, even exported twice
    for run in runs.itertuples():
        lr = "0.01" if run.learning_rate == 0.01 else "0.1"
        folder = out / "synthetic" / f"learning_rate={lr}" / run.placement / f"seed_{run.seed}"
        acc = _read(folder)
        assert set(acc.Tags()["scalars"]) == set(TAGS)
        mine = epochs[epochs["run_id"] == run.run_id].sort_values("epoch")
        for tag, col in TAGS.items():
            events = acc.Scalars(tag)
            assert [e.step for e in events] == mine["epoch"].tolist()
            # stored as float32 (TensorBoard's simple_value): equal to float32 rounding
            assert [e.value for e in events] == pytest.approx(mine[col].tolist(), rel=2 ** -23)


def test_unknown_grid_is_bad_input_and_writes_nothing(tmp_path, capsys):
    store = build_store(tmp_path / "s.sqlite", make_spec(seeds=2, epochs=2))
    out = tmp_path / "tb"
    assert cli(["export", "--store", str(store), "--format", "tensorboard", "-o", str(out),
                "--grid", "nope"]) == 2
    assert "--grid" in capsys.readouterr().err and not out.exists()
