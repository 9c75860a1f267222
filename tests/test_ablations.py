"""The ready-made grids in ablations/: they parse, their CI variants match them, and the CI
variants train end to end with the statuses we expect (slow: ~1 min on 2 shared cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.spec import load_spec
from bench.store import open_readonly, read_epochs, read_runs

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ROOT / "ablations"
STUDIES = ["placement_lr", "ioffe_szegedy_mnist", "fashion", "normalizers_mlp",
           "normalizers_batch_size", "cnn_placement"]

#: (grid, placement, learning_rate) -> statuses allowed. Anything not listed must be "ok".
#: At lr 3 without BN SGD's loss becomes NaN in the first epoch; BN after the activation
#: blows the loss up to ~1e9 (usually still finite, so "ok" at chance accuracy).
EXPECTED = {
    ("ci_placement_lr", "none", 3.0): {"diverged"},
    ("ci_placement_lr", "after", 3.0): {"ok", "diverged"},
}


def _data_available(spec) -> bool:
    from bench.datasets import DatasetError, load_dataset

    try:
        for d in spec.factors["dataset"]:
            load_dataset(d, spec.validation_size, spec.train_limit, spec.data_path)
    except DatasetError:
        return False
    return True


@pytest.mark.parametrize("name", [*STUDIES, "seed_notebook", "smoke"])
def test_every_grid_parses(name):
    spec = load_spec(ABLATIONS / f"{name}.toml")
    assert spec.expand()


@pytest.mark.parametrize("name", STUDIES)
def test_grid_header_says_question_and_time(name):
    text = (ABLATIONS / f"{name}.toml").read_text()
    header = text.split("[grid]")[0]
    assert "Question:" in header and "wall time" in header.lower()


@pytest.mark.parametrize("name", STUDIES)
def test_ci_variant_is_a_slice_of_the_full_grid(name):
    """Same factors; each CI level is a level of the full grid, so CI exercises the real cells."""
    full, ci = load_spec(ABLATIONS / f"{name}.toml"), load_spec(ABLATIONS / "ci" / f"{name}.toml")
    assert ci.name == f"ci_{name}"
    for factor, levels in ci.factors.items():
        assert set(levels) <= set(full.factors[factor]), factor
    assert ci.factors["placement"] == full.factors["placement"]
    assert ci.engine == full.engine
    assert len(ci.seeds) <= 3 and ci.epochs <= 3 and 0 < ci.train_limit <= 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_ci_variant_runs_end_to_end(name, tmp_path: Path, require):
    from bench.runner import run_grid

    spec = load_spec(ABLATIONS / "ci" / f"{name}.toml")
    require(_data_available(spec), f"dataset {', '.join(spec.factors['dataset'])}",
            "MNIST: mnist.npz on the search path (README, Datasets); Fashion-MNIST: "
            "apt-get install dataset-fashion-mnist")
    store = tmp_path / "ci.sqlite"
    outcome = run_grid(spec, store, jobs=1, progress=False)
    assert outcome.trained == len(spec.expand()) and "failed" not in outcome.statuses

    conn = open_readonly(store)
    runs, epochs = read_runs(conn, spec.name), read_epochs(conn, spec.name)
    conn.close()
    assert len(runs) == len(spec.expand())
    # The stacked engine trains a cell's seeds in one program; Keras fit one seed at a time.
    per_program = len(spec.seeds) if spec.engine.name == "stacked" else 1
    assert runs["seeds_in_program"].eq(per_program).all()
    for row in runs.itertuples():
        allowed = EXPECTED.get((spec.name, row.placement, row.learning_rate), {"ok"})
        assert row.status in allowed, (row.placement, row.learning_rate, row.seed, row.error)
        n_epochs = (epochs["run_id"] == row.run_id).sum()
        if row.status == "ok":
            assert n_epochs == spec.epochs and 0 <= row.final_val_acc <= 1
        else:
            assert 1 <= n_epochs <= spec.epochs and "nan" in row.error.lower()
    # Resuming trains nothing.
    assert run_grid(spec, store, jobs=1, progress=False).trained == 0
