"""The webhook receiver on a real aiohttp server and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from alerts.grouping import Dispatcher
from alerts.payload import NotifiableAlert
from alerts.receiver import ReceiverSettings, create_receiver_app
from alerts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_headers
from alerts.spec import Route

Client = TestClient[Any, Any]
Factory = Callable[..., Awaitable[Client]]
T0 = 1_767_261_600.0


def payload(*names: str, resolved: bool = False) -> dict[str, Any]:
    dispatcher = Dispatcher(Route(group_by=("severity",), group_wait_ms=0))
    for name in names:
        dispatcher.add(NotifiableAlert({"alertname": name, "severity": "critical"},
                                       {"summary": name}, T0), T0)
    (first,) = dispatcher.flush(T0)
    if not resolved:
        return first.payload
    for name in names:
        dispatcher.add(NotifiableAlert({"alertname": name, "severity": "critical"},
                                       {"summary": name}, T0, T0 + 30), T0 + 30)
    (second,) = dispatcher.flush(T0 + 60)
    return second.payload


@pytest.fixture
def start(aiohttp_client: Factory, tmp_path: Path) -> Callable[..., Awaitable[Client]]:
    async def build(**overrides: Any) -> Client:
        registry = overrides.pop("registry", CollectorRegistry())
        settings = ReceiverSettings(db_path=str(tmp_path / "received.sqlite3"), **overrides)
        return await aiohttp_client(create_receiver_app(settings, registry=registry))
    return build


def body_of(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


async def test_stores_alerts_once_per_key_and_shows_them_on_status(start: Any) -> None:
    registry = CollectorRegistry()
    client = await start(registry=registry)
    first = await client.post("/webhook", data=body_of(payload("A", "B")))
    assert first.status == 200 and await first.json() == {"accepted": 2, "duplicates": 0}
    again = await client.post("/webhook", data=body_of(payload("A", "B")))
    assert await again.json() == {"accepted": 0, "duplicates": 2}
    resolved = await client.post("/webhook", data=body_of(payload("A", "B", resolved=True)))
    assert await resolved.json() == {"accepted": 2, "duplicates": 0}  # status differs
    status = await (await client.get("/status")).json()
    assert status["notifications"] == 3
    assert status["alerts"] == {"received": 6, "processed": 4, "duplicates": 2,
                                "by_status": {"firing": 2, "resolved": 2}}
    assert {a["alertname"] for a in status["recent"]} == {"A", "B"}
    assert registry.get_sample_value("pitchey_alert_webhook_alerts_total", {"kind": "new"}) == 4
    assert registry.get_sample_value("pitchey_alert_webhooks_received_total",
                                     {"result": "duplicate"}) == 1


async def test_signature_required_when_a_secret_is_set(start: Any) -> None:
    client = await start(secret="s3cret")
    body = body_of(payload("A"))
    unsigned = await client.post("/webhook", data=body)
    assert unsigned.status == 401
    assert "unsigned" in (await unsigned.json())["error"]["message"]
    forged = signature_headers(b"wrong", body, time.time())
    assert (await client.post("/webhook", data=body, headers=forged)).status == 401
    stale = signature_headers(b"s3cret", body, time.time() - 3600)
    assert (await client.post("/webhook", data=body, headers=stale)).status == 401
    tampered = signature_headers(b"s3cret", body, time.time())
    assert (await client.post("/webhook", data=body + b" ", headers=tampered)).status == 401
    good = signature_headers(b"s3cret", body, time.time())
    assert set(good) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}
    assert (await client.post("/webhook", data=body, headers=good)).status == 200
    status = await (await client.get("/status")).json()
    assert status["notifications"] == 1 and status["rejected"]["unauthorized"] == 4


async def test_bad_bodies_get_4xx_naming_the_field(start: Any) -> None:
    client = await start(max_body_bytes=4096)
    malformed = await client.post("/webhook", data=b"{not json")
    assert malformed.status == 400
    document = payload("A")
    document["alerts"][0]["labels"] = {"alertname": 5}
    wrong = await client.post("/webhook", data=body_of(document))
    assert wrong.status == 422
    assert (await wrong.json())["error"]["fields"] == {
        "alerts[0].labels": "alerts[0].labels: must be an object of text values"}
    old = await client.post("/webhook", data=body_of({**payload("A"), "version": "3"}))
    assert old.status == 422
    big = await client.post("/webhook", data=b"x" * 5000)
    assert big.status == 413


async def test_answers_503_not_429_when_overloaded(start: Any, tmp_path: Path) -> None:
    client = await start(max_in_flight=1)
    assert (await client.post("/webhook", data=body_of(payload("warm")))).status == 200
    # Hold the database's write lock, so the next request stays in flight storing.
    blocker = sqlite3.connect(tmp_path / "received.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        slow = asyncio.ensure_future(client.post("/webhook", data=body_of(payload("A"))))
        deadline = time.monotonic() + 10
        while (await (await client.get("/status")).json())["in_flight"] < 1:
            assert time.monotonic() < deadline, "the first request never got in flight"
            await asyncio.sleep(0.01)
        busy = await client.post("/webhook", data=body_of(payload("B")))
        assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert (await slow).status == 200


async def test_mounts_as_a_sub_application(aiohttp_client: Factory, tmp_path: Path) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    parent = web.Application()
    parent.router.add_get("/health", health)
    settings = ReceiverSettings(db_path=str(tmp_path / "r.sqlite3"))
    parent.add_subapp("/alerts/", create_receiver_app(settings))
    client = await aiohttp_client(parent)
    assert (await client.post("/alerts/webhook", data=body_of(payload("A")))).status == 200
    status = await (await client.get("/alerts/status")).json()
    assert status["alerts"]["processed"] == 1
    assert (await client.get("/health")).status == 200


def test_settings_from_environment() -> None:
    settings = ReceiverSettings.from_environ({"PITCHEY_ALERTS_WEBHOOK_SECRET": "x",
                                              "PITCHEY_ALERTS_RECEIVER_MAX_IN_FLIGHT": "3"})
    assert settings.secret == "x" and settings.max_in_flight == 3
    with pytest.raises(ValueError, match="MAX_IN_FLIGHT"):
        ReceiverSettings.from_environ({"PITCHEY_ALERTS_RECEIVER_MAX_IN_FLIGHT": "many"})


async def test_storage_locked_too_long_is_503_so_the_sender_retries(
        start: Any, tmp_path: Path) -> None:
    client = await start(busy_timeout_s=0.2)
    assert (await client.post("/webhook", data=body_of(payload("warm")))).status == 200
    blocker = sqlite3.connect(tmp_path / "received.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        locked = await client.post("/webhook", data=body_of(payload("A")))
        assert locked.status == 503
        assert (await locked.json())["error"]["code"] == "storage_unavailable"
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert (await client.post("/webhook", data=body_of(payload("A")))).status == 200


async def test_mounted_in_the_service_its_metrics_show_on_the_service_metrics(
        aiohttp_client: Factory, tmp_path: Path) -> None:
    from pitchey.app import create_app
    from pitchey.settings import Settings

    registry = CollectorRegistry()
    app = create_app(Settings(sqlite_path=str(tmp_path / "pitchey.db"), rate_limit_per_minute=0),
                     registry=registry)
    app.add_subapp("/alerts/", create_receiver_app(
        ReceiverSettings(db_path=str(tmp_path / "r.sqlite3")), registry=registry))
    client = await aiohttp_client(app)
    assert (await client.post("/alerts/webhook", data=body_of(payload("A")))).status == 200
    exposition = await (await client.get("/metrics")).text()
    assert 'pitchey_alert_webhooks_received_total{result="accepted"} 1.0' in exposition
    assert 'pitchey_alert_webhook_alerts_total{kind="new"} 1.0' in exposition
