"""Regional workers in one process on one real SQLite file: the read/write split, the
cache tiers shared across regions, the write probe and the write latency to the primary,
the latency model and its fault injection, request coalescing of cache misses, and the
Cache-Control the HAProxy edge's cache relies on."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from pitchey.geo.generations import SharedGenerations
from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import GeoConfig
from pitchey.geo.replica import HEARTBEAT_TABLE
from pitchey.geo.worker import SPLIT_DATABASE, create_worker_app, worker_settings
from pitchey.settings import Settings

PITCH = {
    "title": "Read your own write",
    "logline": "A write lands in one region and is read back in another one.",
    "synopsis": "Two regional workers share one database and their caches agree on what "
                "changed, so nobody reads their own write stale.",
    "genre": "Drama",
    "budget_range": "low",
    "status": "published",
}

Start = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings(sqlite_path=str(tmp_path / "geo.db"), rate_limit_per_minute=0,
                    argon2_time_cost=1, argon2_memory_kib=8)

    async def seed() -> None:
        from pitchey.seed import seed_demo
        from pitchey.storage.factory import open_database

        database = await open_database(base, None)
        try:
            await database.migrate()
            await seed_demo(database, base, users=3, pitches=12, seed=1)
        finally:
            await database.close()

    asyncio.run(seed())
    return base


@pytest.fixture
async def start_worker(settings: Settings, tmp_path: Path) -> Any:
    clients: list[TestClient[Any, Any]] = []
    generations = SharedGenerations.create(tmp_path / "generations")

    async def start(region: str, config: GeoConfig | None = None,
                    registry: CollectorRegistry | None = None,
                    probe_interval_s: float | None = None) -> TestClient[Any, Any]:
        config = config or dataclasses.replace(
            GeoConfig(), latency=dataclasses.replace(GeoConfig().latency, enabled=False))
        app = create_worker_app(worker_settings(settings, config, region), config, region,
                                registry=registry or CollectorRegistry(),
                                generations=generations, probe_interval_s=probe_interval_s)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    generations.close()


async def login(client: TestClient[Any, Any]) -> dict[str, str]:
    response = await client.post("/api/auth/creator/login",
                                 json={"email": "alex.creator@demo.com", "password": "Demo123"})
    assert response.status == 200, await response.text()
    token = (await response.json())["session"]["token"]
    client.session.cookie_jar.clear()
    return {"Cookie": f"pitchey_session={token}"}


async def test_worker_tells_the_edge_who_answered(start_worker: Start) -> None:
    client = await start_worker("europe")
    response = await client.get("/api/pitches?per_page=2")
    assert response.status == 200
    assert response.headers["X-Pitchey-Served-By"] == "europe"
    assert response.headers["X-Pitchey-Worker-Pid"].isdigit()
    assert response.headers["X-Pitchey-Route"] == "/api/pitches"
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert missing.headers["X-Pitchey-Route"] == "unmatched"


async def test_a_write_in_one_region_is_read_back_in_another_at_once(start_worker: Start) -> None:
    us_east = await start_worker("us-east")
    europe = await start_worker("europe")
    session = await login(us_east)
    before = await (await europe.get("/api/pitches?per_page=50")).json()  # fills europe's tiers
    again = await (await europe.get("/api/pitches?per_page=50")).json()
    assert again == before
    created = await us_east.post("/api/pitches", json=PITCH, headers=session)
    assert created.status == 201, await created.text()
    pitch_id = (await created.json())["id"]
    after = await (await europe.get("/api/pitches?per_page=50")).json()
    assert pitch_id in [item["id"] for item in after["items"]]
    detail = await europe.get(f"/api/pitches/{pitch_id}")
    assert (await detail.json())["title"] == PITCH["title"]
    renamed = await us_east.put(f"/api/pitches/{pitch_id}", json={**PITCH, "title": "Renamed"},
                                headers=session)
    assert renamed.status == 200, await renamed.text()
    assert (await (await europe.get(f"/api/pitches/{pitch_id}")).json())["title"] == "Renamed"


async def test_logout_in_one_region_ends_the_session_everywhere(start_worker: Start) -> None:
    us_east = await start_worker("us-east")
    asia = await start_worker("asia")
    session = await login(us_east)
    assert (await asia.get("/api/auth/me", headers=session)).status == 200  # now cached in asia
    assert (await us_east.post("/api/auth/logout", headers=session)).status in (200, 204)
    assert (await asia.get("/api/auth/me", headers=session)).status == 401


async def test_query_cache_serves_repeated_reads_and_forgets_them_on_writes(
    start_worker: Start,
) -> None:
    registry = CollectorRegistry()
    client = await start_worker("us-west", registry=registry)
    database = client.server.app[SPLIT_DATABASE]
    sql = "SELECT count(*) AS n FROM pitches"
    first = await database.fetchval(sql)
    hits_before = registry.get_sample_value("pitchey_cache_hits_total", {"cache": "query"})
    assert await database.fetchval(sql) == first
    assert registry.get_sample_value("pitchey_cache_hits_total",
                                     {"cache": "query"}) == (hits_before or 0) + 1
    session = await login(client)
    assert (await client.post("/api/pitches", json=PITCH, headers=session)).status == 201
    assert await database.fetchval(sql) == first + 1


async def test_a_delete_invalidates_the_tables_that_cascade_from_it(
    start_worker: Start, settings: Settings,
) -> None:
    client = await start_worker("us-east")
    database = client.server.app[SPLIT_DATABASE]
    count_sessions = "SELECT count(*) AS n FROM sessions"
    await login(client)
    sessions = await database.fetchval(count_sessions)
    assert sessions >= 1
    await database.execute("DELETE FROM users WHERE email = $1", "alex.creator@demo.com")
    assert await database.fetchval(count_sessions) == sessions - 1  # ON DELETE CASCADE


async def test_health_db_writes_a_heartbeat_through_the_primary(
    start_worker: Start, settings: Settings,
) -> None:
    client = await start_worker("asia")
    response = await client.get("/health/db")
    assert response.status == 200, await response.text()
    with sqlite3.connect(settings.sqlite_path) as db:
        rows = db.execute(f"SELECT region FROM {HEARTBEAT_TABLE}").fetchall()
    assert ("asia",) in rows


async def test_the_replica_view_is_read_only(start_worker: Start) -> None:
    client = await start_worker("europe")
    replica = client.server.app[SPLIT_DATABASE].replica
    assert await replica.fetchval("SELECT count(*) FROM users") > 0
    with pytest.raises(Exception, match="(?i)read.?only|readonly"):
        await replica.execute("DELETE FROM users")


async def test_writes_from_far_regions_pay_the_round_trip_to_the_primary(
    start_worker: Start,
) -> None:
    config = GeoConfig()  # latency model on
    model = LatencyModel(config.latency)
    # server to server: the backbone transit both ways, no client access leg
    backbone = model.backbone_round_trip_s("europe", "us-east")
    assert backbone == pytest.approx(
        2 * (model.one_way_s("europe", "us-east") - model.one_way_s("europe", "europe")
             - model.one_way_s("us-east", "us-east")))
    assert backbone > 0.02 and model.backbone_round_trip_s("us-east", "us-east") == 0.0
    us_east = await start_worker("us-east", config)
    europe = await start_worker("europe", config)
    session = await login(us_east)

    async def timed_write(client: TestClient[Any, Any]) -> float:
        started = time.perf_counter()
        response = await client.post("/api/pitches", json=PITCH, headers=session)
        assert response.status == 201
        return time.perf_counter() - started

    assert await timed_write(europe) >= backbone
    # the primary's own region pays no modelled delay for its writes
    near = min([await timed_write(us_east) for _ in range(3)])
    assert near < backbone


# -- the latency model and its fault injection ---------------------------------------------


def latency_on() -> GeoConfig:
    return GeoConfig()  # the seed's model, enabled


async def timed_get(client: TestClient[Any, Any], path: str,
                    headers: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    await response.read()
    return time.monotonic() - started


async def test_a_request_pays_the_round_trip_from_the_region_it_names(
    start_worker: Start,
) -> None:
    config = latency_on()
    client = await start_worker("us-east", config)
    model = LatencyModel(config.latency)
    round_trip = model.one_way_s("asia", "us-east") + model.one_way_s("us-east", "asia")
    assert round_trip > 0.1
    for region in ("asia", "NRT", "nrt", "Asia"):  # a region or a colo code, any case
        elapsed = await timed_get(client, "/api/pitches?per_page=2",
                                  {"X-Pitchey-Region": region})
        assert round_trip <= elapsed < round_trip + 1.0, region
    own = model.one_way_s("us-east", "us-east") * 2
    assert own <= await timed_get(client, "/health", {"X-Pitchey-Region": "IAD"}) < round_trip


async def test_a_request_without_a_known_region_pays_nothing(start_worker: Start) -> None:
    config = latency_on()
    client = await start_worker("us-east", config)
    from_asia = LatencyModel(config.latency).round_trip_s("asia", "us-east")
    await timed_get(client, "/api/pitches?per_page=2")  # fills the caches
    assert await timed_get(client, "/api/pitches?per_page=2") < from_asia
    assert await timed_get(client, "/health", {"X-Pitchey-Region": "atlantis"}) < from_asia


async def test_an_injected_delay_slows_every_answer_even_with_the_model_off(
    start_worker: Start,
) -> None:
    registry = CollectorRegistry()
    client = await start_worker("europe", registry=registry)  # latency model off
    assert await timed_get(client, "/health") < 0.15
    response = await client.put("/_geo/latency", json={"extra_ms": 150})
    assert response.status == 200, await response.text()
    assert (await response.json())["extra_ms"] == 150
    shown = await client.get("/_geo/latency")
    body = await shown.json()
    assert (body["region"], body["model_enabled"], body["extra_ms"]) == ("europe", False, 150)
    assert shown.headers["X-Pitchey-Route"] == "/_geo/latency"
    assert registry.get_sample_value("pitchey_region_injected_delay_seconds",
                                     {"region": "europe"}) == 0.15
    assert 0.15 <= await timed_get(client, "/health") < 1.15  # what HAProxy's checks see
    assert 0.15 <= await timed_get(client, "/api/pitches?per_page=1") < 1.15
    # the control route itself is not held up by the fault it controls
    started = time.monotonic()
    restored = await client.put("/_geo/latency", json={"extra_ms": 0})
    assert restored.status == 200 and time.monotonic() - started < 0.15
    assert await timed_get(client, "/health") < 0.15
    # a real route: counted under its own template, not as "unmatched"
    assert registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_route": "/_geo/latency", "http_request_method": "PUT",
         "http_response_status_code": "200"}) == 2


async def test_fault_injection_is_refused_through_the_edge(start_worker: Start) -> None:
    client = await start_worker("asia")
    response = await client.put("/_geo/latency", json={"extra_ms": 500},
                                headers={"X-Forwarded-For": "127.0.0.1"})
    assert response.status == 403
    error = (await response.json())["error"]
    assert (error["status"], error["code"]) == (403, "forbidden")
    assert (await (await client.get("/_geo/latency")).json())["extra_ms"] == 0


@pytest.mark.parametrize("body", [{"extra_ms": -1}, {"extra_ms": "slow"}, {"extra_ms": True},
                                  {"extra_ms": None}, {"delay": 5}])
async def test_fault_injection_names_a_bad_field(start_worker: Start,
                                                 body: dict[str, Any]) -> None:
    client = await start_worker("asia")
    response = await client.put("/_geo/latency", json=body)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["status"] == 422 and "extra_ms" in error["fields"]
    assert (await (await client.get("/_geo/latency")).json())["extra_ms"] == 0


# -- request coalescing --------------------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    return registry.get_sample_value(name, labels or {}) or 0.0


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_concurrent_identical_misses_cost_one_storage_load(start_worker: Start) -> None:
    registry = CollectorRegistry()
    # no probe after the first, so every statement counted below is the test's own
    client = await start_worker("us-west", registry=registry, probe_interval_s=3600)
    await until(lambda: sample(registry, "pitchey_storage_capacity_bytes") > 0)
    selects = {"operation": "select"}
    app_cache = {"cache": "app"}
    before = {
        "selects": sample(registry, "pitchey_db_queries_total", selects),
        "lookups": sample(registry, "pitchey_cache_lookups_total", app_cache),
        "hits": sample(registry, "pitchey_cache_hits_total", app_cache),
        "joined": sample(registry, "pitchey_coalesced_requests_total"),
    }

    async def get() -> bytes:
        response = await client.get("/api/pitches?per_page=7&sort=newest")
        assert response.status == 200, await response.text()
        return await response.read()

    bodies = await asyncio.gather(*(get() for _ in range(20)))
    assert len(set(bodies)) == 1
    selects_run = sample(registry, "pitchey_db_queries_total", selects) - before["selects"]
    assert selects_run == 2  # one page query and one count, for all twenty requests
    lookups = sample(registry, "pitchey_cache_lookups_total", app_cache) - before["lookups"]
    hits = sample(registry, "pitchey_cache_hits_total", app_cache) - before["hits"]
    joined = sample(registry, "pitchey_coalesced_requests_total") - before["joined"]
    assert lookups == 20
    assert joined == lookups - hits - 1  # every miss but the one that loaded joined it
    assert joined >= 1
    await get()  # now cached: no statement at all
    assert sample(registry, "pitchey_db_queries_total", selects) - before["selects"] == 2


# -- Cache-Control for the edge's cache ----------------------------------------------------


async def test_anonymous_reads_of_edge_paths_are_publicly_cacheable(
    start_worker: Start, settings: Settings,
) -> None:
    client = await start_worker("europe")
    listing = await client.get("/api/pitches?per_page=2",
                               headers={"Origin": settings.frontend_origin})
    assert listing.status == 200
    assert listing.headers["Cache-Control"] == "public, max-age=300"
    assert listing.headers["Vary"] == "Origin"
    pitch_id = (await listing.json())["items"][0]["id"]
    detail = await client.get(f"/api/pitches/{pitch_id}", headers={"Cookie": "theme=dark"})
    assert detail.headers["Cache-Control"] == "public, max-age=300"
    # without an Origin too: a shared cache must not hand this answer to a CORS request
    assert detail.headers["Vary"] == "Origin"
    missing = await client.get("/api/pitches/999999")
    assert missing.status == 404 and "Cache-Control" not in missing.headers
    health = await client.get("/health")
    assert "Cache-Control" not in health.headers  # not an edge path


async def test_no_public_expiry_when_the_edge_tier_is_off(start_worker: Start) -> None:
    base = GeoConfig()
    config = dataclasses.replace(
        base, latency=dataclasses.replace(base.latency, enabled=False),
        cache=dataclasses.replace(base.cache, edge_ttl_s=0))
    client = await start_worker("europe", config)
    response = await client.get("/api/pitches?per_page=2")
    assert response.status == 200 and "Cache-Control" not in response.headers


async def test_answers_touching_credentials_are_private(start_worker: Start) -> None:
    client = await start_worker("us-east")
    signed_in = await client.post("/api/auth/creator/login",
                                  json={"email": "alex.creator@demo.com", "password": "Demo123"})
    assert signed_in.status == 200
    assert "pitchey_session" in signed_in.cookies  # the answer sets a cookie
    assert signed_in.headers["Cache-Control"] == "private, no-store"
    token = (await signed_in.json())["session"]["token"]
    client.session.cookie_jar.clear()
    for headers in ({"Cookie": f"theme=dark; pitchey_session={token}"},
                    {"Authorization": f"Bearer {token}"}):
        listing = await client.get("/api/pitches?per_page=2", headers=headers)
        assert listing.status == 200
        assert listing.headers["Cache-Control"] == "private, no-store", headers
        me = await client.get("/api/auth/me", headers=headers)
        assert me.status == 200
        assert me.headers["Cache-Control"] == "private, no-store", headers
    # the edge still learns who answered
    assert listing.headers["X-Pitchey-Served-By"] == "us-east"
    assert listing.headers["X-Pitchey-Route"] == "/api/pitches"
