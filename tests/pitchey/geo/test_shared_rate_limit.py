"""The per-client rate limit across instances (issue 13: without Redis every worker counted on
its own, so rotating X-Pitchey-Region gave 400 requests a minute instead of 100).

- Each instance's /status says which counter applies: Redis (shared by every instance) or
  this process only.
- Two instances on one Redis share one counter: the limit holds for the pair, not each.
- Through the geo edge, rotating X-Pitchey-Region over the four regions cannot exceed the
  limit: HAProxy's stick table counts every request before any region sees it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from pitchey.app import create_app
from pitchey.cache import MemoryCache
from pitchey.settings import Settings

from .topology import Topology, topology

LIMIT = 10
REGIONS = ("us-east", "us-west", "europe", "asia")


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"sqlite_path": str(tmp_path / "pitchey.db"),
                            "rate_limit_per_minute": LIMIT, "argon2_time_cost": 1,
                            "argon2_memory_kib": 8}
    base.update(overrides)
    return Settings(**base)


@contextlib.asynccontextmanager
async def _clients(settings: Settings, count: int) -> AsyncIterator[list[TestClient[Any, Any]]]:
    clients: list[TestClient[Any, Any]] = []
    try:
        for _ in range(count):
            app = create_app(settings, registry=CollectorRegistry(), cache=MemoryCache())
            client: TestClient[Any, Any] = TestClient(TestServer(app))
            await client.start_server()
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            await client.close()


async def _status_rate_limit(client: TestClient[Any, Any]) -> dict[str, Any]:
    response = await client.get("/status")  # from loopback: allowed without a token
    assert response.status == 200, await response.text()
    body: dict[str, Any] = (await response.json())["rate_limit"]
    return body


async def test_status_says_the_limit_is_this_process_only_without_redis(tmp_path: Path) -> None:
    async with _clients(_settings(tmp_path), 1) as (client,):
        assert await _status_rate_limit(client) == {
            "per_minute": LIMIT, "scope": "this process only", "client": "peer address"}
    async with _clients(_settings(tmp_path, rate_limit_per_minute=0), 1) as (client,):
        assert (await _status_rate_limit(client))["scope"] == "off"


@pytest.mark.redis
async def test_two_instances_on_one_redis_share_one_limit(tmp_path: Path,
                                                          redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url=redis_url, trust_forwarded_for=True)
    async with _clients(settings, 2) as clients:
        for client in clients:
            assert await _status_rate_limit(client) == {
                "per_minute": LIMIT, "scope": "redis (shared by every instance)",
                "client": "right-most X-Forwarded-For entry"}
        for _attempt in range(2):  # a burst that straddles a minute boundary is run again
            window = int(time.time() // 60)
            # a client address of this attempt's own, as the edge would append it
            address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
            statuses = []
            for n in range(3 * LIMIT):
                response = await clients[n % 2].get(
                    f"/api/pitches?n={n}", headers={"X-Forwarded-For": address})
                await response.read()
                statuses.append(response.status)
            if int(time.time() // 60) == window:
                break
        print(f"{3 * LIMIT} requests over two instances: {statuses.count(200)} x 200")
        assert statuses.count(200) == LIMIT, statuses  # not 2 x LIMIT
        assert statuses[LIMIT:] == [429] * (2 * LIMIT), statuses


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A geo topology rate limited to LIMIT requests per minute per client, no Redis."""
    tmp = tmp_path_factory.mktemp("geo-shared-limit")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db"),
                        "PITCHEY_RATE_LIMIT_PER_MINUTE": str(LIMIT),
                        "REDIS_URL": ""}) as running:  # no Redis: the edge alone shares it
        yield running


@pytest.mark.integration
async def test_rotating_the_region_through_the_edge_cannot_exceed_the_limit(
        limited: Topology) -> None:
    edge_status = await limited.status()
    assert edge_status["rate_limit"]["scope"].startswith("edge (HAProxy stick table")
    statuses: list[int] = []
    served: set[str] = set()
    async with aiohttp.ClientSession() as session:
        for n in range(len(REGIONS) * LIMIT):
            region = REGIONS[n % len(REGIONS)]
            async with session.get(f"{limited.edge}/api/pitches?per_page=1&n={n}",
                                   headers={"X-Pitchey-Region": region}) as response:
                await response.read()
                statuses.append(response.status)
                if response.status == 200:
                    served.add(response.headers.get("X-Pitchey-Served-By", "?"))
        # each worker still limits on its own behind the edge; say so
        worker = (await limited.region("asia"))["url"]
        async with session.get(f"{worker}/status") as response:
            worker_limit = (await response.json())["rate_limit"]
    print(f"{len(statuses)} requests rotating {REGIONS}: {statuses.count(200)} x 200, "
          f"served by {sorted(served)}")
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) == LIMIT, statuses  # not LIMIT per region
    assert len(served) == len(REGIONS), served  # the rotation did reach every region
    assert worker_limit == {"per_minute": LIMIT, "scope": "this process only",
                            "client": "right-most X-Forwarded-For entry"}
