"""Read-through cache for public reads: in-process by default, Redis when REDIS_URL is set.

Invalidation uses generations: every cached key embeds its namespace's generation number,
and a write bumps the generation, so every instance sharing the same Redis stops reading
the old entries at once, without scanning keys. A client therefore never reads its own
write stale.

Redis going away degrades the service instead of failing it: reads become misses (served from
the database), stores are skipped, and a bump that cannot be made is logged (entries already
cached expire with their TTL). Only a delete, which logout relies on to end a session, raises
`CacheUnavailable` (answered 503). `ping()` raises, so the health endpoints report the outage.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "Cache", "CacheUnavailable", "Loader", "MemoryCache", "RedisCache", "ThrottledWarning",
    "load_and_store", "open_cache", "read_through", "redis_failures",
]

log = logging.getLogger("pitchey.cache")
# A generation no entry is stored under while Redis cannot say the real one.
_UNKNOWN_GENERATION = -1

Loader = Callable[[], Awaitable[bytes]]


def redis_failures() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is unreachable or too slow (the cache and the rate
    limiter degrade on exactly these; anything else is a bug and propagates)."""
    import redis.exceptions as redis_exceptions

    return (redis_exceptions.RedisError, OSError, TimeoutError)


class CacheUnavailable(Exception):
    """The shared cache cannot be reached for an operation that must not be skipped."""


class ThrottledWarning:
    """Logs a recurring failure at most once per `every_s`, with how many were not logged."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._silenced = 0

    def warn(self, message: str) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._every_s:
            self._silenced += 1
            return
        suffix = f" ({self._silenced} more since the last warning)" if self._silenced else ""
        self._logger.warning("%s%s", message, suffix)
        self._last, self._silenced = now, 0


class Cache(Protocol):
    kind: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def generation(self, namespace: str) -> int: ...
    async def bump(self, namespace: str) -> int: ...
    async def fill(self, key: str, ttl_s: float, loader: Loader) -> bytes:
        """A miss of `key`: `loader()`'s bytes, stored for `ttl_s`. A cache may let
        concurrent misses of one key share a single load (the geo worker's does)."""
        ...
    async def ping(self) -> float: ...
    async def close(self) -> None: ...


async def load_and_store(cache: Cache, key: str, ttl_s: float, loader: Loader) -> bytes:
    """`fill` without sharing: every miss loads for itself."""
    value = await loader()
    await cache.set(key, value, ttl_s)
    return value


class MemoryCache:
    """A bounded LRU with per-entry expiry; the clock is injectable for tests."""

    kind = "memory"

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        """`get` without a coroutine (nothing here waits on I/O)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def read_now(self, namespace: str, key: str) -> bytes | None:
        """`get_now` of `namespace/key` under the namespace's current generation, in one
        call (the cached-page fast path)."""
        full_key = f"{namespace}:{self._generations.get(namespace, 0)}:{key}"
        entry = self._entries.get(full_key)
        if entry is None or entry[0] <= self._clock():
            return None if entry is None else self.get_now(full_key)  # drops the stale entry
        self._entries.move_to_end(full_key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def generation(self, namespace: str) -> int:
        return self.generation_now(namespace)

    def generation_now(self, namespace: str) -> int:
        return self._generations.get(namespace, 0)

    async def bump(self, namespace: str) -> int:
        value = self._generations.get(namespace, 0) + 1
        self._generations[namespace] = value
        return value

    async def fill(self, key: str, ttl_s: float, loader: Loader) -> bytes:
        return await load_and_store(self, key, ttl_s, loader)

    async def ping(self) -> float:
        return 0.0

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """The same contract over redis.asyncio, so several instances share entries."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "pitchey:") -> None:
        import redis.asyncio as redis_asyncio

        self._redis = redis_asyncio.Redis.from_url(url, socket_timeout=2.0)
        self._prefix = prefix
        self._errors = redis_failures()
        self._warning = ThrottledWarning(log)

    def _degraded(self, operation: str, exc: BaseException) -> None:
        self._warning.warn(f"redis cache unavailable, {operation} skipped: "
                           f"{type(exc).__name__}: {exc}")

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self._prefix + key)
        except self._errors as exc:
            self._degraded("read (served as a miss)", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except self._errors as exc:
            self._degraded("store", exc)

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except self._errors as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def generation(self, namespace: str) -> int:
        try:
            value = await self._redis.get(self._prefix + "gen:" + namespace)
        except self._errors as exc:
            self._degraded("generation read", exc)
            return _UNKNOWN_GENERATION
        return int(value) if value is not None else 0

    async def bump(self, namespace: str) -> int:
        try:
            return int(await self._redis.incr(self._prefix + "gen:" + namespace))
        except self._errors as exc:
            self._degraded(f"invalidation of {namespace!r} (its entries expire with their TTL)",
                           exc)
            return _UNKNOWN_GENERATION

    async def fill(self, key: str, ttl_s: float, loader: Loader) -> bytes:
        return await load_and_store(self, key, ttl_s, loader)

    async def ping(self) -> float:
        started = time.perf_counter()
        await self._redis.ping()
        return (time.perf_counter() - started) * 1000.0

    async def close(self) -> None:
        await self._redis.aclose()


def open_cache(redis_url: str | None) -> Cache:
    return RedisCache(redis_url) if redis_url else MemoryCache()


async def read_through(
    cache: Cache,
    namespace: str,
    key: str,
    ttl_s: float,
    loader: Loader,
    on_lookup: Callable[[bool], None] | None = None,
) -> bytes:
    """Return the cached bytes for `namespace/key`, loading and storing them on a miss."""
    if isinstance(cache, MemoryCache):  # no I/O to wait for: skip two coroutine round trips
        full_key = f"{namespace}:{cache.generation_now(namespace)}:{key}"
        value = cache.get_now(full_key)
    else:
        full_key = f"{namespace}:{await cache.generation(namespace)}:{key}"
        value = await cache.get(full_key)
    if on_lookup is not None:
        on_lookup(value is not None)
    if value is None:
        value = await cache.fill(full_key, ttl_s, loader)
    return value
