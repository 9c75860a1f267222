"""Every factor and every dataset, each declared once; the rest of bnbench reads these.

A *factor* is a setting a grid may vary (``[factors]`` in a spec). Its :class:`Factor`
declaration says everything the harness needs to know about it: its default level, how a
level is checked (and the one-line error that names the key and the allowed values), the
type of its ``runs`` column in the store, whether it changes the compiled program, when it
has no effect (then it is set to its default so that equal computations share one run id),
and a help line for ``bnbench run --help``. The spec parser, ``RunConfig``'s fields, the
store's columns and its migrations, ``plan``'s cost keys and the report's cells are all
derived from :data:`FACTORS`; adding a factor is one declaration here plus its support in
the engines (``bench/model.py`` and ``bench/engines/``). See docs/decisions.md.

A *dataset* is one :class:`DatasetInfo` in :data:`DATASETS`: its loader (a function of
``bench.datasets``), input shape, classes, split sizes and where it is looked for.

Pure: no numpy, no TensorFlow (the spec parser imports this).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SpecError(ValueError):
    """A grid spec that cannot be run; the message names the bad key and what is allowed."""


def fail(key: str, problem: str, allowed: str | None = None) -> SpecError:
    """The one-line error for a bad key: ``key: problem (allowed: ...)``."""
    msg = f"{key}: {problem}"
    if allowed:
        msg += f" (allowed: {allowed})"
    return SpecError(msg)


# --------------------------------------------------------------------------- level checks
# Each takes (key, raw TOML value) and returns the level, or raises SpecError naming the key.

def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def choice(*allowed: str) -> Callable[[str, Any], str]:
    """A level that must be one of ``allowed``."""
    def check(key: str, v: Any) -> str:
        if not isinstance(v, str) or v not in allowed:
            raise fail(key, f"unknown value {v!r}", ", ".join(allowed))
        return v
    check.choices = allowed  # type: ignore[attr-defined]  # read by help texts and tests
    return check


def positive_number(key: str, v: Any, *, below_one: bool = False) -> float:
    if not is_number(v) or v <= 0 or (below_one and v >= 1):
        bound = "a number in (0, 1)" if below_one else "a positive number"
        raise fail(key, f"{v!r} is not {bound}")
    return float(v)


def positive_int(key: str, v: Any, *, minimum: int = 1) -> int:
    if not is_int(v) or v < minimum:
        raise fail(key, f"{v!r} is not an integer >= {minimum}")
    return int(v)


def widths(key: str, v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or not all(is_int(h) and 1 <= h <= 65536 for h in v):
        raise fail(key, f"{v!r} is not a non-empty list of layer widths (integers 1..65536)")
    return tuple(int(h) for h in v)


def width_label(v: tuple[int, ...]) -> str:
    """Widths as stored and shown: ``(300, 100)`` -> ``"300-100"``."""
    return "-".join(str(h) for h in v)


# --------------------------------------------------------------------------- declarations

@dataclass(frozen=True)
class Factor:
    """One factor: what a spec may say about it and how every part of bnbench treats it."""

    name: str
    type: type  # the Python type of a level (a field of RunConfig)
    default: Any
    check: Callable[[str, Any], Any]  # (key, raw value) -> level; SpecError names key and allowed
    column: str  # SQLite type of its ``runs`` column: TEXT, INTEGER or REAL
    help: str  # one line for ``bnbench run --help``
    #: True: a different level is a different compiled program (the program key, and so
    #: which runs one stacked program may train together). False: only the numbers fed to
    #: the same program change. Today every factor changes the program; a future factor that
    #: does not (say, a learning rate fed as a tensor) could let runs share one program.
    program: bool = True
    #: True when the level changes what an epoch costs (``bnbench plan`` matches measured
    #: runs on these factors to estimate a grid's time).
    cost: bool = False
    #: True for the factors of bnbench's first run ids: always in the identity hash. A factor
    #: added later is hashed only when not at its default, so adding it changes no run id.
    hashed_at_default: bool = False
    #: When the level has no effect (e.g. the normalizer with placement "none"): given the
    #: run's levels as written, False means "set me to my default", so that equal
    #: computations get one run id and are trained once. ``None``: always has an effect.
    applies: Callable[[Mapping[str, Any]], bool] | None = None
    #: A level is itself a list (hidden widths): then a list of lists is several levels.
    list_level: bool = False
    #: The level as stored in its column (hidden: "300-100").
    to_store: Callable[[Any], Any] = lambda v: v
    #: The schema version that added its column (bench.migrations adds it to older stores,
    #: filled with ``to_store(default)``). 1: in the first schema.
    since_schema: int = 1

    @property
    def choices(self) -> tuple[str, ...] | None:
        return getattr(self.check, "choices", None)

    def levels(self, raw: Any) -> tuple[Any, ...]:
        """The checked levels of a ``[factors]`` value: a scalar (or one list level) is one."""
        key = f"factors.{self.name}"
        if self.list_level:
            many = isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw)
            items = raw if many else [raw]
        else:
            items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise fail(key, "empty list of levels; give at least one level")
        levels = tuple(self.check(key, item) for item in items)
        if len(set(levels)) != len(levels):
            raise fail(key, f"repeated level in {raw!r}")
        return levels

    def describe(self) -> str:
        """``name`` (default ...; choices): help — one line of the factor reference."""
        shown = list(self.default) if isinstance(self.default, tuple) else self.default
        allowed = f"; one of {', '.join(self.choices)}" if self.choices else ""
        return f"{self.name} (default {shown!r}{allowed}): {self.help}"


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: where its loader is, its shapes and split sizes, where it is looked for."""

    name: str
    loader: str  # a function of bench.datasets: (data_path) -> raw arrays
    input_shape: tuple[int, ...]  # one example (images 28x28; flattened for the MLP)
    n_classes: int
    train_size: int  # training pool before the validation hold-out
    test_size: int  # the held-out test split
    uint8_images: bool  # pixels 0..255, scaled to [0, 1] on load
    looked_for: str  # for docs and errors

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("mnist", "_load_mnist", (28, 28), 10, 60000, 10000, True,
                "grid.data_path, $BNBENCH_DATA_DIR/mnist.npz, ../shared/data/mnist.npz, "
                "~/.keras/datasets/mnist.npz, then a Keras download"),
    DatasetInfo("fashion_mnist", "_load_fashion", (28, 28), 10, 60000, 10000, True,
                "grid.data_path, $BNBENCH_DATA_DIR/fashion-mnist, /usr/share/datasets/fashion-mnist "
                "(Debian: dataset-fashion-mnist), ~/.keras/datasets/fashion-mnist, then a Keras download"),
    DatasetInfo("digits", "_load_digits", (64,), 10, 1500, 297, False,
                "bundled with scikit-learn (offline)"),
    DatasetInfo("synthetic", "_load_synthetic", (64,), 10, 12000, 2000, False,
                "generated (bench.datasets.make_synthetic, offline)"),
)}

