"""Request coalescing ("Pitchey Platform - Auto-Scaling & Load Balancing Architecture",
§ Performance Optimization › 1. Request Coalescing): identical concurrent calls share one
underlying call. The regional worker coalesces application cache misses by cache key
(`pitchey.geo.appcache`), so a burst of identical reads of a cold key costs one storage load.

A call stays joinable for `window_ms` after it starts and for at most `max_batch` requests;
a request arriving later starts its own call. The shared call runs as its own task, so the
client that started it can go away without failing the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pitchey.geo.regions import CoalescingConfig

__all__ = ["Coalescer"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass
class _Flight(Generic[_V]):
    task: asyncio.Future[_V]
    started_at: float
    members: int = 1
    done: bool = field(default=False)


class Coalescer(Generic[_K, _V]):
    def __init__(
        self, config: CoalescingConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = config.enabled
        self._window_s = config.window_ms / 1000.0
        self._max_batch = config.max_batch
        self._clock = clock
        self._flights: dict[_K, _Flight[_V]] = {}
        self.joined = 0  # requests answered by another request's call

    async def run(self, key: _K, call: Callable[[], Awaitable[_V]]) -> tuple[_V, bool]:
        """The result of `call` for `key`, and whether it was shared with an earlier request."""
        if not self.enabled:
            return await call(), False
        flight = self._flights.get(key)
        now = self._clock()
        if (flight is not None and not flight.done and flight.members < self._max_batch
                and now - flight.started_at < self._window_s):
            flight.members += 1
            self.joined += 1
            return await asyncio.shield(flight.task), True
        task: asyncio.Future[_V] = asyncio.ensure_future(call())
        flight = _Flight(task, now)
        self._flights[key] = flight
        task.add_done_callback(lambda _: self._finish(key, flight))
        return await asyncio.shield(task), False

    def _finish(self, key: _K, flight: _Flight[_V]) -> None:
        flight.done = True
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            flight.task.exception()  # mark it retrieved: every waiter may have gone away

    @property
    def in_flight(self) -> int:
        return len(self._flights)
