"""The rendered report: every section, edge cases, the CLI, TensorFlow-free imports, a browser."""

from __future__ import annotations

import gc
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_store import make_spec

import bench.cli
from bench.spec import parse_spec
from bench.store import Store
from reports.render import render_report

SECTIONS = ["findings", "summary", "comparisons", "figures", "methods", "failures", "runs"]
FAST = {"n_resamples": 200}


@pytest.fixture(scope="module")
def html(planted_store):
    return render_report(planted_store, **FAST)


def test_html_has_every_section_and_figure(html):
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    # learning curves, KM, time per epoch, forest, interaction, effect by level (Interactions)
    assert html.count("<svg") == 6
    for words in ("Holm", "Wilcoxon signed-rank", "Kaplan–Meier", "log-rank", "P(seed improves)", "McNemar",
                  "Synthetic CPU", "tensorflow 2.21.0", "seeds_per_program=8", "bootstrap"):
        assert words in html, words


def test_html_is_self_contained(html):
    assert "<script" not in html
    assert "<link" not in html
    assert not re.search(r"""(src|href)=["']https?:""", html)
    assert "@import" not in html


def test_findings_state_the_planted_effect(html):
    m = re.search(r"In activation=relu, BN before the activation raised final validation accuracy "
                  r"vs no BN: \+(\d\.\d) pp \[\+(\d\.\d), \+(\d\.\d)\] \(Holm p=[\d.<]+, 9 paired seeds\)",
                  html)
    assert m, "finding sentence missing"
    low, high = float(m.group(2)), float(m.group(3))
    assert low <= 0.8 <= high
    # the diverged seed of "after" is scored at chance, and the report says so
    assert "diverged runs scored at chance" in html
    assert "sensitivity analysis" in html


def test_failed_and_diverged_runs_are_listed(html):
    section = html.split('<section id="failures">')[1].split("</section>")[0]
    assert "Failed and diverged runs (4)" in section
    assert section.count("RuntimeError: synthetic failure") == 2
    assert section.count("loss became NaN at epoch 3") == 2
    assert "2 diverged, 2 failed" in html


def test_methods_say_when_wall_times_are_shared(make_store):
    html = render_report(make_store(make_spec(seeds=3), concurrent_workers=2, seeds_in_program=3),
                         **FAST)
    assert "shared the machine with other workers (2 concurrent workers)" in html
    assert "amortized" in html


def test_censored_reference_renders_at_least(make_store):
    """A reference that never reaches the target: the finding and the forest plot say "at least"."""
    spec = make_spec(placements=["none", "after"], seeds=8, target=0.925)
    html = render_report(make_store(spec, effect={"none": -0.02, "after": 0.02}), **FAST)
    assert "at least" in html and "reference median not reached within 10 epochs" in html
    assert html.count("<svg") >= 4


def test_one_seed_store_renders(make_store):
    html = render_report(make_store(make_spec(seeds=1)), **FAST)
    assert "no statistics possible with 1 seed" in html
    assert "no test possible with 1 paired seed" in html


def test_all_censored_store_renders(make_store):
    html = render_report(make_store(make_spec(seeds=4, target=0.99)), **FAST)
    assert "all censored" in html
    assert "not reached" in html


def test_empty_grid_renders(tmp_path):
    spec = parse_spec({"grid": {"name": "empty", "seeds": 2}, "factors": {"placement": ["none", "after"]}})
    path = tmp_path / "empty.sqlite"
    with Store(path) as store:
        store.register_grid(spec, spec.expand())
    html = render_report(path, grid="empty", **FAST)
    assert "This store has no runs in grid &#39;empty&#39;." in html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    md = render_report(path, fmt="markdown", **FAST)
    assert "no runs" in md


def test_markdown_report(planted_store):
    md = render_report(planted_store, fmt="markdown", **FAST)
    for heading in ("## Findings", "## Summary per cell and placement", "## Paired comparisons",
                    "## Methods", "## Failed and diverged runs (4)"):
        assert heading in md
    assert "<svg" not in md
    assert "| cell | placement |" in md


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_html_and_markdown(planted_store, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert bench.cli.main(["report", str(planted_store), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert bench.cli.main(["report", str(planted_store), "--grid", "synthetic",
                           "--format", "markdown", "-o", "-"]) == 0
    assert "## Findings" in capsys.readouterr().out
    # objects are frozen at exit only (bench.commands.report): a caller's collector keeps working
    assert gc.get_freeze_count() == 0


def test_cli_output_suffix_md_means_markdown(planted_store, tmp_path):
    """``-o r.md`` without --format writes Markdown; an explicit --format wins."""
    md, forced = tmp_path / "r.md", tmp_path / "forced.md"
    assert bench.cli.main(["report", str(planted_store), "-o", str(md)]) == 0
    assert md.read_text().startswith("# bnbench report")
    assert bench.cli.main(["report", str(planted_store), "--format", "html", "-o", str(forced)]) == 0
    assert forced.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args", [
    ["{missing}"],
    ["{store}", "--grid", "nope"],
    ["{store}", "-o", "{tmp}/no/such/folder/r.html"],
    ["{tmp}"],
])
def test_cli_bad_input_is_one_line_exit_2(args, planted_store, tmp_path, capsys):
    argv = ["report"] + [a.format(missing=tmp_path / "missing.sqlite", store=planted_store,
                                  tmp=tmp_path) for a in args]
    assert bench.cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bnbench report: error:") and "\n" not in err


def test_cli_help_mentions_options(capsys):
    with pytest.raises(SystemExit):
        bench.cli.main(["report", "--help"])
    out = capsys.readouterr().out
    for opt in ("--grid", "--format", "-o", "Holm", "Kaplan-Meier"):
        assert opt in out


def test_import_reports_stays_tensorflow_free():
    code = ("import sys, reports, reports.load, reports.stats, reports.tables, reports.figures, "
            "reports.render, bench.commands.report; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


# ----------------------------------------------------------------------------- browser

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.slow
def test_report_in_headless_chromium(html, tmp_path, require):
    require(CHROMIUM, "chromium", "install it (Debian: apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "report.png"
    res = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000, res.stderr[-2000:]
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    for section in SECTIONS:
        assert f'id="{section}"' in dom.stdout
    assert dom.stdout.count("<svg") == 6
    keep = Path(__file__).resolve().parents[2] / ".pytest_cache" / "report_screenshot.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, keep)  # for a human to look at
