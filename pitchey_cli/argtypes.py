"""argparse value types shared by every `pitchey` command (standard library only, so building
the `pitchey` parser stays cheap, and the service may use them: it imports nothing of the
suite but `pitchey_cli`'s standard-library modules).

Quantities with units (durations, latencies, percentages) are read by `collectors.units`;
these are the plain numbers.
"""

from __future__ import annotations

import argparse
from typing import TypeVar

__all__ = ["fraction", "non_negative_float", "non_negative_int", "positive_float",
           "positive_int"]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


_N = TypeVar("_N", int, float)


def _checked(value: _N, text: str, ok: bool, rule: str) -> _N:
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    return _checked(value, text, value > 0, "positive")


def non_negative_float(text: str) -> float:
    value = _number(text)
    return _checked(value, text, value >= 0, "0 or more")


def positive_int(text: str) -> int:
    value = _whole(text)
    return _checked(value, text, value >= 1, "1 or more")


def non_negative_int(text: str) -> int:
    value = _whole(text)
    return _checked(value, text, value >= 0, "0 or more")


def fraction(text: str) -> float:
    """A share from 0 to 1 (0.1 is a tenth)."""
    value = _number(text)
    return _checked(value, text, 0 <= value <= 1, "between 0 and 1")
