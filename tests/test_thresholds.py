"""The one amount parser of ``compare`` and ``plan``: what it accepts, what it refuses, and how."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.thresholds import parse_amount


@pytest.mark.parametrize(("text", "points", "expected"), [
    ("10%", False, 0.10), ("0.1", False, 0.1), (".1", False, 0.1), ("0", False, 0.0),
    ("0%", False, 0.0), ("150%", False, 1.5), (" 2.5 % ", False, 0.025),
    ("0.5pp", True, 0.005), ("0.5%", True, 0.005), (" 2PP ", True, 0.02), ("0.005", True, 0.005),
    ("4pp", True, 0.04), ("0.999", True, 0.999),
])
def test_accepts(text, points, expected):
    assert parse_amount("--x", text, points=points) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "points", "positive", "says"), [
    ("fast", False, False, "is not an amount like 10%"),
    ("", False, False, "is not an amount"),
    ("-5%", False, False, "is not an amount"),
    ("nan", True, False, "is not an amount like 0.5pp"),
    ("inf", False, False, "is not an amount"),
    ("1e-3", False, False, "is not an amount"),
    ("1pp", False, False, "is not an amount like 10%"),  # pp only for accuracies
    ("10", False, False, "would mean 1000%; write 10% or a fraction below 1"),
    ("1", True, False, "would mean 100%; write 1% or 1pp or a fraction below 1"),
    ("0", True, True, "is not above zero"),
    ("0pp", True, True, "is not above zero"),
    ("5 %%", False, False, "is not an amount"),
])
def test_refuses_naming_key_and_value(text, points, positive, says):
    with pytest.raises(UsageError) as err:
        parse_amount("--max-slowdown", text, points=points, positive=positive)
    assert str(err.value).startswith(f"--max-slowdown: {text!r} ")
    assert says in str(err.value)


@pytest.mark.parametrize(("argv", "says"), [
    (["compare", "base.sqlite", "cur.sqlite", "--max-slowdown", "fast"], "--max-slowdown: 'fast'"),
    (["compare", "base.sqlite", "cur.sqlite", "--max-accuracy-drop", "2"], "--max-accuracy-drop: '2' would mean"),
    (["compare", "base.sqlite", "cur.sqlite", "--max-time-to-target-increase", "1pp"],
     "--max-time-to-target-increase: '1pp'"),
    (["plan", "spec.toml", "--effect", "0"], "--effect: '0' is not above zero"),
    (["plan", "spec.toml", "--sd", "5"], "--sd: '5' would mean 500%"),
])
def test_cli_bad_amount_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, says):
    """Parsed before any file is read or written: the named files need not exist, none appears."""
    monkeypatch.chdir(tmp_path)
    md = tmp_path / "out.md"
    extra = ["--markdown-file", str(md)] if argv[0] == "compare" else []
    capsys.readouterr()
    assert main([*argv, *extra]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []
