"""Grid specs: parse a TOML file, validate it before any training, expand it into runs.

A spec has two tables. ``[grid]`` holds settings shared by every run (name, seeds, target,
epoch budget, validation split, engine). ``[factors]`` maps each factor to its levels; a
scalar is a single level. An optional ``[report]`` says what the report compares
(``compare``, ``reference``: ``bench.cells.Arms``); it changes no run. Everything here is pure (no TensorFlow, no I/O but reading the
file), so that a bad spec is rejected in milliseconds with a message naming the bad key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, make_dataclass, replace
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import __version__
from bench.factors import DATASETS as DATASET_INFO
from bench.factors import FACTORS, SpecError, canonical, fail as _fail, is_int as _is_int
from bench.factors import choice, is_number as _is_number, positive_int as _positive_int

if TYPE_CHECKING:
    from bench.cells import Arms


#: Derived from the declarations in bench.factors (the one place a factor or dataset is defined).
PLACEMENTS: tuple[str, ...] = FACTORS["placement"].choices
NORMALIZERS: tuple[str, ...] = FACTORS["normalizer"].choices
ACTIVATIONS: tuple[str, ...] = FACTORS["activation"].choices
OPTIMIZERS: tuple[str, ...] = FACTORS["optimizer"].choices
INITIALIZERS: tuple[str, ...] = FACTORS["initializer"].choices
DATASETS: tuple[str, ...] = tuple(DATASET_INFO)
ENGINES = ("keras", "stacked")

#: Training-split sizes before the validation hold-out, for up-front combination checks.
DATASET_TRAIN_SIZES = {name: d.train_size for name, d in DATASET_INFO.items()}

#: Factor name -> default level. Every factor becomes a column of the ``runs`` table.
FACTOR_DEFAULTS: dict[str, Any] = {name: f.default for name, f in FACTORS.items()}

#: ``[grid]`` key -> default. ``None`` means required.
GRID_DEFAULTS: dict[str, Any] = {
    "name": None,
    "seeds": 5,
    "epochs": 10,
    "target_accuracy": 0.9,
    "validation_size": 5000,
    "train_limit": 0,  # 0 = use every training example left after the validation split
    "data_path": "",  # explicit dataset file or folder; empty = the usual search path
    "max_epochs": 10_000,  # bounds on what cannot be meant (a typo'd budget or seed count);
    "max_runs": 100_000,  # raise them in the spec for a real need
}

#: ``[engine]`` key -> default. These are speed knobs: recorded with every run.
ENGINE_DEFAULTS: dict[str, Any] = {
    "name": "stacked",
    "jit_compile": True,
    "steps_per_execution": 200,
    "seeds_per_program": 8,  # or "auto": sized from the device (bench.device.auto_seeds)
    "threads": 0,  # TensorFlow intra-op threads per worker; 0 = cores // jobs
    "deterministic": True,  # TensorFlow op determinism (Keras then declines jit_compile)
}


@dataclass(frozen=True)
class EngineSettings:
    """How runs are trained. Not part of a run's identity except ``name`` (see ``run_id``)."""

    name: str = ENGINE_DEFAULTS["name"]
    jit_compile: bool = ENGINE_DEFAULTS["jit_compile"]
    steps_per_execution: int = ENGINE_DEFAULTS["steps_per_execution"]
    seeds_per_program: int | str = ENGINE_DEFAULTS["seeds_per_program"]  # a count or "auto"
    threads: int = ENGINE_DEFAULTS["threads"]
    deterministic: bool = ENGINE_DEFAULTS["deterministic"]


class _RunConfigMethods:
    """The methods of :data:`RunConfig` (whose fields are made from the factor declarations)."""

    def identity(self) -> dict[str, Any]:
        """The fields hashed into ``run_id``: result-affecting settings only.

        The grid name, the data path and the speed knobs do not change what is computed,
        so the same run requested by two grids is trained once. A factor added after the
        first run ids (``hashed_at_default=False``) is left out at its default, so adding a
        factor changes no existing run id.
        """
        d = asdict(self)
        for key in ("grid", "data_path", "engine"):
            d.pop(key)
        for name, f in FACTORS.items():
            if not f.hashed_at_default and d[name] == f.default:
                d.pop(name)
        d["hidden"] = list(self.hidden)
        d["engine_name"] = self.engine.name
        d["harness_version"] = __version__
        return d

    @property
    def run_id(self) -> str:
        return _digest(self.identity())

    @property
    def program_key(self) -> str:
        """Hash of the identity without the seed: the runs one program may train together.

        Runs with one key differ only by seed (and by factors declared ``program=False``,
        of which there are none today). This is not the report's *cell* (which also leaves
        out the compared factor, placement): see ``bench.cells``.
        """
        d = self.identity()
        d.pop("seed")
        for name, f in FACTORS.items():
            if not f.program:
                d.pop(name, None)
        return _digest(d)

    @property
    def hidden_label(self) -> str:
        return FACTORS["hidden"].to_store(self.hidden)

    def factor_values(self) -> dict[str, Any]:
        """Factor name -> level as stored in the ``runs`` table (hidden as ``"300-100"``)."""
        return {name: f.to_store(getattr(self, name)) for name, f in FACTORS.items()}


