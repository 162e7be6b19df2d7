"""Keeping CPython's full collections short in a load generator holding many sleeping users.

Between two requests a user sleeps for its think time, and what the sleep holds (the
greenlet's frames, its timer and waiter) is made after any one-off `gc.freeze()` and lives
long enough to reach the oldest generation. At 100,000 users that is over a million objects,
and each full collection walked them all: 40 ms growing to 400 ms every two seconds
(measured with `gc.callbacks` in `benchmarks.bench_loadgen`'s 100,000-user step), a stall every
request in flight waits out and reports as latency. Freezing once a second keeps the oldest
generation nearly empty. Cycles are still found by the young collections, which run many
times a second (the full passes above collected nothing); frozen objects are still freed by
reference counting when the last reference goes.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

__all__ = ["HeapFreezer"]


class HeapFreezer:
    """`tick(now)` from a periodic loop: freezes the heap at most every `every_s` seconds."""

    def __init__(self, every_s: float = 1.0, freeze: Callable[[], None] = gc.freeze) -> None:
        self.every_s = every_s
        self._freeze = freeze
        self._last: float | None = None

    def tick(self, now: float) -> bool:
        """Freeze if `every_s` has passed since the last freeze; True when it froze."""
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        self._freeze()
        return True
