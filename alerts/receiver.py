"""The webhook receiver: accepts Alertmanager (and our notifier's) notifications.

    POST /webhook   an Alertmanager v4 payload (POST / works too)
    GET  /status    what it received, as JSON

- With a secret set, a request must carry a valid fresh signature (alerts/signing.py):
  unsigned or wrongly signed -> 401, and nothing is stored.
- Idempotent: each alert is processed once per (groupKey, fingerprint, status, startsAt); a
  repeated one (a retry whose answer was lost, an HA peer delivering too) is counted as a
  duplicate and answered 200, so the sender stops.
- Overloaded (more than `max_in_flight` requests being stored) -> 503 with Retry-After, never
  429: senders retry a 5xx and drop a 4xx.
- Everything received is stored in SQLite (the raw notification and one row per new alert).

Standalone: `pitchey alerts receive --port N`. In the service: `app.add_subapp("/alerts/",
create_receiver_app(ReceiverSettings.from_environ(os.environ), registry=registry))`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import web
from prometheus_client import CollectorRegistry

from alerts.metrics import ReceiverMetrics
from alerts.payload import PayloadError, ReceivedNotification, parse_notification
from alerts.signing import verify

__all__ = ["RECEIVER_DB", "ReceiverSettings", "create_receiver_app"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    group_key TEXT NOT NULL,
    status TEXT NOT NULL,
    receiver TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    new_alerts INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    received_at REAL NOT NULL,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    UNIQUE (group_key, fingerprint, status, starts_at)
);
"""


@dataclass(frozen=True)
class ReceiverSettings:
    db_path: str = "alerts-received.sqlite3"
    secret: str | None = None
    max_in_flight: int = 32
    max_body_bytes: int = 1 << 20
    signature_tolerance_s: float = 300.0
    recent_limit: int = 50
    busy_timeout_s: float = 5.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> ReceiverSettings:
        """PITCHEY_ALERTS_RECEIVER_DB, PITCHEY_ALERTS_WEBHOOK_SECRET,
        PITCHEY_ALERTS_RECEIVER_MAX_IN_FLIGHT."""
        settings = cls()
        raw = environ.get("PITCHEY_ALERTS_RECEIVER_MAX_IN_FLIGHT", "")
        try:
            in_flight = int(raw) if raw else settings.max_in_flight
        except ValueError:
            raise ValueError(f"PITCHEY_ALERTS_RECEIVER_MAX_IN_FLIGHT={raw!r} is not a whole "
                             "number") from None
        settings = replace(settings,
                           db_path=environ.get("PITCHEY_ALERTS_RECEIVER_DB") or settings.db_path,
                           secret=environ.get("PITCHEY_ALERTS_WEBHOOK_SECRET") or None,
                           max_in_flight=in_flight)
        settings = replace(settings, **overrides)
        if settings.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        return settings


RECEIVER_DB = web.AppKey("alerts_receiver_db", aiosqlite.Connection)
# /status reads on a connection of its own: WAL lets it read while a write waits for a lock.
_READER_DB = web.AppKey("alerts_receiver_reader_db", aiosqlite.Connection)
_SETTINGS = web.AppKey("alerts_receiver_settings", ReceiverSettings)
_STATE = web.AppKey("alerts_receiver_state", dict)


def _error(status: int, code: str, message: str, *, field: str | None = None,
           headers: Mapping[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"status": status, "code": code, "message": message}}
    if field:
        body["error"]["fields"] = {field: message}
    return web.json_response(body, status=status, headers=headers)


