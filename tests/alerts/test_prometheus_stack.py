"""A real Prometheus scrapes the real service and evaluates the rendered rules during an
induced error spike; a real Alertmanager routes to our receiver, which gets the firing and
then the resolved notification.

Rules are rendered with durations x 1/60 (5 m windows become 5 s, `for: 1m` becomes 1 s) and
Prometheus scrapes and evaluates every second, Alertmanager groups with 1 s waits: the same
rules and pipeline, minutes compressed into seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from alerts.payload import fingerprint, group_key
from alerts.receiver import ReceiverSettings, create_receiver_app
from alerts.render import RULES_FILE, render
from alerts.specload import load_spec
from testing.localstack import LocalStack, StackMissing
from tests.alerts.faults import running_service, traffic


async def recent(client: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with client.get(url) as response:
        return list((await response.json())["recent"])


@pytest.mark.integration
async def test_prometheus_and_alertmanager_deliver_firing_then_resolved(
        tmp_path: Path) -> None:
    render(load_spec().scaled(1 / 60), tmp_path / "rules", with_tests=False)
    receiver = TestServer(create_receiver_app(ReceiverSettings(
        db_path=str(tmp_path / "received.sqlite3"))), host="127.0.0.1")
    await receiver.start_server()
    try:
        async with running_service(workdir=tmp_path) as service, \
                aiohttp.ClientSession() as client:
            stack = LocalStack(tmp_path / "stack", tmp_path / "rules" / RULES_FILE,
                               scrape_targets=[urlsplit(service.url).netloc],
                               webhook_url=str(receiver.make_url("/webhook")))
            try:
                await asyncio.to_thread(stack.start)
            except StackMissing as exc:
                pytest.skip(str(exc))
            try:
                status_url = str(receiver.make_url("/status"))
                await traffic(client, service, 3.0, rps=10)  # a few healthy scrapes first
                service.database.broken = True
                spike_at = time.time()
                await traffic(client, service, 6.0, rps=10)
                service.database.broken = False
                deadline = time.monotonic() + 60
                while True:
                    got = {(a["alertname"], a["status"]) for a in
                           await recent(client, status_url)}
                    if {("HighErrorRate", "firing"), ("HighErrorRate", "resolved")} <= got:
                        break
                    assert time.monotonic() < deadline, (got, stack.log_tail())
                    await traffic(client, service, 1.0, rps=10)
            finally:
                await asyncio.to_thread(stack.stop)
    finally:
        await receiver.close()
    alerts = [a for a in await _stored(tmp_path) if a["alertname"] == "HighErrorRate"]
    firing = next(a for a in alerts if a["status"] == "firing")
    resolved = next(a for a in alerts if a["status"] == "resolved")
    # Alertmanager's own fingerprint and group key match the ones our notifier computes.
    assert firing["fingerprint"] == fingerprint(firing["labels"]) == resolved["fingerprint"]
    assert firing["group_key"] == group_key({"alertname": "HighErrorRate"})
    assert firing["labels"] == {"alertname": "HighErrorRate", "severity": "critical",
                                "team": "platform"}
    assert firing["annotations"]["summary"] == "Error rate above 5%"
    assert firing["starts_at"] == resolved["starts_at"]
    assert firing["received_at"] > spike_at


async def _stored(tmp_path: Path) -> list[dict[str, Any]]:
    import aiosqlite

    async with aiosqlite.connect(tmp_path / "received.sqlite3") as db:
        rows = await (await db.execute(
            "SELECT alertname, status, fingerprint, group_key, starts_at, labels, annotations, "
            "received_at FROM alerts ORDER BY id")).fetchall()
    return [{"alertname": r[0], "status": r[1], "fingerprint": r[2], "group_key": r[3],
             "starts_at": r[4], "labels": json.loads(r[5]), "annotations": json.loads(r[6]),
             "received_at": r[7]} for r in rows]
