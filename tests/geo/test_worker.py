"""Regional workers in one process on one real SQLite file: the read/write split, the
cache tiers shared across regions, the write probe and the write latency to the primary."""

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
                    registry: CollectorRegistry | None = None) -> TestClient[Any, Any]:
        config = config or dataclasses.replace(
            GeoConfig(), latency=dataclasses.replace(GeoConfig().latency, enabled=False))
        app = create_worker_app(worker_settings(settings, config, region), config, region,
                                registry=registry or CollectorRegistry(),
                                generations=generations)
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
    config = GeoConfig()  # latency model on: europe -> us-east is 2 x 61.5 ms
    us_east = await start_worker("us-east", config)
    europe = await start_worker("europe", config)
    session = await login(us_east)

    async def timed_write(client: TestClient[Any, Any]) -> float:
        started = time.perf_counter()
        response = await client.post("/api/pitches", json=PITCH, headers=session)
        assert response.status == 201
        return time.perf_counter() - started

    assert await timed_write(europe) >= 0.123
    near = min([await timed_write(us_east) for _ in range(3)])
    assert near < 0.123