def create_receiver_app(settings: ReceiverSettings, *,
                        registry: CollectorRegistry | None = None,
                        clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[_SETTINGS] = settings
    metrics = ReceiverMetrics(registry if registry is not None else CollectorRegistry())
    app[_STATE] = {"in_flight": 0, "rejected": {"unauthorized": 0, "invalid": 0,
                                                "overloaded": 0}}

    async def open_database(app: web.Application) -> AsyncIterator[None]:
        if settings.db_path != ":memory:":
            Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(settings.db_path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA busy_timeout={int(settings.busy_timeout_s * 1000)}")
        await db.executescript(_SCHEMA)
        reader = await aiosqlite.connect(settings.db_path, isolation_level=None)
        app[RECEIVER_DB], app[_READER_DB] = db, reader
        yield
        await reader.close()
        await db.close()

    app.cleanup_ctx.append(open_database)

    def reject(result: str, response: web.Response) -> web.Response:
        metrics.requests.labels(result).inc()
        app[_STATE]["rejected"][result] += 1
        return response

    async def webhook(request: web.Request) -> web.Response:
        state = app[_STATE]
        if state["in_flight"] >= settings.max_in_flight:
            return reject("overloaded", _error(503, "overloaded", "too many notifications "
                                               "being stored; retry later",
                                               headers={"Retry-After": "1"}))
        state["in_flight"] += 1
        try:
            return await _handle(request)
        finally:
            state["in_flight"] -= 1

    async def _handle(request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return reject("invalid", _error(413, "too_large", f"body above "
                                            f"{settings.max_body_bytes} bytes"))
        if settings.secret:
            problem = verify(settings.secret.encode(), request.headers, body, clock(),
                             settings.signature_tolerance_s)
            if problem is not None:
                return reject("unauthorized", _error(401, "unauthorized", problem))
        try:
            notification = parse_notification(json.loads(body or b"null"))
        except json.JSONDecodeError as exc:
            return reject("invalid", _error(400, "malformed_json", f"body is not JSON: {exc}"))
        except PayloadError as exc:
            return reject("invalid", _error(422, "invalid_payload", str(exc), field=exc.field))
        try:
            new = await _store(request.app[RECEIVER_DB], notification, body, clock())
        except sqlite3.OperationalError as exc:  # locked or I/O trouble: the sender retries
            return reject("overloaded", _error(503, "storage_unavailable",
                                               f"cannot store the notification now: {exc}",
                                               headers={"Retry-After": "1"}))
        duplicates = len(notification.alerts) - new
        metrics.alerts.labels("new").inc(new)
        metrics.alerts.labels("duplicate").inc(duplicates)
        result = "duplicate" if notification.alerts and new == 0 else "accepted"
        metrics.requests.labels(result).inc()
        return web.json_response({"accepted": new, "duplicates": duplicates})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(await _status(request.app[_READER_DB], app[_STATE],
                                               settings))

    app.router.add_post("/webhook", webhook)
    app.router.add_post("/", webhook)
    app.router.add_get("/status", status)
    return app


async def _store(db: aiosqlite.Connection, notification: ReceivedNotification, body: bytes,
                 now: float) -> int:
    """One transaction: the notification, then each alert unless already seen. Returns how
    many alerts were new."""
    await db.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
    try:
        cursor = await db.execute(
            "INSERT INTO notifications (received_at, group_key, status, receiver, alerts, "
            "new_alerts, body) VALUES (?, ?, ?, ?, ?, 0, ?)",
            (now, notification.group_key, notification.status, notification.receiver,
             len(notification.alerts), body.decode("utf-8", "replace")))
        notification_id = cursor.lastrowid
        new = 0
        for alert in notification.alerts:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO alerts (group_key, fingerprint, status, starts_at, "
                "ends_at, alertname, labels, annotations, received_at, notification_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (notification.group_key, alert.fingerprint, alert.status, alert.starts_at,
                 alert.ends_at, alert.labels.get("alertname", ""),
                 json.dumps(alert.labels, sort_keys=True),
                 json.dumps(alert.annotations, sort_keys=True), now, notification_id))
            new += cursor.rowcount
        await db.execute("UPDATE notifications SET new_alerts = ? WHERE id = ?",
                         (new, notification_id))
        await db.commit()
    except BaseException:
        if db.in_transaction:
            await db.rollback()
        raise
    return new


async def _status(db: aiosqlite.Connection, state: dict[str, Any],
                  settings: ReceiverSettings) -> dict[str, Any]:
    async with db.execute("SELECT COUNT(*), COALESCE(SUM(alerts), 0), "
                          "COALESCE(SUM(new_alerts), 0) FROM notifications") as cursor:
        notifications, alerts_in, new_alerts = await cursor.fetchone() or (0, 0, 0)
    async with db.execute("SELECT status, COUNT(*) FROM alerts GROUP BY status") as cursor:
        by_status = {str(s): int(n) async for s, n in cursor}
    async with db.execute(
            "SELECT alertname, status, fingerprint, group_key, starts_at, ends_at, labels, "
            "annotations, received_at FROM alerts ORDER BY id DESC LIMIT ?",
            (settings.recent_limit,)) as cursor:
        recent = [{"alertname": row[0], "status": row[1], "fingerprint": row[2],
                   "groupKey": row[3], "startsAt": row[4], "endsAt": row[5],
                   "labels": json.loads(row[6]), "annotations": json.loads(row[7]),
                   "receivedAt": row[8]} async for row in cursor]
    return {
        "notifications": int(notifications),
        "alerts": {"received": int(alerts_in), "processed": int(new_alerts),
                   "duplicates": int(alerts_in) - int(new_alerts), "by_status": by_status},
        "rejected": dict(state["rejected"]),
        "in_flight": state["in_flight"],
        "signature_required": bool(settings.secret),
        "recent": recent,
    }
