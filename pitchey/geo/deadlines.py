"""Coarse deadlines for many short awaits, without a timer per request.

asyncio.timeout() schedules and cancels one TimerHandle per use; in a heap ordered by a
Python-level comparison that is a measurable share of the edge's per-request cost. The edge
needs timeouts of seconds (adaptive, 5-60 s by default), so a sweep every `resolution_s`
that fails overdue futures with TimeoutError is precise enough and costs a dict insert and
delete per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    def __init__(self, resolution_s: float = 0.05) -> None:
        self.resolution_s = resolution_s
        self._entries: dict[int, tuple[float, asyncio.Future[Any]]] = {}
        self._keys = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def watch(self, deadline: float, future: asyncio.Future[Any]) -> int:
        """Fail `future` with TimeoutError once the loop clock passes `deadline`."""
        key = next(self._keys)
        self._entries[key] = (deadline, future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sweep())
        return key

    def unwatch(self, key: int) -> None:
        self._entries.pop(key, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.resolution_s)
            now = loop.time()
            overdue = [key for key, (deadline, _) in self._entries.items() if deadline <= now]
            for key in overdue:
                _, future = self._entries.pop(key)
                if not future.done():
                    future.set_exception(TimeoutError())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._entries.clear()
