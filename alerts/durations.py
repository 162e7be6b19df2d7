"""Prometheus-style durations ("90s", "1h30m", "250ms"), held as whole milliseconds.

Whole milliseconds because Prometheus evaluates on millisecond timestamps: keeping the same
unit lets the embedded evaluator reproduce its window edges exactly.
"""

from __future__ import annotations

import re

__all__ = ["DurationError", "format_duration", "parse_duration"]

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
             "w": 604_800_000, "y": 31_536_000_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")


class DurationError(ValueError):
    """A text is not a duration such as 30s, 5m, 1h30m."""


def parse_duration(text: object) -> int:
    """Milliseconds of a Prometheus duration; a bare 0 is allowed."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h)")
    if isinstance(text, int) or text.strip() == "0":
        if text in (0, "0"):
            return 0
        raise DurationError(f"{text!r} has no unit (write e.g. {text}s)")
    raw = text.strip()
    position, total, last_rank = 0, 0, -1
    for match in _PART.finditer(raw):
        rank = _ORDER.index(match.group(2))
        if match.start() != position or rank <= last_rank:
            break
        total += int(match.group(1)) * _UNITS_MS[match.group(2)]
        position, last_rank = match.end(), rank
    if position != len(raw) or not raw:
        raise DurationError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h30m)")
    return total


def format_duration(ms: int) -> str:
    """The shortest Prometheus spelling of `ms` milliseconds ("0s" for zero)."""
    if ms < 0:
        raise DurationError(f"negative duration {ms} ms")
    if ms == 0:
        return "0s"
    parts = []
    rest = ms
    for unit in ("d", "h", "m", "s", "ms"):  # w and y are not used: days read better
        size = _UNITS_MS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)
