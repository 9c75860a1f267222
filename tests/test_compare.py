"""``bnbench compare`` and ``bnbench baseline``: planted regressions, A/A false alarms, CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import compare_helpers as h
from bench.cli import main as cli
from reports import stats
from reports.compare import (
    ALL_CELLS, Thresholds, block_rank_test, compare_data,
)

ROOT = Path(__file__).resolve().parents[1]
BASE_SEEDS = list(range(5))
NEW_SEEDS = list(range(100, 105))


def _row(comparison, cell: str, metric: str):
    rows = comparison.rows
    return rows[(rows["cell"] == cell) & (rows["metric"] == metric)].iloc[0]


# --------------------------------------------------------------------- planted effects


def test_planted_slowdown_is_a_regression():
    base = h.frames(h.spec(BASE_SEEDS))
    cur = h.frames(h.spec(NEW_SEEDS), slowdown=1.3)
    c = compare_data(base, cur)
    assert not c.passed
    pooled = _row(c, ALL_CELLS, "epoch_s")
    assert pooled["regression"] and pooled["change"] == pytest.approx(1.3, abs=0.02)
    assert pooled["change_low"] < 1.3 < pooled["change_high"]
    assert not c.rows.loc[c.rows["metric"] == "final_val_acc", "regression"].any()


def test_planted_accuracy_drop_is_a_regression():
    # 8 seeds a side: seeds are paired across cells, so the pooled test permutes whole
    # seeds and 5 against 5 cannot reach p < 0.008 (2 / C(10, 5)) before Holm.
    base = h.frames(h.spec(list(range(8))))
    cur = h.frames(h.spec(list(range(100, 108))), accuracy_drop=0.02)
    c = compare_data(base, cur)
    # 5 seeds cannot: a one-sided permutation test of 5 vs 5 seeds (per cell, or pooled
    # over seed blocks) has p >= 1/C(10, 5) = 0.004, times 16 tests in Holm's first step.
    five = compare_data(h.frames(h.spec(BASE_SEEDS)), h.frames(h.spec(NEW_SEEDS), accuracy_drop=0.02))
    assert five.passed and (five.rows.loc[five.rows["cell"] != ALL_CELLS, "p"].dropna() >= 1 / 252 - 1e-12).all()
    pooled = _row(c, ALL_CELLS, "final_val_acc")
    assert pooled["regression"]
    assert pooled["change_low"] < -0.02 + 0.01 and pooled["change_high"] > -0.02 - 0.01
    # -2 pp pushes the final accuracy to the 0.90 target: reaching it takes longer or fails
    assert _row(c, ALL_CELLS, "epochs_to_target")["regression"]


def test_smoke_sized_grid_still_sees_a_large_slowdown():
    """3 seeds per cell: no single cell can be significant, the pooled test can."""
    base = h.frames(h.spec([0, 1, 2], epochs=4))
    cur = h.frames(h.spec([10, 11, 12], epochs=4), slowdown=1.3)
    c = compare_data(base, cur)
    cells = c.rows[(c.rows["metric"] == "epoch_s") & (c.rows["cell"] != ALL_CELLS)]
    assert (cells["p"] >= 0.05 - 1e-9).all()  # one-sided 3 vs 3: p >= 1 / C(6, 3)
    assert _row(c, ALL_CELLS, "epoch_s")["regression"]


def test_slowdown_below_threshold_passes():
    base = h.frames(h.spec(BASE_SEEDS))
    cur = h.frames(h.spec(NEW_SEEDS), slowdown=1.05)
    c = compare_data(base, cur, Thresholds(max_slowdown=0.10, max_time_to_target_increase=0.10))
    assert c.passed
    pooled = _row(c, ALL_CELLS, "epoch_s")
    assert pooled["verdict"] == "worse (within limit)" and pooled["p"] > 0.5


@pytest.mark.slow
def test_a_a_pairs_pass_at_least_95_percent():
    trials, passes, any_significant = 40, 0, 0
    for t in range(trials):
        seeds_b = list(range(1000 + 10 * t, 1005 + 10 * t))
        seeds_c = list(range(50_000 + 10 * t, 50_005 + 10 * t))
        c = compare_data(h.frames(h.spec(seeds_b, epochs=6)), h.frames(h.spec(seeds_c, epochs=6)),
                         n_resamples=200, seed=t)
        passes += c.passed
        any_significant += bool(c.rows["significant"].any())
    assert passes / trials >= 0.95
    assert any_significant / trials <= 0.10  # Holm keeps the family-wise error near alpha


# --------------------------------------------------------------------------- hardware


def test_different_hardware_skips_timings_with_a_warning():
    base = h.frames(h.spec(BASE_SEEDS))
    cur = h.frames(h.spec(NEW_SEEDS), slowdown=1.3, accuracy_drop=0.02, fingerprint="0ther0machine")
    c = compare_data(base, cur)
    assert set(c.rows["metric"]) == {"epochs_to_target", "final_val_acc"}
    assert not c.hardware["timing_compared"]
    assert any("timing metrics skipped" in w for w in c.warnings)
    assert not c.passed  # quality is still compared
    forced = compare_data(base, cur, allow_different_hardware=True)
    assert "epoch_s" in set(forced.rows["metric"])


# ------------------------------------------------------------------- against scipy


def test_cell_tests_match_scipy_and_holm():
    """Per cell: scipy's exact permutation Mann–Whitney of the current runs shifted by the limit."""
    base = h.frames(h.spec(BASE_SEEDS))
    cur = h.frames(h.spec(NEW_SEEDS), slowdown=1.1, accuracy_drop=0.004)
    c = compare_data(base, cur)
    exact = scipy.stats.PermutationMethod(n_resamples=np.inf)
    for metric, col in (("final_val_acc", "final_val_acc"), ("epoch_s", "epoch_s_median")):
        b = base.runs.loc[base.runs["placement"] == "after", col].to_numpy(float)
        x = cur.runs.loc[cur.runs["placement"] == "after", col].to_numpy(float)
        row = _row(c, "placement=after", metric)
        if metric == "final_val_acc":  # counts over 5000 validation examples, 0.5 pp = 25 of them
            b, x = np.rint(b * 5000), np.rint(x * 5000)
            p = scipy.stats.mannwhitneyu(x + 25, b, alternative="less", method=exact).pvalue
            expected = (np.median(x) - np.median(b)) / 5000
        else:
            p = scipy.stats.mannwhitneyu(x / 1.1, b, alternative="greater", method=exact).pvalue
            expected = np.median(x) / np.median(b)
        assert row["p"] == pytest.approx(p, rel=1e-12)
        assert row["change"] == pytest.approx(expected)
    assert np.allclose(c.rows["p_holm"], stats.holm(c.rows["p"]), equal_nan=True)


