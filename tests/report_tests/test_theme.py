"""``reports.theme`` is seaborn's look: the same rcParams as ``sns.set_theme(style="whitegrid",
context="notebook")`` and the same palettes, without importing seaborn at run time."""

from __future__ import annotations

import subprocess
import sys

import matplotlib as mpl
import pytest
import seaborn as sns

from reports import theme


def _rc_after(set_look) -> dict:
    """matplotlib's rcParams after ``set_look()`` from the defaults (restored afterwards)."""
    with mpl.rc_context():
        mpl.rcdefaults()
        set_look()
        return dict(mpl.rcParams)


def test_rcparams_are_set_themes():
    ours = _rc_after(theme.apply)
    seaborns = _rc_after(lambda: sns.set_theme(style="whitegrid", context="notebook"))
    differ = {k for k in seaborns if ours[k] != seaborns[k]}
    # the one exception, and why: seaborn's "rocket" colormap exists only once seaborn registers it
    assert differ == {"image.cmap"} and seaborns["image.cmap"] == "rocket"


@pytest.mark.parametrize("name", ["deep", "colorblind", "tab20"])
@pytest.mark.parametrize("n", [1, 3, 10, 11, 20, 25])
def test_palettes_are_seaborns(name, n):
    assert theme.colors(name, n) == list(sns.color_palette(name, n))


@pytest.mark.parametrize(("module", "unwanted"), [
    ("reports.figures", "m.split('.')[0] == 'seaborn' or m.startswith('scipy.stats')"),
    ("reports.history_report", "m.split('.')[0] == 'seaborn'"),  # its change points use scipy.stats
])
def test_figures_do_not_import_seaborn(module, unwanted):
    """Nor scipy.stats, which seaborn imports (~1.3 s): the report's figure worker pays neither."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if {unwanted}))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
