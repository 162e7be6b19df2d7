"""Scraping real aiohttp servers (a small exporter and the Pitchey service) into a run."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from collectors import Scraper, SeriesStore, Validity, load_run
from collectors.scrape import ScrapeTarget, flatten_status, parse_metrics
from testing.rundirs import new_writer

ServerFactory = Callable[..., Awaitable[TestServer]]


class Exporter:
    """A real HTTP server with prometheus_client metrics and a /status like the service's."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("pitchey_db_queries", "queries", ["operation"],
                                registry=self.registry)
        self.in_flight = Gauge("http_server_active_requests", "in flight",
                               registry=self.registry)
        self.latency = Histogram("http_server_request_duration_seconds", "latency",
                                 ["http_route"], buckets=(0.05, 0.1, 0.25),
                                 registry=self.registry)
        self.healthy = True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/status", self.status)
        return app

    async def metrics(self, request: web.Request) -> web.Response:
        if not self.healthy:
            return web.Response(status=500, text="boom")
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"region": "eu-west", "uptime_s": 12.5, "pid": 42,
                                  "dependencies": {"database": {"status": "healthy",
                                                                "latency": 1.5}},
                                  "recent": {"error_rate": 0.01, "p95_ms": None},
                                  "flags": [True, False]})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_scrape_once_records_metrics_status_and_gaps(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    exporter = Exporter()
    exporter.requests.labels("select").inc(7)
    exporter.in_flight.set(3)
    exporter.latency.labels("/api/pitches").observe(0.07)
    server = await aiohttp_server(exporter.app())
    writer = new_writer(tmp_path)
    down = f"http://127.0.0.1:{_closed_port()}"
    scraper = Scraper({"eu-west": str(server.make_url("/")), "us-east": down}, writer=writer,
                      timeout_s=2.0)

    failed = await asyncio.to_thread(scraper.scrape_once, 1_700_000_000.0)
    assert failed == 2  # both endpoints of the stopped target
    store = scraper.store
    [queries] = store.find("pitchey_db_queries_total", {"operation": "select"})
    assert (queries.target, queries.points()) == ("eu-west", [(1_700_000_000_000, 7.0)])
    [bucket] = store.find("http_server_request_duration_seconds_bucket", {"le": "0.1"})
    assert bucket.values == [1.0] and bucket.label_map["http_route"] == "/api/pitches"
    assert store.find("pitchey_db_queries_created") == []
    assert store.find("status.uptime_s")[0].values == [12.5]
    assert store.find("status.dependencies.database.status")[0].label_map["value"] == "healthy"
    assert [s.values for s in store.find("status.flags.0")] == [[1.0]]
    ups = {(s.target, s.label_map["endpoint"]): s.values[-1] for s in store.find("up")}
    assert ups == {("eu-west", "/metrics"): 1.0, ("eu-west", "/status"): 1.0,
                   ("us-east", "/metrics"): 0.0, ("us-east", "/status"): 0.0}

    exporter.healthy = False
    assert await asyncio.to_thread(scraper.scrape_once, 1_700_000_001.0) == 3
    run = load_run(writer.finish(Validity.ok()))
    gaps = run.events_of("scrape_gap")
    assert len(gaps) == 5
    assert [(g["t"], g["target"], g["endpoint"]) for g in gaps] == [
        (1_700_000_000.0, "us-east", "/metrics"), (1_700_000_000.0, "us-east", "/status"),
        (1_700_000_001.0, "eu-west", "/metrics"), (1_700_000_001.0, "us-east", "/metrics"),
        (1_700_000_001.0, "us-east", "/status")]
    assert gaps[2]["error"] == "HTTP 500" and "ConnectionRefusedError" in gaps[0]["error"]
    assert all(gap["url"].startswith("http://127.0.0.1:") for gap in gaps)
    service = run.service
    assert set(service["target"]) == {"eu-west", "us-east"}
    row = service[(service["metric"] == "pitchey_db_queries_total")].iloc[0]
    assert json.loads(row["labels"]) == {"operation": "select"} and row["value"] == 7.0


async def test_background_loop_keeps_going_through_failures(
    aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    exporter = Exporter()
    server = await aiohttp_server(exporter.app())
    writer = new_writer(tmp_path)
    store = SeriesStore()
    scraper = Scraper([ScrapeTarget("edge", str(server.make_url("/")), status_path=None)],
                      writer=writer, store=store, interval_s=0.05)
    scraper.start()
    try:
        await _until(lambda: scraper.scrapes >= 3)
        exporter.healthy = False
        await _until(lambda: scraper.gaps >= 2)
        exporter.healthy = True
        seen = scraper.scrapes
        await _until(lambda: scraper.scrapes >= seen + 2)
    finally:
        await asyncio.to_thread(scraper.stop)
    [up] = store.find("up", {"endpoint": "/metrics"})
    assert 0.0 in up.values and up.values[-1] == 1.0  # failed, then recovered
    assert up.times == sorted(up.times)
    run = load_run(writer.finish(Validity.ok()))
    assert len(run.events_of("scrape_gap")) == scraper.gaps


async def test_scrapes_the_pitchey_service(aiohttp_server: ServerFactory, tmp_path: Path) -> None:
    from pitchey.app import create_app
    from pitchey.settings import Settings

    settings = Settings(sqlite_path=str(tmp_path / "p.db"), rate_limit_per_minute=0)
    server = await aiohttp_server(create_app(settings, registry=CollectorRegistry()))
    async with __import__("aiohttp").ClientSession() as session:
        for _ in range(3):
            async with session.get(server.make_url("/api/health")) as response:
                await response.read()
    scraper = Scraper({"edge": str(server.make_url("/"))})
    assert await asyncio.to_thread(scraper.scrape_once) == 0
    names = set(scraper.store.metrics())
    assert {"http_server_request_duration_seconds_bucket", "pitchey_db_up", "up"} <= names
    assert any(name.startswith("status.") for name in names)
    counts = scraper.store.find("http_server_request_duration_seconds_count")
    assert sum(series.values[-1] for series in counts) >= 3


def test_parsers_are_pure() -> None:
    text = "# TYPE x counter\nx_total{a=\"1\"} 2.0\nx_created{a=\"1\"} 1.7e9\n"
    assert parse_metrics(text, 5.0, "edge") == [
        {"t": 5.0, "target": "edge", "metric": "x_total", "labels": {"a": "1"}, "value": 2.0}
    ]
    samples = flatten_status({"a": {"b": 1, "state": "open", "name": "x" * 100},
                              "c": float("nan")}, 1.0, "t")
    assert [(s["metric"], s["labels"], s["value"]) for s in samples] == [
        ("status.a.b", {}, 1.0), ("status.a.state", {"value": "open"}, 1.0)]


async def _until(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)
