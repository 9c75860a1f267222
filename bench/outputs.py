"""Output files written whole or not at all.

A report, a comparison or a history page replaces the previous one only once it is complete:
a full disk, a kill or Ctrl-C in the middle of writing leaves the old file as it was, not half
a page. The text goes to a hidden file beside the target, which then takes the target's name
(``os.replace``: one step on POSIX and Windows).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bench.errors import UsageError


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically. The new file gets the mode an existing
    target had, else the umask's default, as ``open`` would give it. A link at ``path`` is
    replaced by the file, not written through. Raises OSError as ``open`` and ``write`` do;
    the hidden file is removed then."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(path: str | Path, text: str) -> None:
    """``write_text`` for a command's report file: a failure (a full disk, no permission) is
    the one-line UsageError naming the file (exit 2), not a traceback."""
    try:
        write_text(path, text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write report ({exc.strerror})") from None