#: One cell of the grid with one seed: everything that determines the result. A frozen
#: dataclass with the fields ``grid, seed, <one per factor, in declaration order>, epochs,
#: target_accuracy, validation_size, train_limit, data_path, engine``.
RunConfig = make_dataclass(
    "RunConfig",
    [("grid", str), ("seed", int),
     *((name, f.type) for name, f in FACTORS.items()),
     ("epochs", int), ("target_accuracy", float), ("validation_size", int), ("train_limit", int),
     ("data_path", str, field(default="")),
     ("engine", EngineSettings, field(default_factory=EngineSettings))],
    bases=(_RunConfigMethods,), frozen=True,
)
RunConfig.__module__ = __name__  # (make_dataclass's own ``module=`` needs Python 3.12)


@dataclass(frozen=True)
class GridSpec:
    """A validated grid spec."""

    name: str
    seeds: tuple[int, ...]
    epochs: int
    target_accuracy: float
    validation_size: int
    train_limit: int
    data_path: str
    factors: dict[str, tuple[Any, ...]]
    engine: EngineSettings
    source_text: str = ""
    arms: Arms | None = None  # what the report compares ([report]); None: the default arms

    @property
    def varying_factors(self) -> list[str]:
        """Factors with more than one level: the axes of the study."""
        return [k for k, levels in self.factors.items() if len(levels) > 1]

    @property
    def n_runs(self) -> int:
        """How many runs the grid requests (runs that differ only in a level without effect,
        such as the normalizer with placement "none", are one run)."""
        if not any(f.applies and set(self.factors[n]) != {f.default} for n, f in FACTORS.items()):
            return len(self.seeds) * math.prod(len(levels) for levels in self.factors.values())
        return len(self.seeds) * sum(1 for _ in self.iter_cells())

    def iter_cells(self) -> Iterator[dict[str, Any]]:
        """Every distinct combination of levels, in factor order, without-effect levels set to
        their defaults (bench.factors.canonical), each once."""
        names, seen = list(FACTORS), set()
        for combo in itertools.product(*(self.factors[n] for n in names)):
            levels = canonical(dict(zip(names, combo)))
            key = tuple(levels.values())
            if key not in seen:
                seen.add(key)
                yield levels

    def iter_runs(self) -> Iterator[RunConfig]:
        """Every (cell, seed) pair, cells in factor order, seeds innermost, one at a time."""
        for levels in self.iter_cells():
            for seed in self.seeds:
                yield RunConfig(
                    grid=self.name,
                    seed=seed,
                    epochs=self.epochs,
                    target_accuracy=self.target_accuracy,
                    validation_size=self.validation_size,
                    train_limit=self.train_limit,
                    data_path=self.data_path,
                    engine=self.engine,
                    **levels,
                )

    def expand(self) -> list[RunConfig]:
        """``iter_runs`` as a list (bounded by ``grid.max_runs``)."""
        return list(self.iter_runs())

    def with_engine(self, **changes: Any) -> GridSpec:
        return replace(self, engine=replace(self.engine, **changes))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def runs_hash(run_ids: Iterable[str]) -> str:
    """A grid's content hash: the set of runs it requests, in any order.

    Two specs that request the same runs are the same grid (comments, level order and speed
    knobs do not matter); anything that changes a run's identity changes the hash.
    """
    digest = hashlib.sha256()
    for run_id in sorted(run_ids):
        digest.update(run_id.encode() + b"\n")
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- validation


def _choice(key: str, v: Any, allowed: tuple[str, ...]) -> str:
    return choice(*allowed)(key, v)


def _seeds(raw: Any, max_runs: int) -> tuple[int, ...]:
    if _is_int(raw):
        if raw < 1:
            raise _fail("grid.seeds", f"{raw!r} is not a count >= 1 or a list of seeds")
        if raw > max_runs:  # checked before the seeds are made, not after
            raise _bound("grid.seeds", raw, "grid.max_runs", max_runs)
        return tuple(range(raw))
    if isinstance(raw, list) and raw and all(_is_int(s) and 0 <= s < 2**31 for s in raw):
        if len(set(raw)) != len(raw):
            raise _fail("grid.seeds", f"repeated seed in {raw!r}")
        return tuple(raw)
    raise _fail("grid.seeds", f"{raw!r} is not a count >= 1 or a non-empty list of seeds 0..2^31-1")


