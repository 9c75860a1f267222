"""The report compares arms (normalizer x placement), each paired by seed with the reference.

A synthetic store with a planted effect for one arm ("layer after", +2 pp) and none for the
others (tests/synthetic_store.py keys effects by "<normalizer> <placement>").
"""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from bench.cells import Arms
from bench.cli import main
from bench.factors import SpecError
from bench.spec import parse_spec
from reports import interactions as ix
from reports.intervals import as_counts
from reports.load import load
from reports.render import build_context, render_markdown, render_report
from reports.tables import build_tables
from synthetic_store import build_store

FAST = {"n_resamples": 200, "n_permutations": 200}
SEEDS = 8
ARMS = ["none", "batch before", "batch after", "layer before", "layer after", "rms before", "rms after"]
PLANTED = {"layer after": 0.02}


def _spec(report: dict | None = None, **factors):
    doc = {"grid": {"name": "arms", "seeds": SEEDS, "epochs": 5, "target_accuracy": 0.9},
           "factors": {"placement": ["none", "before", "after"], "normalizer": ["batch", "layer", "rms"],
                       "learning_rate": [0.01, 0.1], **factors}}
    if report is not None:
        doc["report"] = report
    return parse_spec(doc)


@pytest.fixture(scope="module")
def arms_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("arms") / "arms.sqlite", _spec(), effect=PLANTED,
                       time_factor={})


@pytest.fixture(scope="module")
def arms_data(arms_store):
    return load(arms_store)


def test_arms_and_cells(arms_data):
    """Seven arms; "none" is one run per seed whatever the normalizer said; no
    normalizer-only cell without the reference."""
    data = arms_data
    assert data.arms == ARMS and data.reference == "none" and data.arm_word == "arm"
    assert data.cells == ["learning_rate=0.01", "learning_rate=0.1"]
    assert data.cell_factors == ["learning_rate"]
    counts = data.runs.groupby(["cell", "arm"]).size()
    assert set(counts) == {SEEDS} and len(counts) == 2 * len(ARMS)
    assert data.arm_words("layer after") == "layer norm after the activation"
    assert data.arm_words("none") == "no normalization"
    assert data.arm_words("batch before") == "BN before the activation"


def test_each_arm_pairs_with_the_reference_by_seed(arms_data):
    t = build_tables(arms_data, n_resamples=200)
    acc = t.comparisons[t.comparisons["metric"] == "final_val_acc"]
    assert set(acc["reference"]) == {"none"}
    assert sorted(acc["arm"]) == sorted(ARMS[1:] * 2)  # every other arm, in both cells
    assert set(acc["n_pairs"]) == {SEEDS}
    # one difference by hand: layer after - none at lr 0.01, as counts of the validation split
    runs = arms_data.runs
    cell = runs[runs["cell"] == "learning_rate=0.01"]
    acc_of = {arm: pd.Series(np.asarray(as_counts(g["final_val_acc"], g["validation_size"]), float)
                             / g["validation_size"].to_numpy(float), index=g["seed"].to_numpy())
              for arm, g in cell.groupby("arm")}
    d = (acc_of["layer after"] - acc_of["none"]).to_numpy()
    assert d.size == SEEDS
    row = acc[(acc["cell"] == "learning_rate=0.01") & (acc["arm"] == "layer after")].iloc[0]
    assert row["diff"] == pytest.approx(np.median(d), abs=1e-12)
    # the planted effect (+2 pp against a seed-pair spread of ~0.3 pp) is found in both cells
    planted = acc[acc["arm"] == "layer after"]
    assert (planted["diff_low"] > 0).all() and (planted["p"] < 0.05).all()


def test_ranking_and_interactions_are_per_arm(arms_data):
    poi = ix.probability_of_improvement(arms_data).set_index(["arm", "versus"])
    assert poi.loc[("layer after", "none"), "n_pairs"] == 2 * SEEDS
    assert poi.loc[("layer after", "none"), "p_improve"] == 1.0  # 2 pp against 0.3 pp of noise
    prof = ix.performance_profile(arms_data, taus=(0.0,)).set_index("arm")["fraction"]
    assert prof["layer after"] == 1.0 and prof.drop("layer after").max() == 0.0
    inter = ix.interactions(arms_data, metrics=("final_val_acc",), n_resamples=200, n_permutations=200, seed=0)
    assert sorted(inter.tests["arm"]) == sorted(ARMS[1:])
    assert set(inter.effects["n_pairs"]) == {SEEDS}


def test_markdown_names_arms(arms_data):
    md = render_markdown(build_context(arms_data, with_figures=False, **FAST))
    assert "## Summary per cell and arm" in md and "| cell | arm | seeds |" in md
    assert "| learning_rate=0.01 | layer after − none |" in md
    assert "layer norm after the activation" in md and "## Ranking of arms" in md
    assert "normalizer=" not in md


