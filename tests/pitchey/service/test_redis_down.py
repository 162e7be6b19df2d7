"""Redis configured but unreachable: the service degrades to the database, never a 500.

A real redis client against a port nothing listens on (connection refused at once), so the
failure is the one production sees when Redis goes away."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pitchey.cache import CacheUnavailable, RedisCache, ThrottledWarning

NOWHERE = "redis://127.0.0.1:1/0"


async def test_reads_limits_and_health_degrade_instead_of_failing(
    service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await service(redis_url=NOWHERE, rate_limit_per_minute=5)
    with caplog.at_level(logging.WARNING):
        statuses = [(await client.get("/api/pitches")).status for _ in range(8)]
    assert statuses == [200] * 8  # served from the database; the limiter failed open
    assert any("redis" in record.getMessage() for record in caplog.records)
    health = await (await client.get("/api/health")).json()
    assert health["status"] == "degraded"
    assert health["services"]["cache"]["status"] == "unhealthy"
    login = await client.post("/api/auth/creator/login",
                              json={"email": "nobody@demo.com", "password": "Demo1234"})
    assert login.status == 401  # auth still answers from the database


async def test_a_delete_that_cannot_be_made_is_an_error_not_a_silent_skip() -> None:
    cache = RedisCache(NOWHERE)
    try:
        assert await cache.get("k") is None
        assert await cache.generation("pitches") == -1
        await cache.set("k", b"v", 10)  # skipped
        with pytest.raises(CacheUnavailable):
            await cache.delete("session:abc")
    finally:
        await cache.close()


def test_recurring_warnings_are_throttled(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warning = ThrottledWarning(logging.getLogger("test.throttle"), every_s=10.0,
                               clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        for step in range(25):  # one a second for 25 s
            now[0] = float(step)
            warning.warn("down")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["down", "down (9 more since the last warning)",
                        "down (9 more since the last warning)"]
