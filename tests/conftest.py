"""Shared fixtures: real PostgreSQL and Redis when this machine has them.

Outside CI a missing server skips the test with the reason printed; under CI=true a missing
server fails it, because CI machines of this kind always run both.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_ADMIN_DSN = os.environ.get(
    "PITCHEY_TEST_PG_ADMIN_DSN", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(f"{message}; skipped outside CI")


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A DSN to a fresh, empty PostgreSQL database, dropped after the module."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis URL on a database number of its own, flushed before and after the module."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    number = 1 + (uuid.uuid4().int % 15)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
