"""Idempotency-Key on writes (pitchey.idempotency), on SQLite and on PostgreSQL + Redis: a
repeat of a keyed write gets the first answer without executing again, in this instance, in
another instance on the same database and after a restart; a key reused for another request
or still in flight is refused; a key whose owner died is taken over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry

from pitchey.api import CLOCK
from pitchey.app import create_app
from pitchey.cache import MemoryCache, RedisCache
from pitchey.idempotency import LEASE_S, TTL_S, fingerprint
from pitchey.instrumentation import RouteTable
from pitchey.seed import generated_email

from .conftest import Api, start_api, valid_pitch

KEY = "Idempotency-Key"


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


async def count_titled(api: Api, title: str) -> int:
    return int(await api.db.fetchval("SELECT count(*) FROM pitches WHERE title = $1", title))


async def test_a_repeated_write_is_answered_from_the_first_without_executing(api: Api) -> None:
    headers = {**await api.headers("creator"), KEY: new_key()}
    title = f"Once {uuid.uuid4().hex[:8]}"
    first = await api.client.post("/api/pitches", json=valid_pitch(title=title), headers=headers)
    assert first.status == 201, await first.text()
    assert "Idempotent-Replayed" not in first.headers
    again = await api.client.post("/api/pitches", json=valid_pitch(title=title), headers=headers)
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.read() == await first.read()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert "Content-Security-Policy" in again.headers  # still a response of this service
    assert await count_titled(api, title) == 1
    # without a key the same request is a new write, as before
    plain = await api.client.post("/api/pitches", json=valid_pitch(title=title),
                                  headers=await api.headers("creator"))
    assert plain.status == 201 and await count_titled(api, title) == 2


async def test_a_replayed_delete_answers_204_again_not_404(api: Api) -> None:
    headers = await api.headers("creator")
    created = await api.client.post("/api/pitches", json=valid_pitch(), headers=headers)
    pitch_id = (await created.json())["id"]
    keyed = {**headers, KEY: new_key()}
    first = await api.client.delete(f"/api/pitches/{pitch_id}", headers=keyed)
    assert first.status == 204
    again = await api.client.delete(f"/api/pitches/{pitch_id}", headers=keyed)
    assert again.status == 204 and again.headers["Idempotent-Replayed"] == "true"
    unkeyed = await api.client.delete(f"/api/pitches/{pitch_id}", headers=headers)
    assert unkeyed.status == 404


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    headers = {**await api.headers("creator"), KEY: new_key()}
    first = await api.client.post("/api/pitches", json=valid_pitch(title="First"),
                                  headers=headers)
    assert first.status == 201
    other = await api.client.post("/api/pitches", json=valid_pitch(title="Second"),
                                  headers=headers)
    assert other.status == 422
    error = (await other.json())["error"]
    assert error["code"] == "idempotency_key_mismatch" and KEY in error["fields"]
    assert await count_titled(api, "Second") == 0


async def test_a_malformed_key_is_a_422_naming_the_header(api: Api) -> None:
    headers = await api.headers("creator")
    for value in ("x" * 256, "tab\there"):
        response = await api.client.post("/api/pitches", json=valid_pitch(title="Bad key"),
                                         headers={**headers, KEY: value})
        assert response.status == 422, value
        assert KEY in (await response.json())["error"]["fields"]
    twice = CIMultiDict(headers)
    twice.add(KEY, "one")
    twice.add(KEY, "two")
    response = await api.client.post("/api/pitches", json=valid_pitch(title="Bad key"),
                                     headers=twice)
    assert response.status == 422
    assert await count_titled(api, "Bad key") == 0
    longest = await api.client.post("/api/pitches", json=valid_pitch(title="Good key"),
                                    headers={**headers, KEY: "k" * 255})
    assert longest.status == 201


async def test_keys_are_scoped_to_the_user(api: Api) -> None:
    key = new_key()
    mine = await api.client.post("/api/pitches", json=valid_pitch(title="Scoped"),
                                 headers={**await api.headers("creator"), KEY: key})
    assert mine.status == 201
    # another creator with the same key and the same request executes it for themselves
    other_token = await api.login("creator", generated_email("creator", 1))
    theirs = await api.client.post("/api/pitches", json=valid_pitch(title="Scoped"),
                                   headers={"Authorization": f"Bearer {other_token}",
                                            KEY: key})
    assert theirs.status == 201 and "Idempotent-Replayed" not in theirs.headers
    assert (await theirs.json())["id"] != (await mine.json())["id"]
    mine_again = await api.client.post("/api/pitches", json=valid_pitch(title="Scoped"),
                                       headers={**await api.headers("creator"), KEY: key})
    assert mine_again.headers.get("Idempotent-Replayed") == "true"
    assert (await mine_again.json())["id"] == (await mine.json())["id"]
    assert await count_titled(api, "Scoped") == 2


async def test_anonymous_writes_are_scoped_to_the_client(api: Api) -> None:
    key = new_key()
    event = {"event_type": "view", "properties": {"source": "idempotency test"}}
    first = await api.client.post("/api/analytics/events", json=event, headers={KEY: key})
    assert first.status == 201, await first.text()
    again = await api.client.post("/api/analytics/events", json=event, headers={KEY: key})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await first.json())["id"]


async def test_logins_ignore_the_key_and_store_no_session_token(api: Api) -> None:
    key = new_key()
    body = {"email": "alex.creator@demo.com", "password": "Demo123"}
    tokens = []
    for _ in range(2):
        response = await api.client.post("/api/auth/creator/login", json=body,
                                         headers={KEY: key})
        assert response.status == 200 and "Idempotent-Replayed" not in response.headers
        tokens.append((await response.json())["session"]["token"])
    assert tokens[0] != tokens[1]
    assert await api.db.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE idem_key = $1", key) == 0


async def test_a_stored_outcome_expires_after_24_hours(api: Api) -> None:
    headers = {**await api.headers("creator"), KEY: new_key()}
    title = f"Expiring {uuid.uuid4().hex[:8]}"
    first = await api.client.post("/api/pitches", json=valid_pitch(title=title), headers=headers)
    assert first.status == 201
    api.clock.advance(TTL_S - 60)
    # the session would have ended by now: sign in again, same user, same scope
    api.tokens.clear()
    headers = {**await api.headers("creator"), KEY: headers[KEY]}
    replay = await api.client.post("/api/pitches", json=valid_pitch(title=title),
                                   headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    api.clock.advance(120)
    fresh = await api.client.post("/api/pitches", json=valid_pitch(title=title), headers=headers)
    assert fresh.status == 201 and "Idempotent-Replayed" not in fresh.headers
    assert await count_titled(api, title) == 2


# -- in flight: one execution, whoever races ---------------------------------------------


class Gate:
    """A write route that waits until released, counting how often it executed."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.executions = 0

    def routes(self, table: RouteTable) -> None:
        async def gated(request: web.Request) -> web.Response:
            self.executions += 1
            self.entered.set()
            await self.release.wait()
            return web.json_response({"n": self.executions}, status=201)

        table.add_post("/test/gated", gated, name="test_gated")


