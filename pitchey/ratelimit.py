"""Per-client fixed-window rate limiting: 100 requests/min per IP ("Pitchey Platform Deployment
Architecture", § Security Architecture › Defense in Depth Strategy; docs/targets.md).

In-process by default; in Redis when configured, so several instances share one counter per
client (INCR and EXPIRE in one round trip).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Decision", "RateLimiter", "MemoryRateLimiter", "RedisRateLimiter", "open_rate_limiter"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int


_ALLOWED = Decision(True, 0)


class RateLimiter(Protocol):
    limit: int

    async def hit(self, client: str) -> Decision: ...
    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(
        self, limit: int, window_s: int = 60, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self._window_s = window_s
        self._clock = clock
        self._window_end = -math.inf
        self._counts: dict[str, int] = {}

    async def hit(self, client: str) -> Decision:
        return self.hit_now(client)

    def hit_now(self, client: str) -> Decision:
        """The same decision without a coroutine."""
        retry_after_s = self.retry_after_now(client)
        return _ALLOWED if retry_after_s == 0 else Decision(False, retry_after_s)

    def retry_after_now(self, client: str) -> int:
        """Count a hit: 0 when it is within the limit, else the seconds until the window
        resets. The request path's form: no object is built for the common answer."""
        now = self._clock()
        if now >= self._window_end:
            # a new window forgets every old counter at once: memory stays bounded
            self._window_end = (now // self._window_s + 1) * self._window_s
            self._counts = {}
        counts = self._counts
        count = counts[client] = counts.get(client, 0) + 1
        if count <= self.limit:
            return 0
        return max(1, math.ceil(self._window_end - now))

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    def __init__(
        self, url: str, limit: int, window_s: int = 60, clock: Callable[[], float] = time.time
    ) -> None:
        import redis.asyncio as redis_asyncio

        from pitchey.cache import ThrottledWarning, redis_failures

        self.limit = limit
        self._redis = redis_asyncio.Redis.from_url(url, socket_timeout=2.0)
        self._window_s = window_s
        self._clock = clock
        self._errors = redis_failures()
        self._warning = ThrottledWarning(logging.getLogger("pitchey.ratelimit"))

    async def hit(self, client: str) -> Decision:
        """Counts in Redis; with Redis unreachable the limit fails open (the request is
        allowed, a warning logged): an outage of the counter must not become one of the API."""
        now = self._clock()
        window = int(now // self._window_s)
        key = f"pitchey:rl:{client}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, self._window_s + 1)
                count, _ = await pipe.execute()
        except self._errors as exc:
            self._warning.warn(f"redis rate limiter unavailable, request allowed: "
                               f"{type(exc).__name__}: {exc}")
            return _ALLOWED
        if int(count) <= self.limit:
            return _ALLOWED
        return Decision(False, max(1, math.ceil((window + 1) * self._window_s - now)))

    async def close(self) -> None:
        await self._redis.aclose()


def open_rate_limiter(limit: int, redis_url: str | None) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, limit)
    return MemoryRateLimiter(limit)
