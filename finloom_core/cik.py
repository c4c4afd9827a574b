"""CIK handling: SEC's Central Index Key is an integer, shown zero-padded to 10 digits."""

from __future__ import annotations

import re

from finloom_core.errors import InvalidCikError

_CIK_RE = re.compile(r"^(?:CIK)?0*(\d{1,10})$", re.IGNORECASE)


def parse_cik(value: object) -> int:
    """Return the CIK as an int from ``320193``, ``"0000320193"`` or ``"CIK0000320193"``.

    Raises InvalidCikError for anything else (empty, signs, letters, more than 10 digits, 0).
    """
    if isinstance(value, bool):
        raise InvalidCikError(value)
    if isinstance(value, int):
        if 0 < value < 10**10:
            return value
        raise InvalidCikError(value)
    if isinstance(value, str):
        text = value.strip()
        match = _CIK_RE.match(text)
        if match and len(text.upper().removeprefix("CIK")) <= 10 and int(match.group(1)) > 0:
            return int(match.group(1))
    raise InvalidCikError(value)


def cik10(cik: int) -> str:
    """Zero-padded 10-digit CIK as used in EDGAR file names."""
    return f"{cik:010d}"
