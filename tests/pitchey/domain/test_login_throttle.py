"""Login abuse (issue 13): per-account and per-address lockouts answered 429 with Retry-After
before any password is verified, failed logins logged and counted, passwords taken exactly as
typed, and an absolute session lifetime that refresh cannot slide past.

The `api` tests run on SQLite with the in-process store and on PostgreSQL with Redis; the
two-instance test runs two apps on one Redis key prefix."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from pitchey.api import CLOCK
from pitchey.app import create_app
from pitchey.cache import MemoryCache, RedisCache
from pitchey.login_throttle import (
    ACCOUNT_POLICY,
    CLIENT_POLICY,
    MemoryAttemptStore,
    RedisAttemptStore,
    open_attempt_store,
)
from tests.pitchey.domain.conftest import DEMO, PASSWORD, Api, FakeClock, fast_settings, start_api

FREE = ACCOUNT_POLICY.free_failures


async def _login(api: Api, password: str, *, portal: str = "creator",
                 email: str | None = None, client: str | None = None) -> Any:
    headers = {"X-Forwarded-For": client} if client else None
    response = await api.client.post(
        f"/api/auth/{portal}/login", json={"email": email or DEMO[portal], "password": password},
        headers=headers,
    )
    await response.read()
    api.client.session.cookie_jar.clear()
    return response


def _failures(api: Api, reason: str, portal: str = "creator") -> float:
    return api.sample("pitchey_auth_failures_total", portal=portal, reason=reason)


async def test_forty_wrong_passwords_lock_the_account_until_the_lock_passes(api: Api) -> None:
    statuses = [(await _login(api, f"guess-{n}")).status for n in range(40)]
    assert statuses == [401] * FREE + [429] * (40 - FREE)
    right = await _login(api, PASSWORD)
    assert right.status == 429  # the right password is not even looked at while locked
    body = await right.json()
    assert body["error"]["code"] == "too_many_attempts"
    assert body["error"]["status"] == 429
    retry_after = int(right.headers["Retry-After"])
    assert retry_after == ACCOUNT_POLICY.base_delay_s
    assert "pitchey_session" not in right.cookies
    assert _failures(api, "wrong_password") == FREE
    assert _failures(api, "throttled") == 40 - FREE + 1

    api.clock.advance(retry_after)  # never permanent: the victim gets in once it passes
    assert (await _login(api, PASSWORD)).status == 200
    # and a success resets the account: the next wrong password is a plain 401 again
    assert (await _login(api, "wrong")).status == 401


async def test_throttled_attempts_do_not_reach_the_database(api: Api) -> None:
    for n in range(FREE):
        assert (await _login(api, f"guess-{n}")).status == 401
    queries = api.sample("pitchey_db_queries_total", operation="select")
    assert (await _login(api, PASSWORD)).status == 429
    assert api.sample("pitchey_db_queries_total", operation="select") == queries


async def test_each_further_failure_doubles_the_lock_up_to_the_cap(api: Api) -> None:
    for n in range(FREE):
        assert (await _login(api, f"guess-{n}")).status == 401
    waits = []
    for n in range(12):
        locked = await _login(api, "again")
        assert locked.status == 429
        wait = int(locked.headers["Retry-After"])
        waits.append(wait)
        api.clock.advance(wait)
        assert (await _login(api, f"late-{n}")).status == 401  # one guess per lock
    assert waits[:5] == [1, 2, 4, 8, 16]
    assert max(waits) == ACCOUNT_POLICY.max_delay_s == waits[-1]
    # attempts while locked do not extend the lock
    for _ in range(10):
        assert (await _login(api, "hammer")).status == 429
    api.clock.advance(ACCOUNT_POLICY.max_delay_s)
    assert (await _login(api, PASSWORD)).status == 200


async def test_failures_older_than_the_window_are_forgotten(api: Api) -> None:
    for n in range(FREE - 1):
        assert (await _login(api, f"guess-{n}")).status == 401
    api.clock.advance(ACCOUNT_POLICY.window_s)
    for n in range(FREE):
        assert (await _login(api, f"fresh-{n}")).status == 401
    assert (await _login(api, PASSWORD)).status == 429


async def test_a_burst_of_parallel_guesses_gets_no_more_verdicts(api: Api) -> None:
    responses = await asyncio.gather(*(_login(api, f"guess-{n}") for n in range(30)))
    statuses = sorted(response.status for response in responses)
    assert statuses.count(401) <= FREE
    assert statuses.count(429) >= 30 - FREE
    assert (await _login(api, PASSWORD)).status == 429


async def test_one_address_guessing_many_accounts_is_locked_out(
    backend_settings: Any, backend: str
) -> None:
    from dataclasses import replace

    harness, cache = await start_api(replace(backend_settings, trust_forwarded_for=True), backend)
    try:
        attacker, bystander = "203.0.113.7", "198.51.100.9"
        for n in range(CLIENT_POLICY.free_failures):
            response = await _login(harness, PASSWORD, email=f"nobody{n}@demo.com",
                                    client=attacker)
            assert response.status == 401
        assert _failures(harness, "unknown_account") == CLIENT_POLICY.free_failures
        # a fresh account from the same address: locked; from another address: served
        blocked = await _login(harness, PASSWORD, client=attacker)
        assert blocked.status == 429
        assert int(blocked.headers["Retry-After"]) >= 1
        assert (await _login(harness, PASSWORD, client=bystander)).status == 200
        # a valid account of the attacker's own does not clear its address
        assert (await _login(harness, PASSWORD, client=attacker)).status == 429
        harness.clock.advance(CLIENT_POLICY.base_delay_s)
        assert (await _login(harness, PASSWORD, client=attacker)).status == 200
    finally:
        await harness.client.close()
        await cache.close()


async def test_failed_logins_are_logged_without_the_password(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pitchey.auth")
    await _login(api, "s3cret-guess")
    await _login(api, PASSWORD, portal="investor", email=DEMO["creator"])
    await _login(api, PASSWORD, email="nobody@demo.com")
    lines = [r.getMessage() for r in caplog.records if r.name == "pitchey.auth"]
    assert len(lines) == 3, lines
    assert "portal=creator reason=wrong_password client=127.0.0.1" in lines[0]
    assert "portal=investor reason=wrong_portal" in lines[1]
    assert "reason=unknown_account" in lines[2]
    assert not any("s3cret" in line or PASSWORD in line for line in caplog.text.splitlines())
    assert _failures(api, "wrong_portal", portal="investor") == 1
    assert _failures(api, "unknown_account") == 1
    # refusals by the throttle cost nothing to send: counted each, logged at most every 10 s
    caplog.clear()
    for n in range(FREE + 20):
        await _login(api, f"guess-{n}")
    throttled = [r for r in caplog.records if "reason=throttled" in r.getMessage()]
    assert len(throttled) == 1
    assert _failures(api, "throttled") == 20


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_instances_sharing_redis_share_the_account_counter(
    pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(tmp_path, database_url=pg_dsn, redis_url=redis_url)
    first, first_cache = await start_api(settings, "postgresql-redis")
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    caches = [RedisCache(redis_url, prefix=prefix), RedisCache(redis_url, prefix=prefix)]
    clients: list[TestClient[Any, Any]] = []
    clock = FakeClock()
    try:
        for cache in caches:
            app = create_app(settings, registry=CollectorRegistry(), cache=cache)
            app[CLOCK] = clock
            client: TestClient[Any, Any] = TestClient(TestServer(app))
            await client.start_server()
            clients.append(client)
        body = {"email": DEMO["creator"], "password": "wrong"}
        for n in range(FREE):
            response = await clients[n % 2].post("/api/auth/creator/login", json=body)
            assert response.status == 401
        for client in clients:  # both instances see the lock the two of them counted
            locked = await client.post(
                "/api/auth/creator/login", json={**body, "password": PASSWORD}
            )
            assert locked.status == 429
            assert locked.headers["Retry-After"] == "1"
        clock.advance(1)
        right = await clients[1].post(
            "/api/auth/creator/login", json={**body, "password": PASSWORD}
        )
        assert right.status == 200
    finally:
        for client in clients:
            await client.close()
        for cache in caches:
            await cache.close()
        await first.client.close()
        await first_cache.close()


@pytest.mark.redis
async def test_geo_workers_count_in_the_redis_beneath_their_regional_cache(
    redis_url: str,
) -> None:
    from pitchey.geo.appcache import RegionalCache
    from pitchey.geo.generations import LocalGenerations

    inner = RedisCache(redis_url, prefix=f"t{uuid.uuid4().hex[:10]}:")
    try:
        stores = [open_attempt_store(RegionalCache(inner, LocalGenerations(), 60.0))
                  for _ in range(2)]
        assert all(isinstance(store, RedisAttemptStore) for store in stores)
        for n in range(FREE):
            assert await stores[n % 2].fail("acct:x", ACCOUNT_POLICY, 100.0) == 0
        assert await stores[0].wait("acct:x", ACCOUNT_POLICY, 100.0) == 1.0
        assert isinstance(open_attempt_store(MemoryCache()), MemoryAttemptStore)
    finally:
        await inner.close()


async def test_a_password_is_exactly_what_was_typed(api: Api) -> None:
    padded = await _login(api, f"  {PASSWORD}\t")
    assert padded.status == 401
    assert (await padded.json())["error"]["code"] == "invalid_credentials"
    assert (await _login(api, PASSWORD)).status == 200
    # only whitespace is still a password (a wrong one), not an empty field
    assert (await _login(api, "   ")).status == 401


async def test_refresh_cannot_slide_past_the_absolute_lifetime(api: Api) -> None:
    token = await api.login("creator")
    lifetime = api.settings.session_max_lifetime_s
    assert lifetime == 7 * 24 * 3600
    started = api.clock.now
    step = api.settings.session_ttl_s - 3600
    while api.clock.now + step < started + lifetime:
        api.clock.advance(step)
        response = await api.client.post(
            "/api/auth/refresh", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 200, await response.text()
        token = (await response.json())["session"]["token"]
        max_age = int(response.cookies["pitchey_session"]["max-age"])
        api.client.session.cookie_jar.clear()
    # the last refresh could not give a full day: the expiry stops at the absolute end, and
    # so does the cookie's
    assert max_age == started + lifetime - api.clock.now < api.settings.session_ttl_s
    me = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    expires = await api.db.fetchval("SELECT MAX(expires_at) FROM sessions")
    assert me.status == 200 and float(expires) == started + lifetime
    api.clock.now = started + lifetime
    gone = await api.client.post(
        "/api/auth/refresh", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status == 401


async def test_refresh_of_a_session_past_its_lifetime_ends_it(api: Api) -> None:
    token = await api.login("investor")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 200  # cached
    # a session signed in 8 days ago whose expiry was slid forward (as before the fix)
    await api.db.execute(
        "UPDATE sessions SET created_at = $1", api.clock.now - 8 * 24 * 3600
    )
    response = await api.client.post("/api/auth/refresh", headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"
    assert await api.db.fetchval("SELECT COUNT(*) FROM sessions") == 0
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 401