def test_block_rank_test_with_one_cell_is_mann_whitney():
    rng = np.random.default_rng(1)
    b, x = rng.normal(0, 1, 6), rng.normal(1, 1, 7)
    exact = scipy.stats.mannwhitneyu(b, x, method="exact").pvalue
    p = block_rank_test([(b, np.arange(6), x, np.arange(7))], 20000, rng)
    assert p == pytest.approx(exact, abs=0.01)


def test_block_rank_test_respects_seed_pairing():
    """Three perfectly correlated cells carry no more evidence than one."""
    b, x = np.array([1.0, 2, 3]), np.array([4.0, 5, 6])
    one = block_rank_test([(b, np.arange(3), x, np.arange(3))], 5000)
    three = block_rank_test([(b, np.arange(3), x, np.arange(3))] * 3, 5000)
    assert three == pytest.approx(one, abs=0.02) and one == pytest.approx(0.1, abs=0.02)


def test_km_median_change_is_censoring_aware():
    base = h.frames(h.spec(BASE_SEEDS))
    cur = h.frames(h.spec(NEW_SEEDS), accuracy_drop=0.03)  # most current runs never reach 0.9
    c = compare_data(base, cur)
    row = _row(c, "placement=none", "epochs_to_target")
    cur_none = cur.runs[cur.runs["placement"] == "none"]
    assert row["current"] == stats.km_median(cur_none["ett_duration"], cur_none["reached"])
    assert row["current_success"] == cur_none["reached"].mean()


# -------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cmp")
    return {
        "base": h.store(d / "base.sqlite", h.spec(BASE_SEEDS)),
        "same": h.store(d / "same.sqlite", h.spec(NEW_SEEDS)),
        "slow": h.store(d / "slow.sqlite", h.spec(NEW_SEEDS), slowdown=1.3),
        "other": h.store(d / "other.sqlite", h.spec(NEW_SEEDS, placements=("after+input",))),
        "hw": h.store(d / "hw.sqlite", h.spec(NEW_SEEDS), slowdown=1.3, fingerprint="0ther0machine"),
        "dir": d,
    }


