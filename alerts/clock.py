"""Clocks the live parts run on: the system clock, or a scaled one for tests and demos.

A `ScaledClock(factor=100)` makes one real second count as 100: a 60 s receiver outage, the
backoff between retries and the evaluation interval all shrink together, so a test exercises
the real timings' shape without waiting for them.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep up to `seconds` of this clock's time; True if `event` was set meanwhile."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class ScaledClock:
    """Runs `factor` times faster than real time, starting at the real time of creation."""

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        self.factor = factor
        self._origin = time.time()
        self._start = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._start) * self.factor

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds) / self.factor)
