"""Spec validation: every bad spec is rejected before training, naming the bad key."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.spec import PLACEMENTS, SpecError, parse_spec

BASE = {"grid": {"name": "g", "validation_size": 297}, "factors": {"dataset": "digits"}}


def spec_with(**tables):
    data = {k: dict(v) for k, v in BASE.items()}
    for table, values in tables.items():
        data.setdefault(table, {}).update(values)
    return data


@pytest.mark.parametrize(
    ("tables", "needle"),
    [
        ({"grid": {"nmae": "x"}}, "grid.nmae: unknown key (allowed: name, seeds"),
        ({"factors": {"placment": ["none"]}}, "factors.placment: unknown key (allowed: dataset, placement"),
        ({"factors": {"placement": ["none", "middle"]}}, "factors.placement: unknown value 'middle' (allowed: " + ", ".join(PLACEMENTS)),
        ({"factors": {"learning_rate": -0.1}}, "factors.learning_rate: -0.1 is not a positive number"),
        ({"factors": {"learning_rate": []}}, "factors.learning_rate: empty list of levels"),
        ({"factors": {"batch_size": [32, "64"]}}, "factors.batch_size: '64' is not an integer >= 1"),
        ({"factors": {"hidden": []}}, "factors.hidden: [] is not a non-empty list"),
        ({"factors": {"hidden": [300, -1]}}, "factors.hidden: [300, -1] is not a non-empty list"),
        ({"factors": {"bn_momentum": 1.0}}, "factors.bn_momentum: 1.0 is not a number in (0, 1)"),
        ({"grid": {"seeds": 0}}, "grid.seeds: 0 is not a count"),
        ({"grid": {"seeds": [1, 1]}}, "grid.seeds: repeated seed"),
        ({"grid": {"target_accuracy": 1.5}}, "grid.target_accuracy: 1.5 is not a number in (0, 1]"),
        ({"grid": {"validation_size": 5000}}, "grid.validation_size: 5000 leaves no training data in 'digits'"),
        ({"factors": {"batch_size": 4096}}, "factors.batch_size: 4096 is larger than the 1203 training"),
        ({"engine": {"name": "torch"}}, "engine.name: unknown value 'torch' (allowed: auto, keras, stacked)"),
        ({"engine": {"jit_compile": "yes"}}, "engine.jit_compile: 'yes' is not true or false"),
    ],
)
def test_bad_spec_names_key(tables, needle):
    with pytest.raises(SpecError) as err:
        parse_spec(spec_with(**tables))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_name_is_rejected():
    with pytest.raises(SpecError, match="grid.name"):
        parse_spec({"factors": {"dataset": "digits"}, "grid": {"validation_size": 297}})


def test_expansion_is_cells_times_seeds_with_stable_ids():
    spec = parse_spec(spec_with(grid={"seeds": 3}, factors={"placement": ["none", "before"], "learning_rate": [0.1, 0.01]}))
    runs = spec.expand()
    assert len(runs) == 2 * 2 * 3
    assert len({r.run_id for r in runs}) == 12
    assert len({r.program_key for r in runs}) == 4
    again = parse_spec(spec_with(grid={"seeds": 3}, factors={"placement": ["none", "before"], "learning_rate": [0.1, 0.01]}))
    assert [r.run_id for r in again.expand()] == [r.run_id for r in runs]
    assert spec.varying_factors == ["placement", "learning_rate"]


def test_run_id_ignores_grid_name_but_not_seed_or_factor():
    a = parse_spec(spec_with()).expand()[0]
    b = parse_spec(spec_with(grid={"name": "other"})).expand()[0]
    c = parse_spec(spec_with(factors={"learning_rate": 0.5})).expand()[0]
    assert a.run_id == b.run_id
    assert a.run_id != c.run_id
    assert parse_spec(spec_with(grid={"seeds": [7]})).expand()[0].run_id != a.run_id


def test_hidden_one_level_or_many():
    one = parse_spec(spec_with(factors={"hidden": [300, 100]}))
    many = parse_spec(spec_with(factors={"hidden": [[300, 100], [64]]}))
    assert one.factors["hidden"] == ((300, 100),)
    assert many.factors["hidden"] == ((300, 100), (64,))


def test_cli_rejects_bad_spec_with_exit_2_and_trains_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('[grid]\nname = "x"\n[factors]\nplacement = ["none", "sideways"]\n')
    store = tmp_path / "store.sqlite"
    assert main(["run", str(spec), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "factors.placement: unknown value 'sideways'" in err[0]
    assert not store.exists()


def test_cli_malformed_toml(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text("[grid\nname=")
    assert main(["run", str(spec), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "malformed TOML" in capsys.readouterr().err


def test_ready_made_specs_validate():
    from pathlib import Path

    from bench.spec import load_spec

    for path in sorted((Path(__file__).parents[1] / "ablations").glob("*.toml")):
        assert load_spec(path).expand(), path
