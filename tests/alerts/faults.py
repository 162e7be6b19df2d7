"""The real Pitchey service (the lead's create_app) with a switchable storage outage.

`FaultyDatabase` wraps the service's own SQLite database and, while `broken` is set, fails
every call the way an unreachable database does (StorageUnavailable): handlers answer 503 and
the health probe turns pitchey_db_up to 0. That is the induced error spike the alert tests and
the benchmark need, on the service's real routes, middleware and metric names.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from pitchey import keys
from pitchey.app import create_app
from pitchey.errors import StorageUnavailable
from pitchey.settings import Settings

__all__ = ["FaultyDatabase", "Service", "running_service"]

_FAILING = ("fetch", "fetchrow", "fetchval", "execute", "executemany", "ping",
            "storage_usage")


class FaultyDatabase:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name in _FAILING:
            async def call(*args: Any, **kwargs: Any) -> Any:
                if self.broken:
                    raise StorageUnavailable("induced outage (test fault)")
                return await attribute(*args, **kwargs)
            return call
        if name == "transaction" and self.broken:
            raise StorageUnavailable("induced outage (test fault)")
        return attribute


@dataclass
class Service:
    url: str
    database: FaultyDatabase
    registry: CollectorRegistry

    def url_of(self, path: str) -> str:
        return self.url.rstrip("/") + path


@asynccontextmanager
async def running_service(port: int = 0, probe_interval_s: float = 0.25,
                          workdir: Path | None = None) -> AsyncIterator[Service]:
    directory = workdir or Path(tempfile.mkdtemp(prefix="pitchey-alerts-svc-"))
    settings = Settings(sqlite_path=str(directory / "pitchey.db"), rate_limit_per_minute=0)
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry, probe_interval_s=probe_interval_s)
    holder: dict[str, FaultyDatabase] = {}

    async def wrap(app: web.Application) -> AsyncIterator[None]:
        holder["db"] = FaultyDatabase(app[keys.DATABASE])
        app[keys.DATABASE] = holder["db"]  # type: ignore[assignment]
        yield

    app.cleanup_ctx.append(wrap)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Service(str(server.make_url("/")), holder["db"], registry)
    finally:
        await server.close()


async def traffic(session: Any, service: Service, seconds: float, rps: float,
                  stop: Callable[[], bool] = lambda: False) -> int:
    """GET distinct pitch-list pages (cache misses, so storage is hit) at about `rps`."""
    sent, page = 0, 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end and not stop():
        page += 1
        async with session.get(service.url_of(f"/api/pitches?page={page}")) as response:
            await response.read()
        sent += 1
        await asyncio.sleep(1 / rps)
    return sent
