"""Factor declarations (bench.factors): one declaration each, and adding one changes no run id.

Run ids are what the committed stores (ablations/baselines/, tests/data/) are keyed on: a
change of the identity hash would orphan every stored run, so they are pinned here.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from bench.factors import DATASETS, FACTORS, canonical
from bench.spec import FACTOR_DEFAULTS, RunConfig, SpecError, load_spec, parse_spec

ROOT = Path(__file__).parents[1]
BASE = {"grid": {"name": "g", "validation_size": 297, "seeds": 2},
        "factors": {"dataset": "digits", "hidden": [32, 16]}}


def spec(**factors):
    return parse_spec({"grid": BASE["grid"], "factors": {**BASE["factors"], **factors}})


# ---------------------------------------------------------------- run ids are stable

#: run_id and program_key of the first run of ablations/smoke.toml, computed before the
#: factor declarations and the normalizer existed (bnbench 0.1.0, schema 3).
SMOKE_FIRST = ("7dcd35e65d43d918", "025ad5705a28039d")


def test_a_known_run_id_is_pinned():
    first = load_spec(ROOT / "ablations" / "smoke.toml").expand()[0]
    assert (first.run_id, first.program_key) == SMOKE_FIRST


@pytest.mark.parametrize(("store", "program_col"), [
    ("ablations/baselines/gate.sqlite", "program_key"),
    ("tests/data/gate_schema1.sqlite", "cell_id"),  # schema 1 named it cell_id
])
def test_the_committed_stores_hold_exactly_the_runs_gate_toml_requests(store, program_col):
    conn = sqlite3.connect(f"file:{ROOT / store}?mode=ro", uri=True)
    try:
        stored = dict(conn.execute(f"SELECT run_id, {program_col} FROM runs").fetchall())
    finally:
        conn.close()
    runs = load_spec(ROOT / "ablations" / "gate.toml").expand()
    assert {r.run_id: r.program_key for r in runs} == stored


def test_a_new_factor_at_its_default_is_not_hashed():
    implicit = spec(placement="before").expand()
    explicit = spec(placement="before", normalizer="batch", norm_groups=4).expand()
    assert [r.run_id for r in explicit] == [r.run_id for r in implicit]
    assert "normalizer" not in implicit[0].identity() and "norm_groups" not in implicit[0].identity()
    layer = spec(placement="before", normalizer="layer").expand()
    assert layer[0].identity()["normalizer"] == "layer"
    assert {r.run_id for r in layer}.isdisjoint(r.run_id for r in implicit)
    assert layer[0].program_key != implicit[0].program_key


# ---------------------------------------------------------------- levels without effect

def test_placement_none_is_one_run_whatever_the_normalizer():
    s = spec(placement=["none", "before"], normalizer=["batch", "layer", "group", "rms"])
    runs = s.expand()
    assert s.n_runs == len(runs) == 2 * (1 + 4)  # one unnormalized arm, four normalized
    assert len({r.run_id for r in runs}) == len(runs)
    none = [r for r in runs if r.placement == "none"]
    assert [r.run_id for r in none] == [r.run_id for r in spec(placement="none").expand()]


def test_norm_groups_only_counts_for_group_normalization():
    s = spec(placement="after", normalizer=["layer", "group"], norm_groups=[2, 8])
    cells = {(r.normalizer, r.norm_groups) for r in s.expand()}
    assert cells == {("layer", 4), ("group", 2), ("group", 8)}
    assert s.n_runs == 2 * 3


def test_canonical_is_independent_of_declaration_order():
    levels = {**FACTOR_DEFAULTS, "placement": "none", "normalizer": "layer", "bn_momentum": 0.9,
              "norm_groups": 2}
    assert canonical(levels) == {**levels, "normalizer": "batch", "norm_groups": 4}
    # BN's momentum has no effect under layer normalization: one run whatever it says.
    assert canonical({**levels, "placement": "after"})["bn_momentum"] == FACTOR_DEFAULTS["bn_momentum"]


# ---------------------------------------------------------------- refused up front

@pytest.mark.parametrize(("factors", "needle"), [
    ({"normalizer": "instance"}, "factors.normalizer: unknown value 'instance' (allowed: batch, layer, group, rms)"),
    ({"norm_groups": 0}, "factors.norm_groups: 0 is not an integer >= 1"),
    ({"placement": "before", "normalizer": "group", "norm_groups": 3},
     "factors.norm_groups: 3 groups do not divide the normalized width 32 (placement 'before', "
     "widths [32, 16]) (allowed: 1, 2, 4, 8, 16)"),
    ({"placement": "before", "normalizer": "group", "norm_groups": 16},
     "factors.norm_groups: group normalization over groups of one value outputs a constant"),
    ({"placement": "after", "normalizer": "layer", "hidden": [32, 1]},
     "factors.hidden: layer normalization over groups of one value outputs a constant"),
    ({"placement": ["none", "after"], "normalizer": ["layer", "batch"], "batch_size": [1, 8]},
     "factors.batch_size: 1 cannot be combined with placement 'after': batch normalization"),
])
def test_impossible_normalization_is_refused_in_one_line(factors, needle):
    with pytest.raises(SpecError) as err:
        spec(**factors)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_groups_that_divide_every_normalized_width_are_allowed():
    # after+input normalizes the 64 input features too: 16 divides 64 and 32
    assert spec(placement="after+input", normalizer="group", norm_groups=16, hidden=[32, 32]).expand()


def test_batch_of_one_is_allowed_with_normalizers_that_do_not_use_the_batch():
    for normalizer in ("layer", "group", "rms"):
        assert spec(placement="before", normalizer=normalizer, batch_size=1).expand()


# ---------------------------------------------------------------- the declarations

def test_every_declaration_is_usable():
    fields = [f.name for f in dataclasses.fields(RunConfig)]
    assert fields[2:2 + len(FACTORS)] == list(FACTORS)
    for name, f in FACTORS.items():
        raw = list(f.default) if isinstance(f.default, tuple) else f.default
        assert f.levels(raw) == (f.default,), name  # the default passes its own check
        assert f.column in ("TEXT", "INTEGER", "REAL") and f.help, name
        assert f.name in f.describe()


def test_dataset_declarations_match_the_loaded_data():
    from bench.datasets import _raw

    for name in ("digits", "synthetic"):  # the offline ones
        raw, _ = _raw(name, "")
        info = DATASETS[name]
        assert raw.x.shape == (info.train_size, info.n_features)
        assert raw.x_test.shape == (info.test_size, info.n_features)
        assert int(raw.y.max()) + 1 == info.n_classes


def test_run_help_lists_every_factor_from_its_declaration(capsys):
    from bench.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for f in FACTORS.values():
        assert f"  {f.name} (default " in out and f.help[:30] in out.replace("\n", " "), f.name


# ---------------------------------------------------------------- architecture and widths

def test_hidden_counts_only_for_the_mlp_and_widths_only_for_the_cnn():
    mlp = spec(placement="before").expand()
    explicit = spec(placement="before", architecture="mlp", widths=[[4, 8], [16, 32]]).expand()
    assert [r.run_id for r in explicit] == [r.run_id for r in mlp]  # MLP run ids unchanged
    assert "architecture" not in mlp[0].identity() and "widths" not in mlp[0].identity()
    s = spec(placement="before", architecture="cnn", hidden=[[32, 16], [64]], widths=[[4, 8], [8, 16]])
    cells = {(r.hidden, r.widths) for r in s.expand()}
    assert cells == {(FACTOR_DEFAULTS["hidden"], (4, 8)), (FACTOR_DEFAULTS["hidden"], (8, 16))}
    assert s.n_runs == len(s.expand()) == 2 * 2


def test_auto_engine_is_stacked_for_the_mlp_and_keras_for_the_cnn():
    runs = spec(architecture=["mlp", "cnn"], widths=[4, 8]).expand()
    assert {(r.architecture, r.engine.name) for r in runs} == {("mlp", "stacked"), ("cnn", "keras")}
    named = parse_spec({**BASE, "factors": {**BASE["factors"], "architecture": "cnn", "widths": [4, 8]},
                        "engine": {"name": "stacked"}}).expand()
    assert {r.engine.name for r in named} == {"stacked"}
    # "auto" never reaches a run id: the MLP's are those of a spec that names "stacked"
    stacked = parse_spec({**BASE, "engine": {"name": "stacked"}}).expand()
    assert [r.run_id for r in spec().expand()] == [r.run_id for r in stacked]


@pytest.mark.parametrize(("factors", "needle"), [
    ({"dataset": "synthetic"}, "factors.dataset: architecture = 'cnn' needs image data"),
    ({"widths": [4, 8, 16, 32]}, "factors.widths: widths has 4 stages but digits's 8x8 images allow at most 3"),
    ({"placement": "after+input", "normalizer": "group", "norm_groups": 2},
     "factors.norm_groups: 2 groups do not divide the normalized channel count 1 (placement "
     "'after+input', channel counts [1, 4, 4, 8, 8]) (allowed: 1)"),
    ({"placement": "before", "normalizer": "group", "norm_groups": 3},
     "factors.norm_groups: 3 groups do not divide the normalized channel count 4"),
    ({"placement": "after", "batch_size": [8, 1]}, "factors.batch_size: 1 cannot be combined with placement"),
])
def test_impossible_cnns_are_refused_in_one_line(factors, needle):
    with pytest.raises(SpecError) as err:
        spec(**{"architecture": "cnn", "widths": [4, 8], **factors})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cnn_group_and_layer_normalization_of_one_image_are_allowed():
    # statistics over height x width x channels of one example: a batch of one is fine
    for normalizer in ("layer", "group", "rms"):
        assert spec(architecture="cnn", widths=[4, 8], placement="after", normalizer=normalizer,
                    norm_groups=2, batch_size=1).expand()
