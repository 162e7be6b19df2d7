"""Fixtures for the geo tests: stand-in regional workers (real aiohttp servers whose answers
a test controls) and an edge in front of them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from pitchey.geo.edge import EdgeServer
from pitchey.geo.regions import GeoConfig, HealthConfig


@dataclass
class StubRegion:
    """A region's worker as the edge sees it: health endpoints and a few API routes."""

    name: str
    calls: Counter[str] = field(default_factory=Counter)
    health_status: dict[str, int] = field(default_factory=dict)
    api_status: int = 200
    delay_s: float = 0.0
    drop: bool = False
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.calls[f"{request.method} {path}"] += 1
        headers = {"X-Pitchey-Worker-Pid": str(os.getpid()), "X-Pitchey-Route": path}
        if path.startswith("/health"):
            return web.json_response({"status": "ok"}, headers=headers,
                                     status=self.health_status.get(path, 200))
        if path == "/drop" and self.drop:
            assert request.transport is not None
            request.transport.close()  # the worker dies before answering
            await asyncio.sleep(1)
        if path == "/cookie":
            response = web.json_response({"region": self.name}, headers=headers)
            response.set_cookie("tracking", "secret")
            return response
        if self.delay_s or path == "/slow":
            await asyncio.sleep(self.delay_s or 2.0)
        body = {"region": self.name, "method": request.method, "path": path,
                "forwarded_for": request.headers.get("X-Forwarded-For"),
                "region_header": request.headers.get("X-Pitchey-Region")}
        status = self.api_status if request.method == "GET" else (
            201 if self.api_status == 200 else self.api_status)
        return web.json_response(body, status=status, headers=headers)


def refused_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def geo_test_config(**changes: Any) -> GeoConfig:
    """Seed regions, fast health checks, latency model off."""
    base = GeoConfig()
    config = dataclasses.replace(
        base,
        health=HealthConfig(interval_s=0.05, timeout_s=0.5, retries=0),
        latency=dataclasses.replace(base.latency, enabled=False),
    )
    return dataclasses.replace(config, **changes)


class EdgeClient:
    """Requests to a running edge by path, like aiohttp's TestClient (no cookie jar)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.get(self.base + path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.post(self.base + path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.put(self.base + path, **kwargs)


@pytest.fixture
async def edge() -> Any:
    """start(config=..., dead=("asia",), health_checks=False) -> (client, stubs): a real
    EdgeServer on a free port in front of stand-in regions."""
    servers: list[TestServer] = []
    edges: list[EdgeServer] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(config: GeoConfig | None = None, dead: tuple[str, ...] = (),
                    health_checks: bool = False,
                    registry: CollectorRegistry | None = None,
                    ) -> tuple[EdgeClient, dict[str, StubRegion]]:
        config = config or geo_test_config()
        stubs: dict[str, StubRegion] = {}
        upstreams: dict[str, str] = {}
        for name in config.names:
            stub = StubRegion(name)
            stubs[name] = stub
            if name in dead:
                upstreams[name] = refused_url()
                continue
            server = TestServer(stub.app())
            await server.start_server()
            servers.append(server)
            stub.url = str(server.make_url("")).rstrip("/")
            upstreams[name] = stub.url
        edge_server = EdgeServer(config, upstreams, registry=registry or CollectorRegistry(),
                                 health_checks=health_checks)
        await edge_server.start()
        edges.append(edge_server)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        sessions.append(session)
        return EdgeClient(session, edge_server.url), stubs

    yield start
    for session in sessions:
        await session.close()
    for edge_server in edges:
        await edge_server.close()
    for server in servers:
        await server.close()
