"""Cells and pairs: the one definition of which runs may be compared with which.

A run is described by its *settings*: every factor level, the engine (name and every
option), the epoch budget, the target, the validation size, the training-set limit, the
data it trained on (a fingerprint of the arrays) and the harness version. A **cell** is a
set of runs whose settings are all equal except the *compared* factors (``placement`` by
default) and the seed. A **pair** is two runs of one cell with the same seed and
different levels of the compared factor: they differ in nothing else, which is what makes
a seed-paired test valid. Runs that differ in anything else (an engine override, a reduced
grid with fewer epochs, another split) are in different cells and never paired.

``reports`` uses this module, so it must stay free of TensorFlow (it imports only pandas
and ``bench.spec``, which are pure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bench.factors import FACTORS
from bench.spec import RunConfig

#: The factors a report compares within a cell (a future normalizer factor joins these).
COMPARED: tuple[str, ...] = ("placement",)

#: Stored ``runs`` columns besides the factors that a cell's runs must share.
SETTING_COLUMNS: tuple[str, ...] = (
    "epochs_budget", "target_accuracy", "validation_size", "train_limit", "data_fingerprint",
)
#: Columns holding a JSON object whose every key is a setting (``engine.<key>``).
_JSON_SETTINGS = {"engine_json": "engine"}
UNKNOWN = "unknown"  # a setting a run does not record (stores from older versions)


class PairingError(ValueError):
    """Runs that should pair one-to-one do not (two runs of one cell, level and seed)."""


def _norm(value: Any) -> str:
    """A value as text that survives CSV and SQLite round trips (``0.05``, ``32``, ``"64-32"``)."""
    if value is None or (isinstance(value, float) and value != value):
        return UNKNOWN
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):  # a hash like "12e4..." must stay text, not become a number
        return value
    try:
        return f"{float(value):.12g}"
    except (TypeError, ValueError):
        return str(value)


def _norm_all(values: pd.Series) -> list[str]:
    """``_norm`` of each value, computed once per distinct value (keyed by type: True != 1)."""
    seen: dict[tuple[type, Any], str] = {}
    out = []
    for v in values:
        key = (type(v), v)
        if key not in seen:
            seen[key] = _norm(v)
        out.append(seen[key])
    return out


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def settings_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Every setting of each run as text, one column per setting (index kept).

    Columns: the factors, ``engine.<option>`` for each engine option, the ``SETTING_COLUMNS``
    and ``harness_version`` (from ``config_json``). A column a frame lacks reads "unknown",
    except a factor added after the frame was written (an old export): its runs were trained
    at its default, as the store's migration records too.
    """
    out = pd.DataFrame(index=runs.index)
    for name, f in FACTORS.items():
        out[name] = _norm_all(runs[name]) if name in runs else _norm(f.to_store(f.default))
    for col in SETTING_COLUMNS:
        out[col] = _norm_all(runs[col]) if col in runs else UNKNOWN
    for col, prefix in _JSON_SETTINGS.items():
        if col in runs:  # a store repeats a few engine objects over thousands of runs
            codes, texts = pd.factorize(runs[col])
            distinct = pd.DataFrame([*map(_json_object, texts), {}])
            decoded = distinct.iloc[codes].set_axis(runs.index)  # code -1 (missing): the {} row
            for key in sorted(decoded.columns):
                out[f"{prefix}.{key}"] = _norm_all(decoded[key])
    if "engine.name" not in out:
        out["engine.name"] = runs["engine"].map(_norm) if "engine" in runs else UNKNOWN
    out["harness_version"] = (
        [_norm(_json_object(t).get("harness_version")) for t in runs["config_json"]]
        if "config_json" in runs else UNKNOWN
    )
    return out.fillna(UNKNOWN)


