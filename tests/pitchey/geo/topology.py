"""A running geo topology for the tests: the supervisor with HAProxy as the edge, the status
agent and four regional workers, each a real OS process, on a seeded SQLite file (or
PostgreSQL through DATABASE_URL), stopped after the test."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from pitchey.settings import Settings

__all__ = ["Topology", "topology", "REGIONS_YAML", "HEALTH_INTERVAL_S", "eventually"]

HEALTH_INTERVAL_S = 0.2
REGIONS_YAML = f"""
health: {{interval_s: {HEALTH_INTERVAL_S}, timeout_s: 0.5, retries: 1}}
breaker: {{volume_threshold: 20, sleep_window_s: 1, success_threshold: 5}}
timeouts: {{server_s: 5, connect_s: 0.1, queue_s: 2}}
latency: {{enabled: false}}
supervisor: {{restart_delay_s: 60, start_timeout_s: 90}}
"""


async def eventually(check: Any, timeout_s: float, what: str) -> float:
    """Poll `check()` until it is true; returns how long that took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@dataclass
class Topology:
    process: subprocess.Popen[bytes]
    edge: str
    env: dict[str, str]
    log: Path

    async def status(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.edge}/status") as r:
            body: dict[str, Any] = await r.json()
            return body

    async def region(self, name: str) -> dict[str, Any]:
        return next(r for r in (await self.status())["regions"] if r["name"] == name)


def _seed(settings: Settings) -> None:
    async def run() -> None:
        from pitchey.seed import seed_demo
        from pitchey.storage.factory import open_database

        database = await open_database(settings, None)
        try:
            await database.migrate()
            await seed_demo(database, settings, users=3, pitches=12, seed=3)
        finally:
            await database.close()

    # in a thread of its own: the async tests call this with their event loop running
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def topology(tmp: Path, env_overrides: dict[str, str],
             regions_yaml: str = REGIONS_YAML) -> Iterator[Topology]:
    """`python -m pitchey.geo.supervisor --port 0` (HAProxy, the status agent and four
    workers) with fast health checks, on a seeded database; every process stopped after."""
    regions = tmp / "regions.yaml"
    regions.write_text(regions_yaml)
    env = {**os.environ, "PITCHEY_RATE_LIMIT_PER_MINUTE": "0", "PITCHEY_ARGON2_TIME_COST": "1",
           "PITCHEY_ARGON2_MEMORY_KIB": "8", "PITCHEY_DB_POOL_SIZE": "4", **env_overrides}
    env.pop("DATABASE_URL", None) if "DATABASE_URL" not in env_overrides else None
    _seed(Settings.from_environ(env))
    log = tmp / "topology.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "pitchey.geo.supervisor", "--port", "0",
             "--regions", str(regions)], stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        edge = _wait_for_edge(process, log)
        running = Topology(process, edge, env, log)
        _wait_for_pids(running)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_edge(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 120
    pattern = re.compile(r"pitchey: listening on (http://\S+) \(edge\)")
    while time.monotonic() < deadline:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            raise AssertionError(f"the topology exited:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    raise AssertionError(f"the topology did not start:\n{log.read_text(errors='replace')}")


def _wait_for_pids(running: Topology) -> None:
    """Until the edge's first health checks have reported every worker's pid."""
    import json
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{running.edge}/status", timeout=5) as response:
            regions = json.loads(response.read())["regions"]
        if all(isinstance(r["pid"], int) and r["health"] == "healthy" for r in regions):
            return
        time.sleep(0.05)
    raise AssertionError(f"the edge never saw every worker healthy: {regions}")
