"""Durations as playbook authors write them: `30m`, `2d`, `1w`, `1d12h`, or ISO 8601 `P14D`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(
    r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE
)
EXAMPLES = "examples: 30m, 2d, 1w, 1d12h, P14D"
MAX_YEARS = 100
MAX_DURATION = timedelta(days=36525)
"""The longest duration a playbook may give: a wait or a due date beyond it is a mistake, and
added to a date it would leave the calendar (year 9999) inside a running workflow."""


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raise ValueError with a message fit for an author."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration ({EXAMPLES})")
    source = text.strip()
    match = _SHORT.match(source) or _ISO.match(source)
    if not source or source.upper() in ("P", "PT") or match is None or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration ({EXAMPLES})")
    try:
        weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    except ValueError:  # thousands of digits
        raise ValueError(f"'{text[:40]}' is longer than {MAX_YEARS} years") from None
    total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"'{text[:40]}' is longer than {MAX_YEARS} years")
    return timedelta(seconds=total)


def format_duration(delta: timedelta | str) -> str:
    """The shortest short form of a duration: 2d, 1d12h, 90s → 1m30s (an expression as written)."""
    if isinstance(delta, str):
        return delta
    remaining = int(delta.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, remaining = divmod(remaining, _UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