def cell_keys(runs: pd.DataFrame, compared: Sequence[str] = COMPARED) -> pd.Series:
    """One text key per run: equal keys <=> same cell (all settings equal but ``compared``)."""
    s = settings_frame(runs).drop(columns=list(compared))
    return pd.Series(
        ["|".join(f"{c}={v}" for c, v in zip(s.columns, row)) for row in s.itertuples(index=False)],
        index=runs.index, dtype=object,
    )


def cell_labels(runs: pd.DataFrame, compared: Sequence[str] = COMPARED) -> pd.Series:
    """A readable label per run naming only the settings that vary among these runs.

    Distinct cells always get distinct labels (a label lists every setting on which any two
    cells differ); a single cell reads "all runs".
    """
    s = settings_frame(runs).drop(columns=list(compared))
    varying = [c for c in s.columns if s[c].nunique() > 1]
    if not varying:
        return pd.Series("all runs", index=runs.index, dtype=object)
    return pd.Series(
        [", ".join(f"{c}={v}" for c, v in zip(varying, row)) for row in s[varying].itertuples(index=False)],
        index=runs.index, dtype=object,
    )


def varying_settings(runs: pd.DataFrame, compared: Sequence[str] = COMPARED) -> list[str]:
    """The settings (other than ``compared``) that take more than one value among ``runs``."""
    s = settings_frame(runs).drop(columns=list(compared))
    return [c for c in s.columns if s[c].nunique() > 1]


def duplicates(runs: pd.DataFrame, compared: Sequence[str] = COMPARED) -> pd.DataFrame:
    """Runs that share cell, compared level(s) and seed with another run (should be none)."""
    key = cell_keys(runs, compared)
    frame = pd.DataFrame({"_cell": key, "_seed": runs["seed"]}, index=runs.index)
    for c in compared:
        frame[c] = runs[c]
    return runs[frame.duplicated(keep=False)]


def pair(runs: pd.DataFrame, reference: str, other: str, columns: Sequence[str],
         factor: str = "placement", on: Sequence[str] = ("cell", "seed")) -> pd.DataFrame:
    """Join the ``reference`` and ``other`` levels of ``factor`` into seed pairs, one to one.

    ``on`` must identify a cell and a seed (the report's ``cell`` label, or the output of
    :func:`cell_keys`, plus ``seed``). Columns get suffixes ``_a`` (reference) and ``_b``.
    Raises PairingError when a (cell, level, seed) holds more than one run: such runs are
    not a pair and are never silently double-counted.
    """
    cols = list(dict.fromkeys([*on, *columns]))
    a = runs.loc[runs[factor] == reference, cols]
    b = runs.loc[runs[factor] == other, cols]
    try:
        return a.merge(b, on=list(on), suffixes=("_a", "_b"), validate="one_to_one")
    except pd.errors.MergeError:
        dup = pd.concat([a, b])[list(on)]
        raise PairingError(
            f"{factor} {reference!r} vs {other!r}: several runs share one cell and seed "
            f"({len(dup) - len(dup.drop_duplicates())} extra); they cannot be paired"
        ) from None


def config_settings(cfg: RunConfig) -> dict[str, str]:
    """The settings of a run that is not trained yet, as :func:`settings_frame` names them.

    The data fingerprint is only known once the data is loaded: the spec's ``data_path``
    stands in for it (runs of one spec share it).
    """
    row = {k: _norm(v) for k, v in cfg.factor_values().items()}
    row.update(epochs_budget=_norm(cfg.epochs), target_accuracy=_norm(cfg.target_accuracy),
               validation_size=_norm(cfg.validation_size), train_limit=_norm(cfg.train_limit),
               data_fingerprint=f"path:{cfg.data_path}")
    row.update({f"engine.{k}": _norm(v) for k, v in sorted(cfg.engine.__dict__.items())})
    row["harness_version"] = _norm(cfg.identity()["harness_version"])
    return row


def config_cell_key(cfg: RunConfig, compared: Sequence[str] = COMPARED) -> str:
    """The cell of a run that is not trained yet (see :func:`config_settings`)."""
    return "|".join(f"{k}={v}" for k, v in config_settings(cfg).items() if k not in compared)
