"""Cells and pairs: the one definition of which runs may be compared with which.

A run is described by its *settings*: every factor level, the engine (name and every
option), the epoch budget, the target, the validation size, the training-set limit, the
data it trained on (a fingerprint of the arrays) and the harness version. A **cell** is a
set of runs whose settings are all equal except the *arm* factors and the seed. An **arm**
is one combination of levels of the compared factors (by default ``normalizer`` and
``placement``: "none", "batch before", "layer after", ...), see :class:`Arms`. A **pair**
is two runs of one cell with the same seed and different arms: they differ in nothing
else, which is what makes a seed-paired test valid. Runs that differ in anything else (an
engine override, a reduced grid with fewer epochs, another split) are in different cells
and never paired.

``reports`` uses this module, so it must stay free of TensorFlow (it imports only pandas
and ``bench.factors``, which is pure; ``bench.spec`` imports it lazily for ``[report]``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.factors import FACTORS, SpecError, canonical, fail

if TYPE_CHECKING:  # bench.spec imports this module lazily (its [report] table)
    from bench.spec import RunConfig

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
    """``_norm`` of each value, computed once per distinct value (keyed by type: True != 1).

    A column of one numpy dtype (numbers, booleans) is factorized first: its values share a
    type, so equal values are equal keys, and 10,000 runs hold a few hundred distinct levels.
    """
    if values.dtype != object:
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
        texts = np.array([_norm(v) for v in distinct.tolist()], dtype=object)  # Python scalars
        return texts[codes].tolist()
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # all text: _norm keeps it
        return values.tolist()
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


# --------------------------------------------------------------------------------- arms

#: The factors a report compares by default, in the order an arm's label names them.
DEFAULT_COMPARE: tuple[str, ...] = ("normalizer", "placement")
#: The arm every other is compared with by default: no normalization.
DEFAULT_REFERENCE = "none"


@dataclass(frozen=True)
class Arms:
    """What a report compares: the *compared* factors, whose combinations are the arms, and
    the reference arm every other arm is compared with, within a cell, paired by seed.

    A factor outside ``compare`` joins the arm (is *attached*) when it has no effect in the
    reference arm (its ``applies`` is false there, so the store holds it at its default for
    the reference's runs): otherwise a cell holding one of its other levels would have no
    reference run to pair with. With the default reference ``none`` that attaches
    ``norm_groups`` (and ``normalizer`` when only ``placement`` is compared). A factor that
    does apply in the reference stays a cell factor even if some arms ignore it:
    ``bn_momentum`` (hashed for placement "none") makes cells ``bn_momentum=0.9`` that hold
    the reference and the batch-norm arms, while the other normalizers' runs, stored at the
    default momentum, appear only in the default-momentum cell.
    """

    compare: tuple[str, ...] = DEFAULT_COMPARE
    reference: str = DEFAULT_REFERENCE
    reference_levels: dict[str, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference_levels", self._parse_reference())

    @classmethod
    def parse(cls, compare: Any = None, reference: Any = None, key: str = "report") -> Arms:
        """Check raw (TOML or command-line) values; raise SpecError naming ``key.compare`` or
        ``key.reference``. ``None`` takes the default."""
        if compare is None:
            compare = list(DEFAULT_COMPARE)
        if isinstance(compare, str):
            compare = [compare]
        if not isinstance(compare, list) or not compare:
            raise fail(f"{key}.compare", f"{compare!r} is not a non-empty list of factors",
                       ", ".join(FACTORS))
        for name in compare:
            if name not in FACTORS:
                raise fail(f"{key}.compare", f"unknown factor {name!r}", ", ".join(FACTORS))
        if len(set(compare)) != len(compare):
            raise fail(f"{key}.compare", f"repeated factor in {compare!r}")
        reference = DEFAULT_REFERENCE if reference is None else reference
        if not isinstance(reference, str) or not reference.strip():
            raise fail(f"{key}.reference", f"{reference!r} is not an arm such as 'none' or 'batch before'")
        try:
            return cls(tuple(compare), " ".join(reference.split()))
        except SpecError as exc:
            raise fail(f"{key}.reference", str(exc)) from None

    def _parse_reference(self) -> dict[str, Any]:
        """The reference's levels of every factor (defaults where it names none), canonical.

        A word is ``factor=level`` or a bare level of one compared factor (``before``,
        ``layer``); compared factors it does not name take their defaults.
        """
        given: dict[str, Any] = {}
        for word in self.reference.split():
            name, _, raw = word.rpartition("=")
            if not name:
                owners = [n for n in self.compare if FACTORS[n].choices and raw in FACTORS[n].choices]
                if len(owners) != 1:
                    named = ", ".join(self.compare)
                    raise SpecError(f"{word!r} is not a level of one compared factor ({named}); "
                                    "write factor=level")
                name = owners[0]
            if name not in self.compare:
                raise SpecError(f"{name!r} is not a compared factor ({', '.join(self.compare)}); "
                                "the reference names levels of compared factors only")
            f = FACTORS[name]
            value: Any = raw
            if f.type is int or f.type is float:
                try:
                    value = f.type(raw)
                except ValueError:
                    raise SpecError(f"{raw!r} is not a level of {name}") from None
            given[name] = f.check(name, value)
        return canonical({**{n: f.default for n, f in FACTORS.items()}, **given})

    @property
    def factors(self) -> tuple[str, ...]:
        """The compared factors, then the attached ones (see the class): what an arm fixes."""
        fixed = list(self.compare)
        grew = True
        while grew:  # attached factors can switch others on (normalizer -> norm_groups)
            grew = False
            for n, f in FACTORS.items():
                if (n not in fixed and f.applies is not None and not f.applies(self.reference_levels)
                        and self._switched_on_by(fixed, f.applies)):
                    fixed.append(n)
                    grew = True
        attached = [n for n in FACTORS if n in fixed and n not in self.compare]
        return (*self.compare, *attached)

    def _switched_on_by(self, arm_factors: Sequence[str], applies) -> bool:
        """Whether other levels of ``arm_factors`` alone make a factor apply.

        A factor whose relevance hangs on a cell factor instead (``widths`` on
        ``architecture``) is not attached: it is equal within a cell, whatever the arm.
        """
        options = [FACTORS[n].choices or (self.reference_levels[n],) for n in arm_factors]
        return any(applies({**self.reference_levels, **dict(zip(arm_factors, combo))})
                   for combo in itertools.product(*options))

    def reference_key(self) -> tuple[str, ...]:
        """The reference arm's stored levels as :func:`settings_frame` text."""
        return tuple(_norm(FACTORS[n].to_store(self.reference_levels[n])) for n in self.factors)

    def table(self, runs: pd.DataFrame, settings: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per distinct arm among ``runs``: ``key`` (stored levels), ``label``,
        ``levels`` (dict of the levels that apply), ``reference`` (bool); reference first, the
        others in the order of each compared factor's choices. ``settings``: see
        :func:`_settings` (likewise below)."""
        s = _settings(runs, settings)
        names = list(self.factors)
        _, first = _distinct_rows(s[names])  # in order of first appearance
        keys = list(map(tuple, s[names].iloc[first].itertuples(index=False)))
        applied: list[dict[str, str]] = []
        for key in keys:
            levels = dict(zip(names, key))
            full = {n: _typed(n, v) for n, v in levels.items()}
            full = {**{n: f.default for n, f in FACTORS.items()}, **full}
            applied.append({n: v for n, v in levels.items()
                            if FACTORS[n].applies is None or FACTORS[n].applies(full)})
        shown = [n for n in names if len({a.get(n) for a in applied if n in a}) > 1]
        labels = [_label(a, shown) or _label(a, _alone(a)) for a in applied]
        ref = self.reference_key()
        out = pd.DataFrame({"key": keys, "label": labels, "levels": applied,
                            "reference": [k == ref for k in keys]})
        out["_rank"] = [(not r, *(_rank(n, k[i]) for i, n in enumerate(names)))
                        for r, k in zip(out["reference"], keys)]
        return out.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)

    def labels(self, runs: pd.DataFrame, table: pd.DataFrame | None = None,
               settings: pd.DataFrame | None = None) -> pd.Series:
        """Each run's arm label (see :meth:`table`)."""
        table = self.table(runs, settings) if table is None else table
        by_key = dict(zip(table["key"], table["label"]))
        s = _settings(runs, settings)[list(self.factors)]
        codes, first = _distinct_rows(s)
        labels = np.array([by_key[tuple(k)] for k in s.iloc[first].itertuples(index=False)], dtype=object)
        return pd.Series(labels[codes], index=runs.index, dtype=object)


def _typed(name: str, text: str) -> Any:
    """A stored level as text back to the factor's Python type, for ``applies``."""
    f = FACTORS[name]
    try:
        return f.type(float(text)) if f.type in (int, float) else text
    except ValueError:
        return text


def _alone(levels: Mapping[str, str]) -> list[str]:
    """What a label shows when no arm factor varies (one arm): placement and the levels off
    their defaults ("after", "layer after"), or every level when that is nothing."""
    shown = [n for n, v in levels.items()
             if n == "placement" or v != _norm(FACTORS[n].to_store(FACTORS[n].default))]
    return shown or list(levels)


def _rank(name: str, text: str) -> tuple[int, str]:
    choices = FACTORS[name].choices or ()
    return (choices.index(text), "") if text in choices else (len(choices), text)


def _label(levels: Mapping[str, str], shown: Sequence[str]) -> str:
    """``batch before``: bare levels of categorical factors, ``name=level`` of the others."""
    return " ".join(v if FACTORS[n].choices else f"{n}={v}" for n, v in levels.items() if n in shown)


#: The default arms (``compare = ["normalizer", "placement"]``, reference ``none``).
DEFAULT_ARMS = Arms()
#: The factors of the default arms: what cells leave out by default.
COMPARED: tuple[str, ...] = DEFAULT_ARMS.factors


def _settings(runs: pd.DataFrame, settings: pd.DataFrame | None) -> pd.DataFrame:
    """``settings`` when a caller computed it (once per load: it is most of loading a large
    store), else :func:`settings_frame` of ``runs``."""
    return settings_frame(runs) if settings is None else settings


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
            for key in sorted(distinct.columns):  # code -1 (missing): the {} row
                out[f"{prefix}.{key}"] = np.array(_norm_all(distinct[key]), dtype=object)[codes]
    if "engine.name" not in out:
        out["engine.name"] = runs["engine"].map(_norm) if "engine" in runs else UNKNOWN
    out["harness_version"] = (
        [_norm(_json_object(t).get("harness_version")) for t in runs["config_json"]]
        if "config_json" in runs else UNKNOWN
    )
    return out.fillna(UNKNOWN)


def _distinct_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(code of each row's combination of values, position of each combination's first row),
    codes numbered in order of first appearance: text built once per combination instead of
    once per run (a 10,000-run store holds a few hundred cells)."""
    key = np.zeros(len(frame), np.int64)
    for col in frame.columns:  # mixed radix, renumbered after each column: no overflow
        codes, levels = pd.factorize(frame[col], use_na_sentinel=False)
        key = pd.factorize(key * len(levels) + codes)[0]
    _, first = np.unique(key, return_index=True)  # key numbers first appearances 0, 1, ...
    return key, first


def _varies(col: pd.Series) -> bool:
    """``col.nunique() > 1``, without hashing a column whose values all equal its first (most
    settings, in most stores)."""
    values = col.to_numpy()
    if len(values) and values[0] == values[0] and (values == values[0]).all():
        return False
    return col.nunique() > 1


def cell_keys(runs: pd.DataFrame, compared: Sequence[str] = COMPARED) -> pd.Series:
    """One text key per run: equal keys <=> same cell (all settings equal but ``compared``)."""
    s = settings_frame(runs).drop(columns=list(compared))
    return pd.Series(
        ["|".join(f"{c}={v}" for c, v in zip(s.columns, row)) for row in s.itertuples(index=False)],
        index=runs.index, dtype=object,
    )


def cell_labels(runs: pd.DataFrame, compared: Sequence[str] = COMPARED,
                settings: pd.DataFrame | None = None) -> pd.Series:
    """A readable label per run naming only the settings that vary among these runs.

    Distinct cells always get distinct labels (a label lists every setting on which any two
    cells differ); a single cell reads "all runs".
    """
    s = _settings(runs, settings).drop(columns=list(compared))
    varying = [c for c in s.columns if _varies(s[c])]
    if not varying:
        return pd.Series("all runs", index=runs.index, dtype=object)
    codes, first = _distinct_rows(s[varying])
    labels = np.array([", ".join(f"{c}={v}" for c, v in zip(varying, row))
                       for row in s[varying].iloc[first].itertuples(index=False)], dtype=object)
    return pd.Series(labels[codes], index=runs.index, dtype=object)


def varying_settings(runs: pd.DataFrame, compared: Sequence[str] = COMPARED,
                     settings: pd.DataFrame | None = None) -> list[str]:
    """The settings (other than ``compared``) that take more than one value among ``runs``."""
    s = _settings(runs, settings).drop(columns=list(compared))
    return [c for c in s.columns if _varies(s[c])]


def duplicates(runs: pd.DataFrame, settings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Runs that share every setting and the seed with another run, i.e. cell, arm and seed
    whatever the arm's factors (should be none)."""
    return runs[_settings(runs, settings).assign(_seed=runs["seed"].to_numpy()).duplicated(keep=False)]


def pair(runs: pd.DataFrame, reference: str, other: str, columns: Sequence[str],
         factor: str = "arm", on: Sequence[str] = ("cell", "seed")) -> pd.DataFrame:
    """Join the ``reference`` and ``other`` levels of ``factor`` (an arm label, or any
    column) into seed pairs, one to one.

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