def test_cli_exit_codes(stores, capsys):
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["same"])]) == 0
    assert "PASS" in capsys.readouterr().out
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["slow"])]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["dir"] / "missing.sqlite")]) == 2
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["other"])]) == 2
    err = capsys.readouterr().err
    assert "no common cells" in err and len(err.strip().splitlines()) == 2  # one line per error
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["slow"]), "--max-slowdown", "40%",
                "--max-time-to-target-increase", "40%"]) == 0


def test_cli_bad_gate_options_exit_2(stores, capsys):
    for opt in (["--power-sims", "-1"], ["--max-time-to-target-increase", "fast"]):
        assert cli(["compare", str(stores["base"]), str(stores["same"]), *opt]) == 2
        err = capsys.readouterr().err
        assert opt[0] in err and len(err.strip().splitlines()) == 1


def test_cli_different_hardware_passes_on_quality(stores, capsys):
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["hw"])]) == 0
    out = capsys.readouterr()
    assert "timing metrics skipped" in out.err and "SKIPPED" in out.out
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["hw"]), "--allow-different-hardware"]) == 1


def test_cli_markdown_and_json(stores, capsys, tmp_path):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    rc = cli(["compare", "--power-sims", "20", str(stores["base"]), str(stores["slow"]), "--format", "json",
              "--markdown-file", str(md), "--json-file", str(js)])
    assert rc == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "fail" and doc["n_regressions"] >= 1
    assert {d["metric"] for d in doc["detectable_with_80pct_power"]} == {"final_val_acc", "epochs_to_target", "epoch_s"}
    assert "with 80% power" in md.read_text()
    assert json.loads(js.read_text()) == doc
    text = md.read_text()
    assert "| cell | metric |" in text and "**REGRESSION**" in text
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["same"]), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("## bnbench compare: ✅ PASS")


def test_markdown_holds_every_verdict_row(stores):
    """The Markdown template renders the terminal table's rows: each one, verdict included, as a
    Markdown row (a regression in bold), and the verdict line as the heading."""
    from bench.commands.compare import HEADER, render_markdown, table_rows
    from reports.compare import compare_paths

    c = compare_paths(stores["base"], stores["slow"], power_sims=0, n_resamples=200)
    md = render_markdown(c).splitlines()
    rows = table_rows(c)
    assert md[0].startswith("## bnbench compare: ❌ FAIL: ") and "| " + " | ".join(HEADER) + " |" in md
    assert sum(r[-1] == "REGRESSION" for r in rows) == int(c.rows["regression"].sum()) >= 1
    for r in rows:
        cells = [*r[:-1], f"**{r[-1]}**" if r[-1] == "REGRESSION" else r[-1]]
        assert "| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |" in md, r


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_reads_export_folders(stores, fmt, tmp_path, capsys):
    out = tmp_path / "export"
    assert cli(["export", "--store", str(stores["slow"]), "-o", str(out), "--format", fmt]) == 0
    capsys.readouterr()
    assert cli(["compare", "--power-sims", "0", str(stores["base"]), str(out), "--format", "json"]) == 1
    from_folder = json.loads(capsys.readouterr().out)
    cli(["compare", "--power-sims", "0", str(stores["base"]), str(stores["slow"]), "--format", "json"])
    from_store = json.loads(capsys.readouterr().out)
    assert [r["p"] for r in from_folder["results"]] == [r["p"] for r in from_store["results"]]


# --------------------------------------------------------------------------- baseline


def test_baseline_update_and_show(stores, tmp_path, capsys):
    target = tmp_path / "b.sqlite"
    assert cli(["baseline", "update", str(stores["slow"]), "--baseline", str(target)]) == 0
    assert target.stat().st_size < 1_000_000
    assert not Path(f"{target}-wal").exists()
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 15
    assert cli(["baseline", "show", str(target)]) == 0
    assert "15 runs" in capsys.readouterr().out
    assert cli(["compare", "--power-sims", "0", str(target), str(stores["slow"])]) == 0
    assert cli(["baseline", "update", str(stores["slow"]), "--grid", "nope", "--baseline", str(target)]) == 2


def test_committed_gate_baseline_is_small_and_readable(capsys):
    path = ROOT / "ablations" / "baselines" / "gate.sqlite"
    assert path.stat().st_size < 1_000_000
    assert cli(["baseline", "show", str(path)]) == 0
    assert "16 runs" in capsys.readouterr().out


def test_reports_compare_never_imports_tensorflow():
    code = ("import sys, reports.compare, bench.commands.compare, bench.commands.baseline; "
            "print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
