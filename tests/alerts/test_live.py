"""Live alerting end to end, in one process: the real service with a storage outage, scraped
by the collectors' Scraper into the SeriesStore, evaluated there by LiveAlerting, delivered
signed to our receiver. Durations scaled by 1/60 (a 5 m window is 5 s)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from alerts.live import LiveAlerting, LiveSettings, run_events
from alerts.receiver import ReceiverSettings, create_receiver_app
from alerts.specload import load_spec
from collectors.scrape import Scraper, ScrapeTarget
from collectors.series import SeriesStore
from tests.alerts.faults import running_service, traffic


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[float, str, dict[str, Any]]] = []

    def add_event(self, t: float, type: str, **fields: Any) -> None:  # noqa: A002
        self.seen.append((t, type, fields))


async def received(client: aiohttp.ClientSession, url: str) -> set[tuple[str, str]]:
    async with client.get(url) as response:
        status = await response.json()
    return {(a["alertname"], a["status"]) for a in status["recent"]}


@pytest.mark.integration
async def test_storage_outage_fires_and_resolves_through_the_embedded_pipeline(
        tmp_path: Path) -> None:
    spec = load_spec().scaled(1 / 60).only("PrimaryDatabaseUnavailable", "HighErrorRate")
    receiver = TestServer(create_receiver_app(ReceiverSettings(
        db_path=str(tmp_path / "received.sqlite3"), secret="shared")), host="127.0.0.1")
    await receiver.start_server()
    events, registry = Events(), CollectorRegistry()
    expected = {("PrimaryDatabaseUnavailable", "firing"), ("PrimaryDatabaseUnavailable",
                                                          "resolved"),
                ("HighErrorRate", "firing"), ("HighErrorRate", "resolved")}
    try:
        async with running_service(workdir=tmp_path) as service, \
                aiohttp.ClientSession() as client:
            store = SeriesStore(retention_s=600)
            scraper = Scraper([ScrapeTarget("pitchey", service.url, "/metrics", None)],
                              store=store, interval_s=0.25)
            live = LiveAlerting(
                spec, store,
                LiveSettings(webhook_urls=(str(receiver.make_url("/webhook")),),
                             outbox_path=str(tmp_path / "outbox.sqlite3"), secret="shared",
                             interval_s=0.25),
                registry=registry, on_transition=run_events(events))
            scraper.start()
            live.start()
            try:
                await traffic(client, service, 1.0, rps=20)
                service.database.broken = True
                broke_at = time.time()
                await traffic(client, service, 3.0, rps=20)
                service.database.broken = False
                status_url = str(receiver.make_url("/status"))
                deadline = time.monotonic() + 40
                while await received(client, status_url) != expected:
                    assert time.monotonic() < deadline, await received(client, status_url)
                    await traffic(client, service, 0.5, rps=20)
            finally:
                await asyncio.to_thread(live.stop)
                await asyncio.to_thread(scraper.stop)
    finally:
        await receiver.close()
    firing = [(t, fields["alert"]) for t, kind, fields in events.seen if kind == "alert_firing"]
    assert {name for _, name in firing} == {"PrimaryDatabaseUnavailable", "HighErrorRate"}
    assert all(t > broke_at for t, _ in firing)
    assert {kind for _, kind, _ in events.seen} == {"alert_firing", "alert_resolved"}
    assert registry.get_sample_value("pitchey_alert_notifications_finished_total",
                                     {"outcome": "delivered"}) == 4