PLACEMENTS = ("none", "before", "after", "after+input")
NORMALIZERS = ("batch", "layer", "group", "rms")


def _normalizes(levels: Mapping[str, Any]) -> bool:
    return levels["placement"] != "none"


def _is_cnn(levels: Mapping[str, Any]) -> bool:
    return levels["architecture"] == "cnn"


#: Channels per stage of the CNN by default (bench.cnn.DEFAULT_WIDTHS, which checks it is this;
#: here because this module imports nothing of bench).
CNN_DEFAULT_WIDTHS = (8, 16)


FACTORS: dict[str, Factor] = {f.name: f for f in (
    Factor("dataset", str, "mnist", choice(*DATASETS), "TEXT",
           "training data (bench.factors.DATASETS)", cost=True, hashed_at_default=True),
    Factor("placement", str, "none", choice(*PLACEMENTS), "TEXT",
           "where normalization goes: none; before or after each hidden activation (each "
           "conv's in the CNN); after+input also normalizes the input", cost=True, hashed_at_default=True),
    Factor("activation", str, "leaky_relu", choice("leaky_relu", "relu", "sigmoid", "tanh"), "TEXT",
           "hidden activation (leaky_relu: slope 0.3, Keras' default)", hashed_at_default=True),
    Factor("hidden", tuple, (300, 100), widths, "TEXT",
           "hidden layer widths of the MLP, e.g. [300, 100]; [[300, 100], [100]] is two levels",
           cost=True, hashed_at_default=True, list_level=True, to_store=width_label,
           applies=lambda lv: not _is_cnn(lv)),
    Factor("initializer", str, "he_normal",
           choice("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal"),
           "TEXT", "initial Dense and conv kernels (biases 0)", hashed_at_default=True),
    Factor("optimizer", str, "sgd", choice("sgd", "momentum", "adam"), "TEXT",
           "sgd; momentum (SGD, 0.9); adam (Keras defaults)", hashed_at_default=True),
    Factor("learning_rate", float, 1e-3, positive_number, "REAL",
           "optimizer step size", hashed_at_default=True),
    Factor("batch_size", int, 32, positive_int, "INTEGER",
           "examples per training step", cost=True, hashed_at_default=True),
    Factor("bn_momentum", float, 0.99, lambda k, v: positive_number(k, v, below_one=True), "REAL",
           "batch normalization's moving-average momentum (only batch normalization keeps "
           "moving statistics)", hashed_at_default=True,
           # With placement "none" it has no effect either, but run ids have always hashed it there.
           applies=lambda lv: lv["normalizer"] == "batch" or lv["placement"] == "none"),
    Factor("bn_epsilon", float, 1e-3, positive_number, "REAL",
           "epsilon added to the variance (mean square for rms) by every normalizer",
           hashed_at_default=True),
    Factor("normalizer", str, "batch", choice(*NORMALIZERS), "TEXT",
           "what normalizes at the placement's positions: batch (over the batch), layer (over "
           "each example's features), group (over norm_groups groups of features), rms (root "
           "mean square over features, no centring); in the CNN a feature is a channel and "
           "layer/group/rms average over height x width too (bench/cnn.py)",
           cost=True, applies=_normalizes, since_schema=4),
    Factor("norm_groups", int, 4, positive_int, "INTEGER",
           "groups of group normalization; must divide every normalized width",
           cost=True, applies=lambda lv: _normalizes(lv) and lv["normalizer"] == "group",
           since_schema=4),
    Factor("architecture", str, "mlp", choice("mlp", "cnn"), "TEXT",
           "mlp: dense layers of widths `hidden`; cnn: a small VGG-style convolutional network "
           "of `widths` (bench/cnn.py; image datasets only)",
           cost=True, since_schema=5),
    Factor("widths", tuple, CNN_DEFAULT_WIDTHS, widths, "TEXT",
           "channels per CNN stage (two 3x3 convs, then 2x2 max-pool), e.g. [8, 16]; "
           "[[8, 16], [16, 32]] is two levels",
           cost=True, list_level=True, to_store=width_label, applies=_is_cnn, since_schema=5),
)}


def canonical(levels: dict[str, Any]) -> dict[str, Any]:
    """``levels`` with every factor that has no effect set to its default.

    Each ``applies`` sees the levels as given (one pass, so declaration order does not
    matter): a factor whose effect depends on another's relevance says so itself (norm_groups
    checks the placement as well as the normalizer).
    """
    return {name: f.default if f.applies is not None and not f.applies(levels) else levels[name]
            for name, f in FACTORS.items()}


def reference_lines() -> list[str]:
    """The factor reference, one line per factor, for ``--help`` and the docs."""
    return [f.describe() for f in FACTORS.values()]
