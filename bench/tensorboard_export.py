"""``bnbench export --format tensorboard``: every run's per-epoch curves as TensorBoard event files.

One TensorBoard *run* (a folder) per stored run: ``DIR/<grid>/<cell>/<arm>/seed_<n>``,
where the cell and the arm are the report's labels (the arm: the compared factors, e.g.
"after" or "layer after"; the cell: the grid's other varying factors), so TensorBoard's run
filter selects by grid, cell, arm or seed. Tags: ``train/loss``,
``train/accuracy``, ``val/loss``, ``val/accuracy``, ``time/epoch_s``; the step is the epoch
and the wall time the run's start plus its epochs' training time. Written with
TensorBoard's own event writer (scalars as ``simple_value``, as ``tf.summary`` v1 did).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path

from bench.errors import UsageError

TAGS = {"train_loss": "train/loss", "train_acc": "train/accuracy", "val_loss": "val/loss",
        "val_acc": "val/accuracy", "epoch_s": "time/epoch_s"}


def _part(text: str) -> str:
    """A path component TensorBoard shows as typed: no slashes, spaces or odd characters."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", str(text)).strip("_") or "_"


def _start(started_at: str) -> float:
    try:
        return datetime.fromisoformat(str(started_at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def export_tensorboard(store: str | Path, output: str | Path, grid: str | None = None) -> list[Path]:
    """Write one event file per run of each grid (or of ``grid``); returns the run folders."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from bench.store import open_readonly, read_grids
    from reports.load import load

    conn = open_readonly(store)
    try:
        grids = list(read_grids(conn)["name"])
    finally:
        conn.close()
    if grid is not None:
        if grid not in grids:
            raise UsageError(f"--grid: no runs for grid {grid!r} in {store}")
        grids = [grid]
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output: cannot create {out} ({exc.strerror})") from None
    written = []
    for name in grids:
        data = load(store, name)
        by_run = dict(tuple(data.epochs.groupby("run_id"))) if len(data.epochs) else {}
        for run in data.runs.itertuples(index=False):
            folder = out / _part(name) / _part(run.cell) / _part(run.arm) / f"seed_{run.seed}"
            for old in folder.glob("events.out.tfevents.*"):  # an earlier export of this run
                old.unlink()
            writer = EventFileWriter(str(folder))
            clock = _start(run.started_at)
            epochs = by_run.get(run.run_id)
            for e in ([] if epochs is None else epochs.sort_values("epoch").itertuples(index=False)):
                clock += e.epoch_s if e.epoch_s is not None and math.isfinite(e.epoch_s) else 0.0
                values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(getattr(e, col)))
                          for col, tag in TAGS.items()
                          if getattr(e, col) is not None and math.isfinite(getattr(e, col))]
                writer.add_event(event_pb2.Event(wall_time=clock, step=int(e.epoch),
                                                 summary=summary_pb2.Summary(value=values)))
            writer.close()
            written.append(folder)
    return written
