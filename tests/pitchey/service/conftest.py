from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from pitchey.app import create_app
from pitchey.settings import Settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "sqlite_path": str(tmp_path / "pitchey.db"),
            "rate_limit_per_minute": 0,
            "argon2_time_cost": 1,
            "argon2_memory_kib": 8,
        }
        base.update(overrides)
        return Settings(**base)

    return build


@pytest.fixture
async def service(
    aiohttp_client: ClientFactory, make_settings: Callable[..., Settings]
) -> Callable[..., Awaitable[tuple[TestClient[Any, Any], web.Application]]]:
    async def start(**overrides: Any) -> tuple[TestClient[Any, Any], web.Application]:
        registry = overrides.pop("registry", None) or CollectorRegistry()
        exporter = overrides.pop("span_exporter", None)
        app = create_app(make_settings(**overrides), registry=registry, span_exporter=exporter)
        client = await aiohttp_client(app)
        return client, app

    return start