def _bound(key: str, value: int, bound_key: str, bound: int) -> SpecError:
    """A value above a bound that protects against typos, with the way past it."""
    return _fail(key, f"{value:_} is above the bound {bound_key} = {bound:_} (a typo?); "
                 f"for a real need set {bound_key} = N in [grid]")


def _check_keys(table: str, raw: dict, allowed: dict) -> None:
    for key in raw:
        if key not in allowed:
            raise _fail(f"{table}.{key}" if table else key, "unknown key", ", ".join(allowed))


def parse_spec(data: dict[str, Any], source_text: str = "") -> GridSpec:
    """Validate a parsed TOML document and return the spec; raise SpecError otherwise."""
    if not isinstance(data, dict):
        raise SpecError("spec: the document is not a TOML table")
    _check_keys("", data, {"grid": 0, "factors": 0, "engine": 0, "report": 0})
    grid_raw, factors_raw, engine_raw, report_raw = (
        data.get(k, {}) for k in ("grid", "factors", "engine", "report"))
    for table, raw in (("grid", grid_raw), ("factors", factors_raw), ("engine", engine_raw),
                       ("report", report_raw)):
        if not isinstance(raw, dict):
            raise _fail(table, f"must be a table ([{table}]), got {type(raw).__name__}")
    _check_keys("grid", grid_raw, GRID_DEFAULTS)
    _check_keys("factors", factors_raw, FACTOR_DEFAULTS)
    _check_keys("engine", engine_raw, ENGINE_DEFAULTS)
    _check_keys("report", report_raw, REPORT_KEYS)

    grid = {**GRID_DEFAULTS, **grid_raw}
    name = grid["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _fail("grid.name", f"{name!r} is not a non-empty name (required)")
    target = grid["target_accuracy"]
    if not _is_number(target) or not 0 < target <= 1:
        raise _fail("grid.target_accuracy", f"{target!r} is not a number in (0, 1]")
    if not isinstance(grid["data_path"], str):
        raise _fail("grid.data_path", f"{grid['data_path']!r} is not a path string")

    factors = {
        name_: f.levels(factors_raw[name_]) if name_ in factors_raw else (f.default,)
        for name_, f in FACTORS.items()
    }

    engine = {**ENGINE_DEFAULTS, **engine_raw}
    engine_settings = EngineSettings(
        name=_choice("engine.name", engine["name"], ENGINES),
        jit_compile=_bool("engine.jit_compile", engine["jit_compile"]),
        steps_per_execution=_positive_int("engine.steps_per_execution", engine["steps_per_execution"]),
        seeds_per_program=_seeds_per_program(engine["seeds_per_program"]),
        threads=_positive_int("engine.threads", engine["threads"], minimum=0),
        deterministic=_bool("engine.deterministic", engine["deterministic"]),
    )
    validation_size = _positive_int("grid.validation_size", grid["validation_size"], minimum=1)
    train_limit = _positive_int("grid.train_limit", grid["train_limit"], minimum=0)
    max_epochs = _positive_int("grid.max_epochs", grid["max_epochs"])
    max_runs = _positive_int("grid.max_runs", grid["max_runs"])
    epochs = _positive_int("grid.epochs", grid["epochs"])
    if epochs > max_epochs:
        raise _bound("grid.epochs", epochs, "grid.max_epochs", max_epochs)
    seeds = _seeds(grid["seeds"], max_runs)
    n_runs = len(seeds) * math.prod(len(levels) for levels in factors.values())
    if n_runs > max_runs:
        cells = n_runs // len(seeds)
        raise _bound(f"grid ({len(seeds)} seeds x {cells} cells)", n_runs, "grid.max_runs", max_runs)
    _check_combinations(factors, validation_size, train_limit)  # loops over cells: bounded first
    spec = GridSpec(
        name=name.strip(),
        seeds=seeds,
        epochs=epochs,
        target_accuracy=float(target),
        validation_size=validation_size,
        train_limit=train_limit,
        data_path=grid["data_path"],
        factors=factors,
        engine=engine_settings,
        source_text=source_text,
    )
    return replace(spec, arms=_report_arms(report_raw, spec)) if report_raw else spec


#: ``[report]`` keys: the compared factors and the reference arm (bench.cells.Arms).
REPORT_KEYS: dict[str, Any] = {"compare": ["normalizer", "placement"], "reference": "none"}


def _report_arms(raw: dict[str, Any], spec: GridSpec) -> Arms:
    """``[report]`` checked: known factors, a reference arm that some run of the grid is in."""
    from bench.cells import Arms, config_settings  # lazily: bench.cells imports pandas

    arms = Arms.parse(raw.get("compare"), raw.get("reference"), key="report")
    want = arms.reference_key()
    for levels in spec.iter_cells():
        cfg = RunConfig(grid=spec.name, seed=0, epochs=spec.epochs, target_accuracy=1.0,
                        validation_size=1, train_limit=0, **levels)
        settings = config_settings(cfg)
        if tuple(settings[n] for n in arms.factors) == want:
            return arms
    raise _fail("report.reference", f"no run of this grid is in arm {arms.reference!r} "
                f"(levels {', '.join(f'{n}={arms.reference_levels[n]}' for n in arms.compare)})")


def _check_combinations(
    factors: dict[str, tuple[Any, ...]], validation_size: int, train_limit: int
) -> None:
    """Reject combinations that cannot run, before any training."""
    for dataset in factors["dataset"]:
        available = DATASET_TRAIN_SIZES[dataset]
        if validation_size >= available:
            raise _fail(
                "grid.validation_size",
                f"{validation_size} leaves no training data in {dataset!r} "
                f"({available} training examples); use fewer than {available}",
            )
        n_train = available - validation_size
        if train_limit:
            n_train = min(n_train, train_limit)
        for batch in factors["batch_size"]:
            if batch > n_train:
                raise _fail(
                    "factors.batch_size",
                    f"{batch} is larger than the {n_train} training examples of {dataset!r}",
                )
    names = ("dataset", "placement", "normalizer", "norm_groups", "hidden", "batch_size")
    for combo in itertools.product(*(factors[n] for n in names)):
        _check_normalization(canonical({**FACTOR_DEFAULTS, **dict(zip(names, combo))}))


def normalized_widths(levels: dict[str, Any]) -> list[int]:
    """The width of each normalization layer of a cell's MLP, in forward order."""
    if levels["placement"] == "none":
        return []
    first = [DATASET_INFO[levels["dataset"]].n_features] if levels["placement"] == "after+input" else []
    return first + list(levels["hidden"])


def _check_normalization(levels: dict[str, Any]) -> None:
    """Refuse one cell whose normalization would run but compute nothing meaningful."""
    placement, normalizer = levels["placement"], levels["normalizer"]
    if placement != "none" and normalizer == "batch" and levels["batch_size"] == 1:
        # BN in training mode normalizes each feature over the batch: with one example every
        # normalized value is 0, the layer outputs beta whatever the input, and nothing before
        # it learns. It runs, silently meaningless, so it is refused here.
        raise _fail(
            "factors.batch_size",
            f"1 cannot be combined with placement {placement!r}: batch normalization of a "
            "single example outputs a constant; use batch_size >= 2, placement 'none' or "
            "another normalizer",
        )
    widths = normalized_widths(levels)
    if normalizer == "group":
        groups = levels["norm_groups"]
        divisors = [d for d in range(1, math.gcd(*widths) + 1) if math.gcd(*widths) % d == 0]
        bad = [w for w in widths if w % groups]
        if bad:
            raise _fail("factors.norm_groups", f"{groups} groups do not divide the normalized "
                        f"width {bad[0]} (placement {placement!r}, widths {widths})",
                        ", ".join(map(str, divisors)))
    if normalizer in ("layer", "group"):
        size = min(widths) // (levels["norm_groups"] if normalizer == "group" else 1)
        if size == 1:  # (x - mean) of one value is 0: the layer outputs beta whatever x is
            key = "factors.norm_groups" if normalizer == "group" else "factors.hidden"
            raise _fail(key, f"{normalizer} normalization over groups of one value outputs a "
                        f"constant (placement {placement!r}, widths {widths}); use wider layers "
                        "or fewer groups")


def _seeds_per_program(v: Any) -> int | str:
    """A positive count, or ``"auto"`` (sized from the device by the worker that trains)."""
    if v == "auto":
        return v
    if not _is_int(v) or v < 1:
        raise _fail("engine.seeds_per_program", f"{v!r} is not an integer >= 1 or \"auto\"")
    return int(v)


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(key, f"{v!r} is not true or false")
    return v


def load_spec(path: str | Path) -> GridSpec:
    """Read and validate a spec file. Raises SpecError for a missing file or bad TOML too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML ({exc})") from None
    try:
        return parse_spec(data, source_text=text)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
