"""The figures' look: seaborn's ``whitegrid`` theme in its ``notebook`` context, and its
palettes, without importing seaborn.

Why not ``import seaborn``: it imports scipy.stats, about 1.3 s of CPU, for a theme the figures
set once and a palette they read. In the HTML report of a large store that import sat on the
figure worker's path (docs/performance.md, "Report rendering"). The values below are
seaborn's (``sns.set_theme(style="whitegrid", context="notebook")``,
``sns.color_palette``), and ``tests/report_tests/test_theme.py`` checks them against seaborn
itself: a seaborn release that changes its look fails that test.
"""

from __future__ import annotations

import itertools

import matplotlib as mpl

#: seaborn's "deep" palette: ``set_theme``'s colour cycle, for anything drawn without a colour.
DEEP = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
        "#ccb974", "#64b5cd"]
#: seaborn's "colorblind" palette: one colour per arm, up to 10 arms.
COLORBLIND = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
              "#949494", "#ece133", "#56b4e9"]

#: What ``set_theme(style="whitegrid", context="notebook")`` changes in matplotlib's defaults
#: besides the colour cycle (``DEEP``), except ``image.cmap`` (seaborn's "rocket", a colormap
#: only seaborn registers; the report draws no image).
RC: dict[str, object] = {
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.grid": True, "axes.labelcolor": ".15",
    "axes.labelsize": 12.0, "axes.linewidth": 1.25, "axes.titlesize": 12.0,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 12.0, "grid.color": ".8", "grid.linewidth": 1.0,
    "legend.fontsize": 11.0, "legend.title_fontsize": 12.0, "lines.solid_capstyle": "round",
    "patch.edgecolor": "w", "patch.force_edgecolor": True, "text.color": ".15",
    "xtick.bottom": False, "xtick.color": ".15", "xtick.labelsize": 11.0, "xtick.major.size": 6.0,
    "xtick.major.width": 1.25, "xtick.minor.size": 4.0, "xtick.minor.width": 1.0,
    "ytick.color": ".15", "ytick.labelsize": 11.0, "ytick.left": False, "ytick.major.size": 6.0,
    "ytick.major.width": 1.25, "ytick.minor.size": 4.0, "ytick.minor.width": 1.0,
}


def apply() -> None:
    """Set the theme in matplotlib's rcParams, as ``sns.set_theme`` does."""
    mpl.rcParams.update(RC)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=colors("deep", len(DEEP)))


def colors(name: str, n: int) -> list[tuple[float, float, float]]:
    """``sns.color_palette(name, n)`` for "deep", "colorblind" or a qualitative matplotlib
    colormap ("tab20"): its colours as RGB, repeated in order when n exceeds them."""
    own = {"deep": DEEP, "colorblind": COLORBLIND}
    base = own[name] if name in own else mpl.colormaps[name].colors
    return [mpl.colors.to_rgb(c) for c in itertools.islice(itertools.cycle(base), n)]
