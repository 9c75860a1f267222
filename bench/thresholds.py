"""The one parser for amounts on the command line: thresholds (``compare``) and effects (``plan``).

One grammar everywhere: a non-negative decimal number, optionally followed by ``%`` or,
for accuracies, ``pp`` (percentage points; both mean hundredths), case and surrounding
blanks ignored. A bare number is a fraction and must be below 1: ``10`` would mean 1000%,
which nobody means, so it is refused with the spelling that was probably meant. Errors
are one :class:`~bench.errors.UsageError` line naming the option and the value.
"""

from __future__ import annotations

import re

from bench.errors import UsageError

_AMOUNT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%|pp)?\s*", re.IGNORECASE)


def parse_amount(key: str, text: str, *, points: bool = False, positive: bool = False) -> float:
    """``text`` as a fraction: '10%' -> 0.10, '0.5pp' -> 0.005, '0.1' -> 0.1.

    ``points``: the amount is an accuracy, so ``pp`` is allowed. ``positive``: zero is
    refused too (an effect to detect, a spread). Raises UsageError naming ``key`` and ``text``.
    """
    m = _AMOUNT.fullmatch(str(text))
    unit = (m.group(2) or "").lower() if m else ""
    if not m or (unit == "pp" and not points):
        like = "0.5pp, 0.5% or a fraction below 1 like 0.005" if points else "10% or a fraction below 1 like 0.1"
        raise UsageError(f"{key}: {text!r} is not an amount like {like}")
    value = float(m.group(1))
    if not unit and value >= 1:
        number = m.group(1)
        raise UsageError(f"{key}: {text!r} would mean {value:.0%}; write {number}%"
                         + (f" or {number}pp" if points else "") + " or a fraction below 1")
    if positive and value == 0:
        raise UsageError(f"{key}: {text!r} is not above zero")
    return value / 100 if unit else value
