"""Outbox and delivery against real aiohttp receivers (our receiver, and a scripted one)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from alerts.delivery import Backoff, Deliverer
from alerts.metrics import AlertMetrics
from alerts.outbox import Outbox
from alerts.receiver import ReceiverSettings, create_receiver_app
from tests.alerts.test_receiver import body_of, payload


class ManualClock:
    """Time moves only when the test says so."""

    def __init__(self, now: float = 1_767_261_600.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.is_set()


class Scripted:
    """A receiver answering with the queued statuses (then 200), recording what it got."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    script = Scripted()
    app = web.Application()
    app.router.add_post("/hook", script.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield script, str(server.make_url("/hook"))
    finally:
        await server.close()


def deliverer(tmp_path: Path, clock: ManualClock, **kwargs: Any) -> tuple[Deliverer, Outbox,
                                                                          CollectorRegistry]:
    registry = CollectorRegistry()
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    return (Deliverer(outbox, clock=clock, metrics=AlertMetrics(registry), rng=random.Random(1),
                      **kwargs), outbox, registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_signed_delivery_to_the_receiver(tmp_path: Path) -> None:
    settings = ReceiverSettings(db_path=str(tmp_path / "received.sqlite3"), secret="k")
    server = TestServer(create_receiver_app(settings), host="127.0.0.1")
    await server.start_server()
    clock = ManualClock(time.time())  # the receiver checks the signature's time on its clock
    try:
        sender, outbox, registry = deliverer(tmp_path, clock, secret="k")
        outbox.enqueue(str(server.make_url("/webhook")), "g", body_of(payload("A")), clock.t)
        assert await asyncio.to_thread(sender.deliver_due) == 1
        assert outbox.counts() == {"delivered": 1}
        assert sample(registry, "pitchey_alert_delivery_attempts_total", result="success") == 1
        assert sample(registry, "pitchey_alert_notifications_finished_total",
                      outcome="delivered") == 1
        unsigned, unsigned_box, _ = deliverer(tmp_path / "other", clock)
        unsigned_box.enqueue(str(server.make_url("/webhook")), "g", body_of(payload("B")),
                             clock.t)
        await asyncio.to_thread(unsigned.deliver_due)
        assert unsigned_box.counts() == {"rejected": 1}  # 401 is final
    finally:
        await server.close()


async def test_server_errors_are_retried_with_backoff_then_delivered(
        tmp_path: Path, scripted: tuple[Scripted, str]) -> None:
    script, url = scripted
    script.statuses = [503, 500]
    clock = ManualClock()
    sender, outbox, registry = deliverer(tmp_path, clock, backoff=Backoff(base_s=2, cap_s=60))
    outbox.enqueue(url, "g", b"{}", clock.t)
    await asyncio.to_thread(sender.deliver_due)
    (item,) = outbox.due(clock.t + 10)
    assert item.attempts == 1 and clock.t + 1 <= item.next_attempt_at < clock.t + 2
    assert await asyncio.to_thread(sender.deliver_due) == 0  # not due yet
    clock.t = item.next_attempt_at
    await asyncio.to_thread(sender.deliver_due)
    (item,) = outbox.due(clock.t + 10)
    assert item.attempts == 2 and clock.t + 2 <= item.next_attempt_at < clock.t + 4  # doubled
    clock.t = item.next_attempt_at
    await asyncio.to_thread(sender.deliver_due)
    assert outbox.counts() == {"delivered": 1} and len(script.bodies) == 3
    assert sample(registry, "pitchey_alert_delivery_attempts_total", result="server_error") == 2


@pytest.mark.parametrize("status", [400, 404, 429])
async def test_client_errors_are_not_retried(
        tmp_path: Path, scripted: tuple[Scripted, str], status: int) -> None:
    script, url = scripted
    script.statuses = [status]
    clock = ManualClock()
    sender, outbox, registry = deliverer(tmp_path, clock)
    outbox.enqueue(url, "g", b"{}", clock.t)
    await asyncio.to_thread(sender.deliver_due)
    clock.t += 3600
    await asyncio.to_thread(sender.deliver_due)
    assert outbox.counts() == {"rejected": 1} and len(script.bodies) == 1
    assert sample(registry, "pitchey_alert_delivery_attempts_total", result="client_error") == 1


async def test_connection_errors_are_retried(tmp_path: Path, unused_tcp_port: int) -> None:
    clock = ManualClock()
    sender, outbox, registry = deliverer(tmp_path, clock)
    outbox.enqueue(f"http://127.0.0.1:{unused_tcp_port}/hook", "g", b"{}", clock.t)
    await asyncio.to_thread(sender.deliver_due)
    assert outbox.counts() == {"pending": 1}
    assert sample(registry, "pitchey_alert_delivery_attempts_total",
                  result="connection_error") == 1
    assert sample(registry, "pitchey_alert_outbox_pending") == 1


async def test_a_group_keeps_its_order_while_others_proceed(
        tmp_path: Path, scripted: tuple[Scripted, str]) -> None:
    script, url = scripted
    script.statuses = [503]
    clock = ManualClock()
    sender, outbox, _ = deliverer(tmp_path, clock)
    outbox.enqueue(url, "g1", b'{"n": "firing"}', clock.t)
    outbox.enqueue(url, "g1", b'{"n": "resolved"}', clock.t)
    outbox.enqueue(url, "g2", b'{"n": "other"}', clock.t)
    await asyncio.to_thread(sender.deliver_due)
    assert script.bodies == [b'{"n": "firing"}', b'{"n": "other"}']  # g1's second waits
    clock.t += 60
    await asyncio.to_thread(sender.deliver_due)
    await asyncio.to_thread(sender.deliver_due)
    assert script.bodies[2:] == [b'{"n": "firing"}', b'{"n": "resolved"}']


def test_the_outbox_survives_reopening_and_expires_old_items(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    first.enqueue("http://127.0.0.1:9/x", "g", b"{}", 1000.0)
    first.close()
    again = Outbox(path)
    assert again.pending() == 1 and again.due(1000.0)[0].body == b"{}"
    clock = ManualClock(1000.0 + 90_000)
    sender = Deliverer(again, clock=clock, metrics=AlertMetrics(CollectorRegistry()),
                       max_age_s=86_400)
    sender.deliver_due()
    assert again.counts() == {"expired": 1}


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff, rng = Backoff(base_s=1, cap_s=8), random.Random(3)
    for attempt, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (9, 8)):
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d < ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