@pytest.fixture
async def gated_api(backend_settings: Any, backend: str) -> AsyncIterator[tuple[Api, Gate]]:
    gate = Gate()
    harness, cache = await start_api(backend_settings, backend, extra_routes=gate.routes)
    try:
        yield harness, gate
    finally:
        gate.release.set()
        await harness.client.close()
        await cache.close()


async def test_a_duplicate_while_the_first_runs_is_a_409(gated_api: tuple[Api, Gate]) -> None:
    api, gate = gated_api
    headers = {KEY: new_key()}
    first = asyncio.create_task(api.client.post("/test/gated", json={"a": 1}, headers=headers))
    await asyncio.wait_for(gate.entered.wait(), 10)
    duplicate = await api.client.post("/test/gated", json={"a": 1}, headers=headers)
    assert duplicate.status == 409
    assert (await duplicate.json())["error"]["code"] == "idempotency_key_in_use"
    assert int(duplicate.headers["Retry-After"]) >= 1
    gate.release.set()
    answered = await asyncio.wait_for(first, 10)
    assert answered.status == 201
    replay = await api.client.post("/test/gated", json={"a": 1}, headers=headers)
    assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert gate.executions == 1


async def _second_instance(api: Api, gate: Gate, stack: list[Any]) -> TestClient[Any, Any]:
    """Another process's app on the same database (a second region, or a restart)."""
    settings = api.settings
    cache = (RedisCache(settings.redis_url, prefix=f"t{uuid.uuid4().hex[:10]}:")
             if settings.redis_url else MemoryCache())
    app = create_app(settings, registry=CollectorRegistry(), cache=cache,
                     extra_routes=gate.routes)
    app[CLOCK] = api.clock
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    stack.append(cache)
    stack.append(client)
    return client


