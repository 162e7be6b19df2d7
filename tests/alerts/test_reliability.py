"""Receiver down for 60 s during a burst of alerts, sender restarted meanwhile: once the
receiver is back every notification arrives, and none is processed twice.

Time is compressed, not faked: the sender runs on a ScaledClock at 100x, so the 60 s outage is
a real 0.6 s during which the receiver's port is really closed, and the backoff (1 s doubling
to 30 s, jittered) and the 1 s evaluation interval shrink with it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from alerts.clock import ScaledClock
from alerts.live import LiveAlerting, LiveSettings
from alerts.outbox import Outbox
from alerts.receiver import ReceiverSettings, create_receiver_app
from alerts.specload import parse_spec
from collectors.series import SeriesStore

SPEC = """
version: 1
notifications: {group_by: [alertname, instance], group_wait: 0s, group_interval: 5s}
rules:
  - name: WorkerBroken
    severity: critical
    measure: {kind: gauge, metric: broken, aggregate: max, by: [instance]}
    op: ">"
    threshold: 0
    annotations: {summary: 'broken {{ $labels.instance }}', runbook: restart it}
"""
BURST = 30
SCALE = 100.0


class Receiver:
    """Our receiver on a fixed port, stoppable and restartable on the same SQLite file."""

    def __init__(self, port: int, db: Path) -> None:
        self.port, self.db = port, db
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def start(self) -> None:
        self.runner = web.AppRunner(create_receiver_app(ReceiverSettings(db_path=str(self.db))))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        self.runner = None

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as db:
            return db.execute(sql).fetchall()


async def wait_for(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def sender(outbox: Path, url: str, store: SeriesStore, clock: ScaledClock) -> LiveAlerting:
    spec = parse_spec(SPEC, "reliability.yaml")
    settings = LiveSettings(webhook_urls=(url,), outbox_path=str(outbox), interval_s=1.0,
                            backoff_base_s=1.0, backoff_cap_s=30.0, drain_s=0.0)
    return LiveAlerting(spec, store, settings, clock=clock,
                        registry=CollectorRegistry()).start()


async def test_outage_and_sender_restart_lose_nothing_and_duplicate_nothing(
        tmp_path: Path, unused_tcp_port: int) -> None:
    clock = ScaledClock(SCALE)
    store = SeriesStore(job="pitchey")
    receiver = Receiver(unused_tcp_port, tmp_path / "received.sqlite3")
    outbox_path = tmp_path / "outbox.sqlite3"
    await receiver.start()
    live = sender(outbox_path, receiver.url, store, clock)
    try:
        await receiver.stop()
        outage_started = clock.now()

        def burst(value: float) -> None:
            store.add_many({"t": clock.now(), "target": f"worker-{i}", "metric": "broken",
                            "labels": {}, "value": value} for i in range(BURST))

        burst(1.0)  # every worker breaks: 30 alerts fire while the receiver is down
        await wait_for(lambda: live.outbox.counts().get("pending", 0) == BURST, 5, "firing")
        await wait_for(lambda: live.metrics.attempts.labels("connection_error")._value.get()
                       >= BURST, 5, "failed attempts")
        burst(0.0)  # ... and recover, still during the outage
        await wait_for(lambda: sum(live.outbox.counts().values()) == 2 * BURST, 5, "resolved")

        live.stop(drain=False)  # the sender restarts mid-outage
        live = sender(outbox_path, receiver.url, store, clock)
        assert live.outbox.pending() == 2 * BURST

        await asyncio.sleep(max(0.0, (outage_started + 60 - clock.now()) / SCALE))
        assert clock.now() - outage_started >= 60
        await receiver.start()
        await wait_for(lambda: live.outbox.pending() == 0, 10, "the outbox to drain")
    finally:
        live.stop(drain=False)

    assert Outbox(outbox_path).counts() == {"delivered": 2 * BURST}
    stored = receiver.rows("SELECT status, COUNT(*), COUNT(DISTINCT fingerprint) FROM alerts "
                           "GROUP BY status ORDER BY status")
    assert stored == [("firing", BURST, BURST), ("resolved", BURST, BURST)]
    (received,) = receiver.rows("SELECT COUNT(*), SUM(new_alerts) FROM notifications")
    assert received == (2 * BURST, 2 * BURST)  # each notification arrived once, all new

    # An HA peer (or a retry whose 200 was lost) delivers the very same notifications again:
    bodies = [row[0] for row in sqlite3.connect(outbox_path).execute(
        "SELECT body FROM outbox ORDER BY id")]
    peer = sender(tmp_path / "peer-outbox.sqlite3", receiver.url, SeriesStore(), clock)
    try:
        for body in bodies:
            key = json.loads(body)["groupKey"]
            peer.outbox.enqueue(receiver.url, key, body, clock.now())
        peer.deliverer.wakeup.set()
        await wait_for(lambda: peer.outbox.counts() == {"delivered": 2 * BURST}, 10, "the peer")
    finally:
        peer.stop(drain=False)
        await receiver.stop()
    (processed,) = receiver.rows("SELECT COUNT(*) FROM alerts")
    (again,) = receiver.rows("SELECT COUNT(*), SUM(new_alerts) FROM notifications")
    assert processed == (2 * BURST,)  # nothing processed twice
    assert again == (4 * BURST, 2 * BURST)
