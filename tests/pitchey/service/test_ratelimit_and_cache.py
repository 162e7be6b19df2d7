from __future__ import annotations

import pytest

from pitchey.cache import Cache, MemoryCache, RedisCache, read_through
from pitchey.ratelimit import MemoryRateLimiter, RedisRateLimiter


class FakeClock:
    """A clock the test moves by hand (the code under test takes any callable)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_memory_rate_limit_refuses_past_the_limit_until_the_window_ends() -> None:
    clock = FakeClock(600.0)
    limiter = MemoryRateLimiter(limit=3, clock=clock)
    assert [(await limiter.hit("a")).allowed for _ in range(4)] == [True, True, True, False]
    assert (await limiter.hit("b")).allowed, "another client has its own counter"
    clock.now = 630.0
    refused = await limiter.hit("a")
    assert not refused.allowed and refused.retry_after_s == 30
    clock.now = 660.0
    assert (await limiter.hit("a")).allowed, "a new minute starts a new window"


@pytest.mark.redis
async def test_redis_rate_limit_is_shared_between_instances(redis_url: str) -> None:
    clock = FakeClock(1_200.0)
    first = RedisRateLimiter(redis_url, limit=2, clock=clock)
    second = RedisRateLimiter(redis_url, limit=2, clock=clock)
    try:
        assert (await first.hit("10.0.0.9")).allowed
        assert (await second.hit("10.0.0.9")).allowed
        refused = await first.hit("10.0.0.9")
        assert not refused.allowed and refused.retry_after_s == 60
    finally:
        await first.close()
        await second.close()


async def test_memory_cache_expires_and_evicts() -> None:
    clock = FakeClock(0.0)
    cache = MemoryCache(max_entries=2, clock=clock)
    await cache.set("a", b"1", ttl_s=10)
    clock.now = 9.9
    assert await cache.get("a") == b"1"
    clock.now = 10.0
    assert await cache.get("a") is None
    for key in ("x", "y", "z"):
        await cache.set(key, key.encode(), ttl_s=100)
    assert await cache.get("x") is None and await cache.get("z") == b"z"


async def _exercise_read_through(cache: Cache) -> None:
    loads: list[int] = []
    lookups: list[bool] = []

    async def loader() -> bytes:
        loads.append(1)
        return f"v{len(loads)}".encode()

    first = await read_through(cache, "pitches", "list", 60, loader, lookups.append)
    second = await read_through(cache, "pitches", "list", 60, loader, lookups.append)
    assert first == second == b"v1" and lookups == [False, True]
    await cache.bump("pitches")  # a write invalidates every entry of the namespace
    assert await read_through(cache, "pitches", "list", 60, loader) == b"v2"


async def test_read_through_memory() -> None:
    await _exercise_read_through(MemoryCache())


@pytest.mark.redis
async def test_read_through_redis(redis_url: str) -> None:
    cache = RedisCache(redis_url, prefix="test-rt:")
    try:
        await _exercise_read_through(cache)
        assert await cache.ping() >= 0
    finally:
        await cache.close()
