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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gate.realruns import Result

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


# --- real runs and a real browser, shared by the gate, dashboard and integration tests --------


@dataclass
class SmokeGate:
    """A real `pitchey run ... --gate` with its outputs: console result, run directory, and the
    JUnit, JSON and Markdown files the gate wrote."""

    result: Result
    run_dir: Path
    junit: Path
    json: Path
    markdown: Path


SMOKE_DURATION_S = "15"


def gated_run(root: Path, scenario: str, *extra: str, timeout_s: float = 240.0) -> SmokeGate:
    """`pitchey run SCENARIO --gate` with every gate output, into `root`."""
    from tests.gate.realruns import pitchey, require_pitchey_run, run_dirs

    require_pitchey_run()
    outputs = SmokeGate(Result(-1, "", ""), root, root / "gate/junit.xml",
                        root / "gate/gate.json", root / "gate/summary.md")
    outputs.result = pitchey(["run", scenario, *extra, "--out", str(root / "runs"), "--gate",
                              "--junit", str(outputs.junit), "--json", str(outputs.json),
                              "--markdown", str(outputs.markdown)], timeout_s=timeout_s)
    dirs = run_dirs(root / "runs")
    assert len(dirs) == 1, outputs.result.text
    outputs.run_dir = dirs[0]
    return outputs


@pytest.fixture(scope="session")
def smoke_gate(tmp_path_factory: pytest.TempPathFactory) -> SmokeGate:
    """`pitchey run smoke --gate` against the embedded service, once per session."""
    return gated_run(tmp_path_factory.mktemp("smoke"), "smoke",
                     "--duration", SMOKE_DURATION_S)


def require_browser() -> None:
    missing = [p for p in ("/usr/bin/chromium", "/usr/bin/chromedriver") if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    message = f"{', '.join(missing)} not installed"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(f"{message}; skipped outside CI")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    from dashboards.browser import chromium

    with chromium() as driver:
        yield driver