def test_declared_reference_is_read_from_the_grid(tmp_path):
    """The store keeps the spec's text; ``report --grid`` reads its [report] table."""
    text = ('[grid]\nname = "arms"\nseeds = 8\nepochs = 5\ntarget_accuracy = 0.9\n'
            '[factors]\nplacement = ["none", "before", "after"]\nnormalizer = ["batch", "layer", "rms"]\n'
            'learning_rate = [0.01, 0.1]\n'
            '[report]\ncompare = ["normalizer", "placement"]\nreference = "batch before"\n')
    spec = parse_spec(tomllib.loads(text), source_text=text)
    path = build_store(tmp_path / "declared.sqlite", spec, effect=PLANTED, time_factor={})
    data = load(path, "arms")
    assert data.reference == "batch before" and data.arms[0] == "batch before"
    t = build_tables(data, n_resamples=200)
    assert set(t.comparisons["reference"]) == {"batch before"}
    # the command line overrides the declaration
    assert load(path, "arms", Arms.parse(None, "none")).reference == "none"


def test_placement_only_compare_attaches_the_normalizer():
    arms = Arms.parse(["placement"], "none")
    assert arms.factors == ("placement", "normalizer", "norm_groups")
    assert Arms().factors == ("normalizer", "placement", "norm_groups")
    # bn_momentum applies in the reference "none", so it stays a cell factor
    assert "bn_momentum" not in Arms().factors
    # with a layer-norm reference it has no effect there, so it joins the arm
    assert "bn_momentum" in Arms.parse(None, "layer before").factors


@pytest.mark.parametrize(("report", "key"), [
    ({"compare": ["normaliser"]}, "report.compare"),
    ({"compare": []}, "report.compare"),
    ({"compare": ["placement", "placement"]}, "report.compare"),
    ({"reference": "nothing"}, "report.reference"),
    ({"reference": "group before"}, "report.reference"),  # not an arm of this grid
    ({"reference": "norm_groups=2 none"}, "report.reference"),  # not a compared factor
    ({"reference": 1}, "report.reference"),
    ({"refrence": "none"}, "report.refrence"),
])
def test_bad_report_table_is_one_line_naming_the_key(report, key):
    with pytest.raises(SpecError) as err:
        _spec(report)
    msg = str(err.value)
    assert msg.startswith(key + ":") and "\n" not in msg


def test_bad_cli_reference_exits_2(arms_store, tmp_path, capsys):
    out = tmp_path / "r.md"
    assert main(["report", str(arms_store), "--reference", "sideways", "--format", "markdown",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--reference" in err and not out.exists()
    # a valid arm that no run is in (no group norm in this grid) is refused too, not ignored
    assert main(["report", str(arms_store), "--reference", "group before", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no run is in arm 'group before'" in err and not out.exists()


def test_cli_compare_placement_only(arms_store, tmp_path):
    md = render_report(arms_store, fmt="markdown", arms=Arms.parse(["placement"], "none"), **FAST)
    # the normalizer is attached to the arm: same arms, labels in placement-first order
    assert "| learning_rate=0.01 | after layer − none |" in md


def test_placement_only_reports_do_not_speak_of_arms(planted_store):
    """A study that varies only placement reads as before arms existed (its Markdown was
    compared byte for byte with the previous version's when arms were introduced)."""
    import re

    md = render_report(planted_store, fmt="markdown", **FAST)
    assert not re.search(r"\barms?\b", md)
    assert "## Summary per cell and placement" in md and "| cell | placement | seeds |" in md
    assert "BN before the activation" in md and "no BN" in md


def test_varying_groups_make_arms_not_cells():
    """norm_groups has no effect in the reference, so its levels are arms of group norm:
    one cell, with the reference in it."""
    from bench.cells import cell_keys

    spec = _spec(None, norm_groups=[2, 4], normalizer=["batch", "group"], learning_rate=0.01)
    runs = pd.DataFrame([{**cfg.factor_values(), "seed": cfg.seed} for cfg in spec.expand()])
    arms = Arms()
    labels = arms.labels(runs)
    assert list(arms.table(runs)["label"]) == [
        "none", "batch before", "batch after", "group before norm_groups=2",
        "group before norm_groups=4", "group after norm_groups=2", "group after norm_groups=4"]
    assert (labels.value_counts() == SEEDS).all()
    assert cell_keys(runs, arms.factors).nunique() == 1


def test_cnn_widths_stay_cell_factors(tmp_path):
    """A factor whose relevance hangs on a cell factor (``widths`` on ``architecture``), not on
    the arm, is not part of the arm: CNN runs at non-default widths still pair with their
    reference (before, the reference was looked up at the MLP's default widths)."""
    assert "widths" not in Arms().factors and "hidden" not in Arms().factors
    spec = parse_spec({"grid": {"name": "cnn", "seeds": 4, "epochs": 3, "target_accuracy": 0.9},
                       "factors": {"dataset": "fashion_mnist", "architecture": "cnn",
                                   "widths": [[16, 32], [8]], "placement": ["none", "before"],
                                   "normalizer": ["batch", "group"]}})
    data = load(build_store(tmp_path / "cnn.sqlite", spec, effect={}, time_factor={}))
    assert data.reference == "none" and data.arms == ["none", "batch before", "group before"]
    assert data.cells == ["widths=8", "widths=16-32"]  # numeric levels first (reports.load.cell_order)
    t = build_tables(data, n_resamples=200)
    acc = t.comparisons[t.comparisons["metric"] == "final_val_acc"]
    assert len(acc) == 2 * 2 and set(acc["n_pairs"]) == {4}
