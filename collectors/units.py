"""The suite's one vocabulary of quantities: durations, latencies, percentages, counts, rates
and sizes, written the way people write them ("1h30m", "250ms", "0.1%", "1.5k/s", "64MB").

Scenarios, the gate's thresholds, the alert spec and the dashboard all read their quantities
through this module, so a text one of them accepts the others accept too. Every parser takes
the value as YAML or a flag gives it (a number or a text) and either returns a number in the
canonical unit or raises `UnitError`, whose message names the bad text and whose `token` is
the piece to point at (the unknown unit, the negative number...).

Canonical units: seconds for durations, milliseconds for latencies, a fraction (0.001) for
percentages, a plain number for counts, per second for rates, bytes for sizes. The alert
spec's durations follow Prometheus (whole numbers; y, w, d, h, m, s, ms) and are held as whole
milliseconds, the unit of Prometheus' timestamps, so its window edges are reproduced exactly.

Pure: the standard library only, no state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = [
    "DURATION_UNITS_S",
    "PROMETHEUS_UNITS_MS",
    "SIZE_UNITS",
    "UnitError",
    "format_duration",
    "format_prometheus_duration",
    "parse_count",
    "parse_duration_s",
    "parse_fraction",
    "parse_latency_ms",
    "parse_number",
    "parse_prometheus_duration_ms",
    "parse_rate_per_s",
    "parse_size_bytes",
]

# Seconds per unit of a duration or latency, largest first (the order compound texts use).
DURATION_UNITS_S: Mapping[str, float] = {
    "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
}
# The same units in milliseconds, so that "100ms" is exactly 100.0 (not 100 x 0.001 x 1000).
_LATENCY_UNITS_MS: Mapping[str, float] = {
    "h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3,
}
# Prometheus' duration units (model/time.go), in milliseconds, largest first.
PROMETHEUS_UNITS_MS: Mapping[str, int] = {
    "y": 31_536_000_000, "w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000,
    "s": 1000, "ms": 1,
}
# Bytes per size unit, looked up case-insensitively: SI multiples of 1000 (kB, MB; Kubernetes'
# k, M) and binary multiples of 1024 (KiB, MiB; Kubernetes' Ki, Mi).
SIZE_UNITS: Mapping[str, int] = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
    "ti": 2**40, "tib": 2**40,
}
_COUNT_MULTIPLIERS: Mapping[str, float] = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}
_PROMETHEUS_ORDER = "y, w, d, h, m, s, ms"
_DURATION_EXAMPLES = "write e.g. 30s, 2m, 1h30m, 250ms"

# A number as people type it: 100, 2.5, .5, 1e3, 100_000 or 100,000 (thousands only).
_NUMBER = (r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d[\d_]*)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_QUANTITY = re.compile(rf"\s*({_NUMBER})\s*(.*?)\s*", re.DOTALL)
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Zµ]+)")


class UnitError(ValueError):
    """A value is not the quantity asked for. The message names the bad text; `token` is the
    piece of it to point at (the whole text unless one part is to blame)."""

    def __init__(self, message: str, *, text: object, token: str | None = None) -> None:
        self.text = text
        self.token = token if token is not None else _shown(text)
        super().__init__(message)


def _shown(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value)


def _a(what: str) -> str:
    """"a duration", "an error_rate"."""
    return f"an {what}" if what[:1].lower() in "aeiou" else f"a {what}"


# --- numbers ----------------------------------------------------------------------------------

def parse_number(value: object, *, what: str = "number") -> float:
    """A finite number from a number or a text ("100", "2.5", "1e3", "100_000", "100,000")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{value!r} is not {_a(what)}", text=value)
    if isinstance(value, str):
        if re.fullmatch(rf"\s*{_NUMBER}\s*", value) is None:
            raise UnitError(f"{value.strip()!r} is not {_a(what)}", text=value)
        value = float(value.strip().replace("_", "").replace(",", ""))
    number = float(value)
    if not math.isfinite(number):
        raise UnitError(f"{_shown(value)!r} is not a finite number", text=value)
    return number


