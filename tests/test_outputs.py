"""``bench.outputs.write_text``: a report file is replaced whole or not at all."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from synthetic_store import build_store, make_spec

import bench.cli
from bench import outputs


def test_writes_the_text_with_the_umasks_mode(tmp_path):
    target = tmp_path / "r.html"
    old = os.umask(0o027)
    try:
        outputs.write_text(target, "é<p>\n")
    finally:
        os.umask(old)
    assert target.read_text(encoding="utf-8") == "é<p>\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["r.html"]


def test_keeps_an_existing_files_mode(tmp_path):
    target = tmp_path / "r.md"
    target.write_text("old")
    target.chmod(0o600)
    outputs.write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o600


class _Killed(BaseException):
    pass


def _half_then(exc: BaseException):
    """An ``os.fdopen`` whose file writes half of the text, flushes it to disk, then raises."""
    real_open = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *args):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise exc

    return lambda *a, **k: HalfWriter(real_open(*a, **k))


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    """Interrupted after part of the text is on disk (a kill, Ctrl-C): the report that was
    there is untouched and the hidden file is gone."""
    target = tmp_path / "r.html"
    target.write_text("the old report")
    monkeypatch.setattr(os, "fdopen", _half_then(_Killed()))
    with pytest.raises(_Killed):
        outputs.write_text(target, "x" * 1000)
    assert target.read_text() == "the old report"
    assert os.listdir(tmp_path) == ["r.html"]


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_report_cli_says_why_it_cannot_write(tmp_path, capsys, monkeypatch, fmt):
    """A full disk while writing: one line on stderr naming the file, exit 2, the old report
    untouched and no hidden file left."""
    store = build_store(tmp_path / "s.sqlite", make_spec(seeds=3, epochs=3), through_store=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "r").write_text("the old report")
    monkeypatch.setattr(outputs.os, "fdopen", _half_then(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    code = bench.cli.main(["report", str(store), "--format", fmt, "-o", str(out / "r")])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "r: cannot write report (No space left on device)" in err[0]
    assert (out / "r").read_text() == "the old report" and os.listdir(out) == ["r"]
