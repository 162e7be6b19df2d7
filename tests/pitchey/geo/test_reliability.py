"""Reliability of the geo topology with real processes: the supervisor, the edge and four
regional workers, each its own OS process, on a real SQLite file or PostgreSQL database.

1. SIGKILL a worker under steady mixed traffic: no failed request, rerouted within two health
   intervals, every acknowledged write present, the region rejoins after its restart.
2. A region made slow (delay injected into its worker): HAProxy's checks time out, its
   breaker opens, its traffic moves to the nearest region (the first backup server), and
   the breaker closes once the region is fast again (half-open: `rise` passing checks).
3. Storage unavailable (the SQLite file made unwritable; PostgreSQL stopped): /health/db
   fails within one health interval, writes answer 503 leaving no rows, and the service
   recovers without a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pitchey.geo.failover import FailoverOptions, run_failover
from pitchey.geo.traffic import login

from .topology import HEALTH_INTERVAL_S, Topology, eventually, topology

pytestmark = pytest.mark.integration

PITCH = {
    "logline": "A storage outage that leaves nothing half written behind it.",
    "synopsis": "The disk refuses every write; each request is rolled back whole and the "
                "service answers 503 until the disk is back, then carries on as before.",
    "genre": "Thriller",
    "budget_range": "micro",
    "status": "published",
}


@pytest.fixture(scope="module")
def sqlite_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("geo-sqlite")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db")}) as running:
        yield running


# -- 1. a worker killed under traffic ------------------------------------------------------


async def test_sigkill_a_worker_under_mixed_traffic(sqlite_topology: Topology) -> None:
    before = await sqlite_topology.region("europe")
    report = await run_failover(FailoverOptions(
        region="europe", url=sqlite_topology.edge, duration_s=18, concurrency=3,
        write_ratio=0.1, kill_at_s=5, restart_at_s=9))
    summary = {k: v for k, v in report.as_dict().items() if k != "acknowledged_ids"}
    print(summary)
    assert report.killed_pid == before["pid"]
    assert report.requests >= 1000, summary
    # a write in flight at the kill carries an Idempotency-Key: the edge retries it on the
    # next region, which executes it once; a GET in flight is retried too
    assert report.failed == 0, summary
    assert report.time_to_reroute_s is not None
    assert report.time_to_reroute_s <= 2 * HEALTH_INTERVAL_S, summary
    assert set(report.served_during_outage) - {"europe"}, summary
    # every write that returned 2xx is in the database, counted straight from the file
    assert report.writes_acknowledged > 0, summary
    with sqlite3.connect(sqlite_topology.env["PITCHEY_SQLITE_PATH"]) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM pitches")}
    assert set(report.acknowledged_ids) <= stored
    assert report.writes_present == report.writes_acknowledged
    # the region rejoined with a new process and took its traffic back
    assert report.new_pid not in (None, before["pid"]), summary
    assert report.time_to_traffic_back_s is not None, summary
    after = await sqlite_topology.region("europe")
    assert after["health"] == "healthy" and after["pid"] == report.new_pid


async def test_a_keyed_write_in_flight_when_its_worker_dies_succeeds_once(
        sqlite_topology: Topology) -> None:
    """The write reaches us-west's worker, which is SIGKILLed before answering. It carries an
    Idempotency-Key, so the edge retries it (and until us-west is ejected those retries may
    find the dead worker: then the client sends it again with the same key, as the traffic
    driver does): the client gets its 201 and the pitch exists once."""
    edge = sqlite_topology.edge
    before = await sqlite_topology.region("us-west")
    title = f"in flight {time.time_ns()}"
    async with aiohttp.ClientSession() as session:
        token = await login(session, edge, "us-west")
        assert token, "the demo creator could not sign in"
        headers = {"Cookie": f"pitchey_session={token}", "X-Pitchey-Region": "us-west",
                   "Idempotency-Key": f"in-flight-{time.time_ns()}"}
        # the worker holds the request (before its handler) long enough to be killed
        slowed = await session.put(f"{before['url']}/_geo/latency", json={"extra_ms": 3000})
        assert slowed.status == 200

        async def send_until_answered() -> tuple[int, dict[str, Any], str | None]:
            deadline = time.monotonic() + 10
            while True:
                try:
                    async with session.post(f"{edge}/api/pitches",
                                            json={**PITCH, "title": title},
                                            headers=headers) as answer:
                        body = await answer.json()
                        if answer.status not in (409, 502, 503) or \
                                time.monotonic() > deadline:
                            return answer.status, body, answer.headers.get(
                                "X-Pitchey-Served-By")
                except aiohttp.ServerDisconnectedError:
                    if time.monotonic() > deadline:
                        raise
                attempts.append(time.monotonic())
                await asyncio.sleep(0.2)

        attempts: list[float] = []
        write = asyncio.create_task(send_until_answered())

        async def held() -> bool:
            return bool((await sqlite_topology.region("us-west"))["in_flight"] >= 1)

        await eventually(held, 3, "the write reaches us-west's worker")
        os.kill(before["pid"], signal.SIGKILL)
        status, body, served_by = await asyncio.wait_for(write, 15)
        print(f"answered {status} by {served_by} after {len(attempts)} resend(s)")
        assert status == 201, body
        assert served_by not in (None, "us-west")
        # back to four regions for the next tests
        supervisor = (await sqlite_topology.status())["supervisor_pid"]
        os.kill(supervisor, signal.SIGUSR1)

        async def rejoined() -> bool:
            entry = await sqlite_topology.region("us-west")
            return bool(entry["health"] == "healthy" and entry["pid"] not in
                        (None, before["pid"]))

        await eventually(rejoined, 30, "us-west rejoins")
        # the key's record is in the shared database: us-west's new process, which never
        # saw the write, replays its outcome instead of creating the pitch again
        async with session.post(f"{edge}/api/pitches", json={**PITCH, "title": title},
                                headers=headers) as again:
            assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
            assert again.headers.get("X-Pitchey-Served-By") == "us-west"
            assert (await again.json())["id"] == body["id"]
    with sqlite3.connect(sqlite_topology.env["PITCHEY_SQLITE_PATH"]) as db:
        stored = db.execute("SELECT id FROM pitches WHERE title = ?", (title,)).fetchall()
    assert [row[0] for row in stored] == [body["id"]]


async def test_an_operator_drains_a_region_through_the_runtime_api(
        sqlite_topology: Topology) -> None:
    before = await sqlite_topology.region("asia")
    report = await run_failover(FailoverOptions(
        region="asia", url=sqlite_topology.edge, duration_s=8, concurrency=2,
        write_ratio=0.1, kill_at_s=2, restart_at_s=4, drain="drain"))
    summary = {k: v for k, v in report.as_dict().items() if k != "acknowledged_ids"}
    assert report.drained == "drain" and report.failed == 0, summary
    assert report.time_to_detect_s is not None, summary  # /status showed it drained
    assert report.served_during_outage and "asia" not in report.served_during_outage, summary
    assert report.time_to_traffic_back_s is not None, summary
    after = await sqlite_topology.region("asia")
    assert after["health"] == "healthy" and after["pid"] == before["pid"]  # never restarted
    async with aiohttp.ClientSession() as session:
        refused = await session.put(f"{sqlite_topology.edge}/_edge/regions/asia/state",
                                    json={"state": "asleep"})
        assert refused.status == 422


# -- 2. a slow region ---------------------------------------------------------------------


async def test_a_slow_region_trips_its_breaker_and_recovers(sqlite_topology: Topology) -> None:
    edge = sqlite_topology.edge
    counter = itertools.count()
    served: list[tuple[float, str | None]] = []
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            # distinct URLs: coalescing must not merge the probes of the breaker
            async with session.get(f"{edge}/health?n={next(counter)}",
                                   headers={"X-Pitchey-Region": "asia"}) as response:
                await response.read()
                served.append((time.monotonic(), response.headers.get("X-Pitchey-Served-By")))

    async def breaker(state: str) -> bool:
        return bool((await sqlite_topology.region("asia"))["breaker"] == state)

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.create_task(client(session)) for _ in range(8)]
        try:
            await eventually(lambda: _served_by(served, "asia"), 10, "asia serves asia")
            put = await session.put(f"{edge}/_edge/regions/asia/latency",
                                    json={"extra_ms": 1000})
            assert put.status == 200
            await eventually(lambda: breaker("open"), 15, "asia's breaker opens")
            moved_at = time.monotonic()
            await eventually(lambda: _served_by(served, "us-west", since=moved_at), 5,
                              "asia's traffic moves to us-west, its nearest region")
            await session.put(f"{edge}/_edge/regions/asia/latency", json={"extra_ms": 0})
            await eventually(lambda: breaker("closed"), 15, "asia's breaker closes again")
            closed_at = time.monotonic()
            await eventually(lambda: _served_by(served, "asia", since=closed_at), 5,
                              "asia serves asia again")
        finally:
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            await session.put(f"{edge}/_edge/regions/asia/latency", json={"extra_ms": 0})
    metrics = await _text(f"{edge}/metrics")
    downs = re.search(r'^haproxy_server_check_up_down_total\{proxy="asia",server="asia"\} (\d+)',
                      metrics, re.MULTILINE)
    assert downs is not None and int(downs.group(1)) >= 1, "HAProxy counted no UP->DOWN"


async def _served_by(served: list[tuple[float, str | None]], region: str,
                     since: float = 0.0) -> bool:
    return any(t >= since and who == region for t, who in served[-50:])


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.text()


# -- 3. storage unavailable ---------------------------------------------------------------


async def _storage_outage(topo: Topology, break_storage: Any, restore_storage: Any,
                          count_rows: Any, *, reads_survive: bool) -> None:
    edge = topo.edge
    async with aiohttp.ClientSession() as session:
        token = await login(session, edge, "us-east")
        assert token, "the demo creator could not sign in"
        headers = {"Cookie": f"pitchey_session={token}", "X-Pitchey-Region": "us-east"}
        worker = (await topo.region("us-east"))["url"]
        pids = {r["name"]: r["pid"] for r in (await topo.status())["regions"]}
        title = f"outage {time.time_ns()}"

        async def db_health(url: str) -> int:
            async with session.get(f"{url}/health/db") as response:
                return response.status

        async def edge_sees_degraded() -> bool:
            return all(r["health"] == "degraded" for r in (await topo.status())["regions"])

        assert await db_health(worker) == 200
        broken_at = time.monotonic()
        await break_storage()
        assert await db_health(worker) == 503  # the probe writes, so it notices at once
        seen_after = await eventually(edge_sees_degraded, 5, "the edge marks regions degraded")
        assert seen_after <= HEALTH_INTERVAL_S + 0.5 + 0.3, seen_after  # one interval + timeout
        for n in range(3):
            response = await session.post(f"{edge}/api/pitches",
                                          json={**PITCH, "title": f"{title} {n}"},
                                          headers=headers)
            body = await response.json()
            assert response.status == 503, body
            assert body["error"]["code"] == "storage_unavailable"
        reads = await session.get(f"{edge}/api/pitches?per_page=5&n={time.time_ns()}")
        if reads_survive:  # an unwritable file still reads
            assert reads.status == 200
        else:  # a stopped server cannot even read: 503, never a 500
            assert reads.status in (200, 503)
            if reads.status == 503:
                assert (await reads.json())["error"]["code"] == "storage_unavailable"
        await restore_storage()
        await eventually(lambda: _ok(db_health(worker)), 10, "/health/db recovers")
        await eventually(lambda: _created(session, edge, headers, title), 10,
                          "writes succeed again")
        assert time.monotonic() - broken_at < 30
    assert await count_rows(f"{title} 0") == 0  # the failed writes left nothing behind
    assert await count_rows(f"{title} 1") == 0
    assert {r["name"]: r["pid"] for r in (await topo.status())["regions"]} == pids  # no restart


async def _ok(status: Any) -> bool:
    return bool(await status == 200)


async def _created(session: aiohttp.ClientSession, edge: str, headers: dict[str, str],
                   title: str) -> bool:
    response = await session.post(f"{edge}/api/pitches", json={**PITCH, "title": f"{title} ok"},
                                  headers=headers)
    await response.read()
    return response.status == 201


def _chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True,
                          timeout=30)


async def test_sqlite_file_unwritable(sqlite_topology: Topology) -> None:
    database = Path(sqlite_topology.env["PITCHEY_SQLITE_PATH"])
    files = [database, Path(f"{database}-wal")]
    if os.geteuid() != 0:
        pytest.skip("making an open SQLite file unwritable needs root (chattr +i)")
    probe = _chattr("-i", *files)
    if probe.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {probe.stderr.strip()}")

    async def make_unwritable() -> None:
        result = _chattr("+i", *files)
        assert result.returncode == 0, result.stderr

    async def make_writable() -> None:
        _chattr("-i", *files)

    async def count(title: str) -> int:
        with sqlite3.connect(database) as db:
            return int(db.execute("SELECT count(*) FROM pitches WHERE title = ?",
                                  (title,)).fetchone()[0])

    try:
        await _storage_outage(sqlite_topology, make_unwritable, make_writable, count,
                              reads_survive=True)
    finally:
        _chattr("-i", *files)


_PROXY = r"""
import asyncio, sys
async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", 5432)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), reuse_address=True)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


class PostgresProxy:
    """A TCP forwarder to the shared PostgreSQL server: killing it is, for the service, the
    server stopping (connections reset, new ones refused); starting it again is the restart.
    The shared server itself is never touched."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _PROXY, str(self.port)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None


@pytest.mark.postgres
async def test_postgresql_stopped(pg_dsn: str, tmp_path: Path) -> None:
    proxy = PostgresProxy()
    proxy.start()
    try:
        proxied = re.sub(r"@127\.0\.0\.1:5432/", f"@127.0.0.1:{proxy.port}/", pg_dsn)
        assert proxied != pg_dsn

        async def stop_server() -> None:
            proxy.stop()

        async def start_server() -> None:
            proxy.start()

        async def count(title: str) -> int:
            import asyncpg

            connection = await asyncpg.connect(pg_dsn)
            try:
                return int(await connection.fetchval(
                    "SELECT count(*) FROM pitches WHERE title = $1", title))
            finally:
                await connection.close()

        with topology(tmp_path, {"DATABASE_URL": proxied}) as running:
            await _storage_outage(running, stop_server, start_server, count,
                                  reads_survive=False)
    finally:
        proxy.stop()
