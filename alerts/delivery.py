"""Delivering outbox notifications to webhook receivers.

Like Alertmanager: a 2xx is delivered; a 5xx or a connection error is retried with
exponential backoff and jitter; a 4xx (429 included) is the receiver saying "never", so the
notification is marked rejected and not retried. A notification older than `max_age_s` is
given up on (expired). Blocking I/O on purpose (http.client): the delivery loop runs in its own
thread, and works the same under gevent (the Locust master) as in a plain process.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from alerts.clock import Clock
from alerts.metrics import AlertMetrics
from alerts.outbox import Outbox, OutboxItem
from alerts.signing import signature_headers

__all__ = ["Backoff", "Deliverer", "HttpTransport", "Transport", "TransportError"]

log = logging.getLogger(__name__)


class TransportError(OSError):
    """The request did not get an HTTP answer (refused, reset, timed out)."""


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        """POST and return the status code; raise TransportError without an answer."""
        ...


class HttpTransport:
    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url}")
        connection_type = (http.client.HTTPSConnection if parts.scheme == "https"
                           else http.client.HTTPConnection)
        connection = connection_type(parts.hostname, parts.port, timeout=timeout_s)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", path, body=body, headers=dict(headers))
            response = connection.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): base x 2^(n-1), capped, times a jitter in [0.5, 1)."""

    base_s: float = 1.0
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        jitter: float = 0.5 + rng.random() / 2
        return float(ceiling * jitter)


class Deliverer:
    """Sends what the outbox has due. `deliver_due()` is one pass; `run()` loops until stopped.
    """

    def __init__(self, outbox: Outbox, *, clock: Clock, metrics: AlertMetrics,
                 transport: Transport | None = None, secret: str | None = None,
                 backoff: Backoff = Backoff(), max_age_s: float = 86_400,
                 timeout_s: float = 10.0, rng: random.Random | None = None) -> None:
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.transport = transport or HttpTransport()
        self.secret = secret.encode() if secret else None
        self.backoff = backoff
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.rng = rng or random.Random()
        self.wakeup = threading.Event()  # set when something was enqueued

    def deliver_due(self) -> int:
        items = self.outbox.due(self.clock.now())
        for item in items:
            self._attempt(item)
        self.metrics.pending.set(self.outbox.pending())
        return len(items)

    def _attempt(self, item: OutboxItem) -> None:
        now = self.clock.now()
        if now - item.created_at > self.max_age_s:
            self.outbox.failed(item.id, "expired", f"older than {self.max_age_s:g} s", now)
            self.metrics.finished.labels("expired").inc()
            return
        headers = {"Content-Type": "application/json", "User-Agent": "pitchey-alerts/1"}
        if self.secret is not None:
            headers.update(signature_headers(self.secret, item.body, now))
        try:
            status = self.transport.post(item.url, item.body, headers, self.timeout_s)
        except TransportError as exc:
            self._retry(item, "connection_error", str(exc))
            return
        if 200 <= status < 300:
            done = self.clock.now()
            self.outbox.delivered(item.id, done)
            self.metrics.attempts.labels("success").inc()
            self.metrics.finished.labels("delivered").inc()
            self.metrics.delivery_seconds.observe(max(0.0, done - item.created_at))
        elif 400 <= status < 500:
            self.outbox.failed(item.id, "rejected", f"HTTP {status}", now)
            self.metrics.attempts.labels("client_error").inc()
            self.metrics.finished.labels("rejected").inc()
        else:
            self._retry(item, "server_error", f"HTTP {status}")

    def _retry(self, item: OutboxItem, result: str, error: str) -> None:
        self.metrics.attempts.labels(result).inc()
        delay = self.backoff.delay(item.attempts + 1, self.rng)
        self.outbox.retry_at(item.id, self.clock.now() + delay, error)

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Deliver until `stop` is set: wake when something is enqueued or a retry is due."""
        while not stop.is_set():
            try:
                self.deliver_due()
                due = self.outbox.next_attempt_at()
            except Exception:  # e.g. the outbox's disk: keep trying, never die silently
                log.exception("alert delivery pass failed; retrying")
                due = None
            wait = idle_s if due is None else min(idle_s, max(0.0, due - self.clock.now()))
            if wait > 0:
                self.clock.wait(self.wakeup, wait)
            self.wakeup.clear()
