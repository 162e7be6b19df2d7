"""Durations and latencies written the way people write them: "30s", "2m30s", "150ms", "1h"."""

from __future__ import annotations

import re

__all__ = ["parse_duration_s", "parse_latency_ms", "format_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h)")
_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: object) -> float:
    """Seconds from a number (already seconds) or a text such as "1m30s" or "250ms".

    Raises ValueError with a message fit for a person when the value is neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 2m, 1h30m, 250ms)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 2m, 1h30m, 250ms)")
    text = value.strip().replace(" ", "")
    if text and _is_number(text):
        return parse_duration_s(float(text))
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 2m, 1h30m, 250ms)")
    return total


def parse_latency_ms(value: object) -> float:
    """Milliseconds from a number (already milliseconds) or a text such as "100ms" or "1.5s"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if isinstance(value, str) and _is_number(value.strip()):
        return parse_latency_ms(float(value))
    try:
        return parse_duration_s(value) * 1000.0
    except ValueError:
        raise ValueError(f"{value!r} is not a latency (write e.g. 100ms, 1.5s)") from None


def format_duration(seconds: float) -> str:
    """"1m05s" style, for progress lines and summaries."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