async def test_two_instances_racing_on_one_key_execute_it_once(
        gated_api: tuple[Api, Gate]) -> None:
    api, gate = gated_api
    stack: list[Any] = []
    try:
        other = await _second_instance(api, gate, stack)
        gate.release.set()
        keys = [new_key() for _ in range(10)]

        async def send(client: TestClient[Any, Any], key: str) -> int:
            response = await client.post("/test/gated", json={"k": key}, headers={KEY: key})
            await response.read()
            return response.status

        statuses = await asyncio.gather(*(send(client, key) for key in keys
                                          for client in (api.client, other, api.client)))
        assert gate.executions == len(keys), statuses
        assert set(statuses) <= {201, 409}, statuses
        # and every key is replayed by either instance now
        for key in keys:
            for client in (api.client, other):
                response = await client.post("/test/gated", json={"k": key},
                                             headers={KEY: key})
                assert response.status == 201 and response.headers["Idempotent-Replayed"]
        assert gate.executions == len(keys)
    finally:
        for item in reversed(stack):
            await item.close()


async def test_a_restarted_instance_replays_what_the_old_one_stored(
        gated_api: tuple[Api, Gate]) -> None:
    api, gate = gated_api
    gate.release.set()
    key = new_key()
    first = await api.client.post("/test/gated", json={}, headers={KEY: key})
    assert first.status == 201
    await api.client.close()  # the old process is gone
    stack: list[Any] = []
    try:
        restarted = await _second_instance(api, gate, stack)
        replay = await restarted.post("/test/gated", json={}, headers={KEY: key})
        assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert gate.executions == 1
    finally:
        for item in reversed(stack):
            await item.close()


async def _claim_of_a_dead_owner(api: Api, key: str, body: bytes, lease_until: float) -> None:
    """What a worker SIGKILLed mid-request leaves: a claim nobody renews."""
    row: tuple[Any, ...] = ("client:127.0.0.1", key, fingerprint("POST", "/test/gated", body),
                            "dead-host:1:0", lease_until, api.clock() - 10,
                            api.clock() + TTL_S)
    await api.db.execute(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, owner, lease_until, "
        "created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", *row)


async def test_a_claim_whose_owner_died_is_taken_over(gated_api: tuple[Api, Gate]) -> None:
    api, gate = gated_api
    gate.release.set()
    body = b'{"after": "a crash"}'
    json_headers = {"Content-Type": "application/json"}
    live, dead = new_key(), new_key()
    await _claim_of_a_dead_owner(api, live, body, lease_until=api.clock() + LEASE_S)
    await _claim_of_a_dead_owner(api, dead, body, lease_until=api.clock() - 0.5)
    # still renewed (as far as anyone can tell): in use
    busy = await api.client.post("/test/gated", data=body, headers={**json_headers, KEY: live})
    assert busy.status == 409 and gate.executions == 0
    # not renewed for a whole lease: its owner died; this copy executes and stores it
    taken = await api.client.post("/test/gated", data=body, headers={**json_headers, KEY: dead})
    assert taken.status == 201 and gate.executions == 1
    replay = await api.client.post("/test/gated", data=body,
                                   headers={**json_headers, KEY: dead})
    assert replay.headers["Idempotent-Replayed"] == "true" and gate.executions == 1
    api.clock.advance(LEASE_S + 1)
    now_dead = await api.client.post("/test/gated", data=body,
                                     headers={**json_headers, KEY: live})
    assert now_dead.status == 201 and gate.executions == 2


async def test_a_server_error_is_not_stored_and_a_retry_executes(
        backend_settings: Any, backend: str) -> None:
    attempts: list[int] = []

    def routes(table: RouteTable) -> None:
        async def flaky(request: web.Request) -> web.Response:
            attempts.append(1)
            status = 503 if len(attempts) == 1 else 201
            return web.json_response({"attempt": len(attempts)}, status=status)

        table.add_post("/test/flaky", flaky, name="test_flaky")

    api, cache = await start_api(backend_settings, backend, extra_routes=routes)
    try:
        key = new_key()
        first = await api.client.post("/test/flaky", json={}, headers={KEY: key})
        assert first.status == 503
        second = await api.client.post("/test/flaky", json={}, headers={KEY: key})
        assert second.status == 201 and "Idempotent-Replayed" not in second.headers
        third = await api.client.post("/test/flaky", json={}, headers={KEY: key})
        assert third.headers["Idempotent-Replayed"] == "true"
        assert len(attempts) == 2
    finally:
        await api.client.close()
        await cache.close()


def test_the_fingerprint_separates_its_parts() -> None:
    same: Callable[..., str] = fingerprint
    assert same("POST", "/a", b"bc") != same("POST", "/ab", b"c")
    assert same("POST", "/a", b"") != same("PUT", "/a", b"")
    assert same("POST", "/a?x=1", b"{}") == same("POST", "/a?x=1", b"{}")