def _quantity(value: object, what: str, example: str) -> tuple[float, str, str]:
    """(number, unit, number as written) of a number or a "<number><unit>" text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{value!r} is not {_a(what)} ({example})", text=value)
    if not isinstance(value, str):
        return parse_number(value, what=what), "", str(value)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise UnitError(f"{value.strip()!r} is not {_a(what)} ({example})", text=value)
    return parse_number(match.group(1), what=what), match.group(2), match.group(1)


def _not_negative(number: float, value: object, written: str, what: str) -> None:
    if number < 0:
        raise UnitError(f"{what} {_shown(value)!r} is negative", text=value, token=written)


# --- durations and latencies ------------------------------------------------------------------

def parse_duration_s(value: object, *, what: str = "duration") -> float:
    """Seconds from a number (already seconds), a bare numeric text (seconds) or a text such as
    "250ms", "2.5s", "1m30s", "1h30m" or "1h 30m" (units h, m, s, ms, us, largest first)."""
    number, unit, written = _quantity(value, what, _DURATION_EXAMPLES)
    _not_negative(number, value, written, what)
    if unit == "":
        return number
    return _time(value, number, unit, what, DURATION_UNITS_S)


def parse_latency_ms(value: object, *, what: str = "latency", bare: bool = True) -> float:
    """Milliseconds from a text such as "100ms", "1.5s" or "1500us". A bare number is
    milliseconds when `bare` is true (a scenario's `lag_p95: 50`) and refused otherwise (a
    threshold's "p95 < 100" is ambiguous)."""
    number, unit, written = _quantity(value, what, "write e.g. 100ms or 1.5s")
    _not_negative(number, value, written, what)
    if unit == "":
        if not bare:
            raise UnitError(f"{written!r} needs a time unit: write {written}ms or {written}s",
                            text=value, token=written)
        return number
    return _time(value, number, unit, what, _LATENCY_UNITS_MS)


def _time(value: object, number: float, unit: str, what: str, scale: Mapping[str, float]
          ) -> float:
    """`number` `unit` ("2.5" "s", "1e3" "ms") or a compound text ("1h30m") in the unit of
    `scale` (seconds or milliseconds per time unit)."""
    if unit in scale:
        return number * scale[unit]
    text = str(value)
    parts = _parts(text, scale)
    if parts is None:
        units = ", ".join(scale)
        raise UnitError(f"unit {unit!r} of {what} {text.strip()!r} is not a time unit (use "
                        f"{units}; several largest first, e.g. 1h30m)", text=value, token=unit)
    return sum(float(number) * scale[name] for number, name in parts)


def _parts(text: str, units: Mapping[str, float] | Mapping[str, int]
           ) -> list[tuple[str, str]] | None:
    """("1", "h"), ("30", "m") of "1h30m" when every part's unit is in `units` and the units
    come largest first, each once; None otherwise."""
    order = list(units)
    parts: list[tuple[str, str]] = []
    position, last_rank = 0, -1
    for match in _PART.finditer(text):
        name = match.group(2)
        if match.start() != position or name not in units or order.index(name) <= last_rank:
            return None
        parts.append((match.group(1), name))
        position, last_rank = match.end(), order.index(name)
    if not parts or text[position:].strip():
        return None
    return parts


def parse_prometheus_duration_ms(value: object, *, what: str = "duration") -> int:
    """Whole milliseconds of a Prometheus duration ("90s", "1h30m", "2d", "250ms"); "0" and 0
    are the only durations without a unit."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnitError(f"{value!r} is not {_a(what)} (write e.g. 30s, 5m, 1h)", text=value)
    if value in (0, "0") or (isinstance(value, str) and value.strip() == "0"):
        return 0
    if isinstance(value, int):
        raise UnitError(f"{value!r} has no unit (write e.g. {value}s)", text=value)
    parts = _parts(value.strip(), PROMETHEUS_UNITS_MS)
    if parts is None or any(not number.isdigit() for number, _ in parts):
        raise UnitError(f"{value!r} is not {_a(what)} (write e.g. 30s, 5m, 1h30m: whole "
                        f"numbers, units {_PROMETHEUS_ORDER}, largest first)", text=value)
    return sum(int(number) * PROMETHEUS_UNITS_MS[name] for number, name in parts)


def format_prometheus_duration(ms: int) -> str:
    """The Prometheus spelling of `ms` milliseconds in d, h, m, s, ms ("1h30m", "0s" for zero);
    parse_prometheus_duration_ms reads it back exactly."""
    if ms < 0:
        raise UnitError(f"negative duration {ms} ms", text=ms)
    if ms == 0:
        return "0s"
    parts = []
    rest = ms
    for unit in ("d", "h", "m", "s", "ms"):  # w and y are not used: days read better
        size = PROMETHEUS_UNITS_MS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def format_duration(seconds: float) -> str:
    """"1m05s" style, whole seconds, for progress lines and summaries."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


# --- percentages, counts, rates ---------------------------------------------------------------

def parse_fraction(value: object, *, what: str = "percentage", at_most_one: bool = False
                   ) -> float:
    """A fraction from "10%", "0.1%" or a bare fraction (0.1); a bare number above 1 is
    refused (did the writer mean per cent?). `at_most_one` also refuses "150%"."""
    number, unit, written = _quantity(value, what, "write e.g. 10% or 0.1")
    _not_negative(number, value, written, what)
    if unit not in ("", "%"):
        raise UnitError(f"unit {unit!r} does not apply to {what} (use % or a fraction)",
                        text=value, token=unit)
    if unit == "" and number > 1:
        raise UnitError(f"{what} {written!r} is above 1: a bare number is a fraction, write "
                        f"{written}% for a percentage", text=value, token=written)
    fraction = number / 100 if unit == "%" else number
    if at_most_one and fraction > 1:
        raise UnitError(f"{what} {_shown(value)!r} is outside 0-100%", text=value)
    return fraction


def parse_count(value: object, *, what: str = "count") -> float:
    """A number of things: "500", "100_000", "100,000", "1.5k", "2M"."""
    number, unit, written = _quantity(value, what, "write e.g. 500, 1.5k or 2M")
    _not_negative(number, value, written, what)
    if unit not in _COUNT_MULTIPLIERS:
        raise UnitError(f"unit {unit!r} does not apply to {what} (use a plain number, k or M)",
                        text=value, token=unit)
    return number * _COUNT_MULTIPLIERS[unit]


def parse_rate_per_s(value: object, *, what: str = "rate") -> float:
    """Events per second: "500", "500/s", "1.5k/s"."""
    if isinstance(value, str) and value.rstrip().endswith("/s"):
        value = value.rstrip().removesuffix("/s")
    return parse_count(value, what=what)


# --- sizes ------------------------------------------------------------------------------------

def parse_size_bytes(value: object, *, what: str = "size") -> int:
    """Whole bytes from a number (bytes) or a text: "512", "512B", "64MB" (10^6), "64MiB"
    (2^20), "1.5GiB", Kubernetes' "64Mi"; units are read case-insensitively."""
    number, unit, written = _quantity(value, what, "write e.g. 512KiB, 64MB or 1GiB")
    _not_negative(number, value, written, what)
    scale = SIZE_UNITS.get(unit.lower())
    if scale is None:
        raise UnitError(f"unit {unit!r} is not a size unit (use B, kB, MB, GB, TB or KiB, MiB, "
                        "GiB, TiB)", text=value, token=unit)
    size = number * scale
    if not size.is_integer():
        raise UnitError(f"{what} {_shown(value)!r} is not a whole number of bytes", text=value)
    return int(size)
