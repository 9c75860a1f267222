"""Figures drawn in a worker process: the same SVG as in this process, errors raised, the
worker used only where it helps."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pandas as pd
import pytest

from bench.errors import UsageError
from reports import drawing, figures
from reports.load import load, load_epochs
from reports.render import build_interactions, build_tables, render_report

FAST = {"n_resamples": 200}


@pytest.fixture(scope="module")
def inputs(planted_store):
    data = load(planted_store)
    inter = build_interactions(data, 200, 200)
    return data, build_tables(data, 200).comparisons, inter.effects


def _drawing(inputs) -> drawing.Drawing:
    data, comparisons, effects = inputs
    d = drawing.Drawing(len(data.runs))
    d.data(data)
    d.comparisons(comparisons)
    d.effects(effects)
    return d


def _draw(inputs) -> tuple:
    return _drawing(inputs).result()


#: Run in a fresh interpreter, as ``bnbench report`` runs: the suite's own process may hold
#: TensorFlow, whose forked children ``in_worker`` avoids (see its docstring).
SAME_SVG = """
import sys
from bench.errors import UsageError
from reports import drawing, figures
from reports.load import load
from reports.render import build_interactions, build_tables
assert "tensorflow" not in sys.modules
data = load(sys.argv[1])
comparisons, effects = build_tables(data, 200).comparisons, build_interactions(data, 200, 200).effects
drawn = {}
for worker in (True, False):
    drawing.in_worker = lambda n_runs: worker
    d = drawing.Drawing(len(data.runs))
    d.data(data)
    d.comparisons(comparisons)
    d.effects(effects)
    drawn[worker] = d.result()
    assert d.drawn_here is not worker, "the worker died"
assert list(drawn[True][0]) == list(drawing.ORDER)
assert drawn[True] == drawn[False], "the worker drew other SVG"
assert drawn[False][1] == figures.figure_captions(data)
assert drawn[False][2] == figures.figure_notes(data, comparisons)
print("same")
"""


def test_worker_draws_the_same_svg_as_this_process(planted_store):
    res = subprocess.run([sys.executable, "-c", SAME_SVG, str(planted_store)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "same", res.stderr[-3000:]


def test_worker_only_for_a_large_store_with_a_core_idle(monkeypatch):
    big = drawing.MIN_RUNS
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # the suite may have imported it
    monkeypatch.setattr(drawing, "running_tasks", lambda: 1)  # this process alone
    monkeypatch.setattr(drawing, "usable_cores", lambda: 1)
    assert not drawing.in_worker(big)
    monkeypatch.setattr(drawing, "usable_cores", lambda: 2)
    assert drawing.in_worker(big) == (sys.platform == "linux" and sys.version_info < (3, 12))
    assert not drawing.in_worker(big - 1)
    monkeypatch.setattr(drawing, "running_tasks", lambda: 2)  # another process busy
    assert not drawing.in_worker(big)
    monkeypatch.setattr(drawing, "running_tasks", lambda: 1)
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    assert not drawing.in_worker(big)  # a forked child of TensorFlow's process crashed


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/loadavg is Linux's")
def test_running_tasks_counts_this_process():
    assert drawing.running_tasks() >= 1


@pytest.mark.parametrize("worker", [False, True])
def test_a_figure_error_is_raised_by_the_report(planted_store, monkeypatch, worker):
    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: worker)

    def broken(comparisons):
        raise ValueError("forest broke")

    monkeypatch.setattr(figures, "forest", broken)  # a forked worker inherits the patch
    with pytest.raises(ValueError, match="forest broke"):
        render_report(planted_store, **FAST)


@pytest.mark.parametrize("with_epochs", [True, False])
def test_a_dead_worker_leaves_the_figures_to_this_process(inputs, planted_store, monkeypatch, with_epochs):
    """The worker killed (as by the OOM killer) while drawing: the same figures, drawn here;
    from data loaded without the epochs (as the report loads it), after reading them here."""
    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: False)
    want = _draw(inputs)
    here, real = os.getpid(), figures.learning_curves

    def killed_in_the_worker(data):
        if os.getpid() != here:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(data)

    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: True)
    monkeypatch.setattr(figures, "learning_curves", killed_in_the_worker)  # the fork inherits it
    data, comparisons, effects = inputs
    if not with_epochs:
        data = load(planted_store, with_epochs=False)
    d = _drawing((data, comparisons, effects))
    assert d.result() == want
    assert d.drawn_here


@pytest.mark.parametrize("grid", [None, "synthetic"])
def test_loading_without_epochs_then_reading_them_is_loading_with_them(planted_store, grid):
    """The report's main process loads without the epochs, its figures read them later
    (``load_epochs``): the same runs, per-run epoch times and epochs as one full load."""
    full = load(planted_store, grid)
    light = load(planted_store, grid, with_epochs=False)
    assert light.epochs is None
    pd.testing.assert_frame_equal(light.runs, full.runs)  # epoch_s_median included
    load_epochs(light)
    pd.testing.assert_frame_equal(light.epochs, full.epochs)


def test_a_worker_dead_before_the_data_leaves_the_figures_to_this_process(inputs, monkeypatch):
    """Killed while importing matplotlib, before this process sends it the loaded data."""
    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: False)
    want = _draw(inputs)

    def killed():
        os.kill(os.getpid(), signal.SIGKILL)

    killed.__module__, killed.__qualname__ = "reports.drawing", "_import_figures"  # sent by name
    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: True)
    monkeypatch.setattr(drawing, "_import_figures", killed)  # the fork inherits it
    d = drawing.Drawing(len(inputs[0].runs))
    assert d.importing.exception(timeout=60) is not None  # dead, and the pool knows it
    data, comparisons, effects = inputs
    d.data(data)
    d.comparisons(comparisons)
    d.effects(effects)
    assert d.result() == want
    assert d.drawn_here


#: ``bnbench report`` with and without the worker, each in a fresh interpreter (as a user runs it).
CLI = """
import sys
from bench.cli import main
from reports import drawing
drawing.in_worker = lambda n_runs: sys.argv[3] == "worker"
result = drawing.Drawing.result
def checked(self):
    out = result(self)
    assert self.drawn_here is (sys.argv[3] == "here"), "the worker died"
    return out
drawing.Drawing.result = checked
assert main(["report", sys.argv[1], "-o", sys.argv[2]]) == 0
"""


def test_the_command_writes_the_same_report_with_its_worker(planted_store, tmp_path):
    pages = {}
    for how in ("worker", "here"):
        out = tmp_path / f"{how}.html"
        res = subprocess.run([sys.executable, "-c", CLI, str(planted_store), str(out), how],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        pages[how] = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<generated>", out.read_text())
    assert pages["worker"] == pages["here"]


def test_a_store_the_report_cannot_load_stops_its_worker(planted_store, monkeypatch):
    """Started before loading, the worker is stopped when the load fails (an unknown grid)."""
    monkeypatch.setattr(drawing, "in_worker", lambda n_runs: True)
    closed, close = [], drawing.Drawing.close

    def recorded(self):
        closed.append(self._pool is not None)
        close(self)

    monkeypatch.setattr(drawing.Drawing, "close", recorded)
    with pytest.raises(UsageError, match="no grid named 'nope'"):
        render_report(planted_store, grid="nope", **FAST)
    assert closed == [True]
