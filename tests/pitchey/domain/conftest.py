"""Fixtures for the domain tests: the real app from `create_app`, over either SQLite with the
in-process cache or PostgreSQL with Redis, seeded with the demo accounts.

Every API test that takes `api` runs once per backend pair. PostgreSQL gets one fresh
database per module (the shared `pg_dsn` fixture) and is truncated before each test; Redis
gets a key prefix of its own per test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from pitchey import keys
from pitchey.api import CLOCK
from pitchey.app import create_app
from pitchey.cache import Cache, MemoryCache, RedisCache
from pitchey.seed import seed_demo
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey.storage.factory import open_database

BACKENDS = ("sqlite-memory", "postgresql-redis")
# parents first; emptied in reverse
TABLES = ("users", "sessions", "pitches", "info_requests", "messages", "notifications",
          "analytics_events", "investments")
DEMO = {
    "creator": "alex.creator@demo.com",
    "investor": "sarah.investor@demo.com",
    "production": "stellar.production@demo.com",
}
PASSWORD = "Demo123"


@dataclass
class FakeClock:
    """The app's clock (`app[CLOCK]`): tests move time instead of sleeping."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def valid_pitch(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Night Shift",
        "logline": "A nurse finds the hospital's night staff were never hired.",
        "synopsis": "When Maya takes the night shift at a small hospital, she notices that "
                    "her colleagues leave no trace in any record.",
        "genre": "Thriller",
        "budget_range": "low",
    }
    body.update(overrides)
    return body


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "sqlite_path": str(tmp_path / "pitchey.db"),
        "rate_limit_per_minute": 0,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8,
    }
    base.update(overrides)
    return Settings(**base)


async def truncate_all(db: Database) -> None:
    """Empty every table (DELETE: on tables this small it is far quicker than TRUNCATE)."""
    for table in reversed(TABLES):
        await db.execute(f"DELETE FROM {table}")


@dataclass
class Api:
    """The running app plus helpers to sign in as the demo users."""

    client: TestClient[Any, Any]
    app: web.Application
    settings: Settings
    registry: CollectorRegistry
    clock: FakeClock
    backend: str
    tokens: dict[str, str] = field(default_factory=dict)

    async def login(self, portal: str, email: str | None = None, password: str = PASSWORD) -> str:
        response = await self.client.post(
            f"/api/auth/{portal}/login", json={"email": email or DEMO[portal], "password": password}
        )
        assert response.status == 200, await response.text()
        token = str((await response.json())["session"]["token"])
        # requests stay anonymous unless a test passes the token: forget the cookie
        self.client.session.cookie_jar.clear()
        return token

    async def headers(self, portal: str) -> dict[str, str]:
        if portal not in self.tokens:
            self.tokens[portal] = await self.login(portal)
        return {"Authorization": f"Bearer {self.tokens[portal]}"}

    @property
    def db(self) -> Database:
        return self.app[keys.DATABASE]

    @property
    def cache(self) -> Cache:
        return self.app[keys.CACHE]

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(params=[
    BACKENDS[0],
    pytest.param(BACKENDS[1], marks=[pytest.mark.postgres, pytest.mark.redis]),
])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Settings]:
    if backend == "postgresql-redis":
        dsn = request.getfixturevalue("pg_dsn")
        redis_url = request.getfixturevalue("redis_url")
        yield fast_settings(tmp_path, database_url=dsn, redis_url=redis_url)
    else:
        yield fast_settings(tmp_path)


async def _prepare(settings: Settings, users: int, pitches: int) -> None:
    db = await open_database(settings, None)
    try:
        await db.migrate()
        await truncate_all(db)
        await seed_demo(db, settings, users=users, pitches=pitches, seed=7)
    finally:
        await db.close()


async def start_api(
    settings: Settings, backend: str, *, users: int = 6, pitches: int = 12, **app_kwargs: Any
) -> tuple[Api, Cache]:
    await _prepare(settings, users, pitches)
    cache: Cache = (
        RedisCache(settings.redis_url, prefix=f"t{uuid.uuid4().hex[:10]}:")
        if settings.redis_url else MemoryCache()
    )
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, cache=cache, **app_kwargs)
    clock = FakeClock()
    app[CLOCK] = clock
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return Api(client, app, settings, registry, clock, backend), cache


@pytest.fixture
async def api(backend_settings: Settings, backend: str) -> AsyncIterator[Api]:
    harness, cache = await start_api(backend_settings, backend)
    try:
        yield harness
    finally:
        await harness.client.close()
        await cache.close()
