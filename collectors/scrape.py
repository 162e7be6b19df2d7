"""Scraping /metrics and /status of the edge and each regional worker during a run.

Pure parts: `parse_metrics` (Prometheus text via prometheus_client's parser) and
`flatten_status` (the /status JSON) turn a response body into service samples. The shell,
`Scraper`, polls every target every `interval_s` on its own thread — a greenlet inside the
gevent-patched Locust master, where urllib's sockets are cooperative — and writes the samples
into a `RunWriter` and the `SeriesStore` (the live series the embedded alert evaluator reads).
A failed scrape becomes an `up` 0 sample plus a `scrape_gap` event; it never raises out of the
loop or stops the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from collectors.rundir import RunWriter, ServiceSample
from collectors.series import SeriesStore

__all__ = [
    "ADMIN_TOKEN_VARIABLE",
    "DEFAULT_RETENTION_S",
    "Fetch",
    "ScrapeTarget",
    "Scraper",
    "flatten_status",
    "parse_metrics",
    "targets_from_mapping",
]

log = logging.getLogger(__name__)

DEFAULT_RETENTION_S = 3600.0  # what a scraper's own store keeps when it is given none
ADMIN_TOKEN_VARIABLE = "PITCHEY_ADMIN_TOKEN"
Fetch = Callable[[str, float], bytes]  # (url, timeout_s) -> body; raises on any failure
_STATE_KEYS = ("status", "state")
_MAX_STRING = 40


@dataclass(frozen=True)
class ScrapeTarget:
    """One process to scrape: `name` becomes the `target` column (e.g. "edge", "eu-west")."""

    name: str
    base_url: str
    metrics_path: str | None = "/metrics"
    status_path: str | None = "/status"

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def targets_from_mapping(targets: Mapping[str, str]) -> list[ScrapeTarget]:
    """{"edge": "http://127.0.0.1:8001", "us-east": "http://127.0.0.1:8002"} -> targets."""
    return [ScrapeTarget(name, url) for name, url in targets.items()]


def parse_metrics(text: str, t: float, target: str) -> list[ServiceSample]:
    """Every sample of a Prometheus text exposition except `*_created` (creation times)."""
    samples: list[ServiceSample] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            samples.append({"t": t, "target": target, "metric": sample.name,
                            "labels": dict(sample.labels), "value": float(sample.value)})
    return samples


def flatten_status(body: Any, t: float, target: str) -> list[ServiceSample]:
    """Numeric and boolean leaves as `status.<dotted.path>`; short strings under a "status" or
    "state" key as an info-style sample (value 1, label `value`)."""
    samples: list[ServiceSample] = []
    for path, value in _leaves(body, "status"):
        if isinstance(value, bool):
            samples.append(_status_sample(t, target, path, {}, 1.0 if value else 0.0))
        elif isinstance(value, int | float):
            if math.isfinite(float(value)):
                samples.append(_status_sample(t, target, path, {}, float(value)))
        elif isinstance(value, str) and path.rsplit(".", 1)[-1] in _STATE_KEYS:
            if len(value) <= _MAX_STRING:
                samples.append(_status_sample(t, target, path, {"value": value}, 1.0))
    return samples


def _status_sample(
    t: float, target: str, metric: str, labels: dict[str, str], value: float
) -> ServiceSample:
    return {"t": t, "target": target, "metric": metric, "labels": labels, "value": value}


def _leaves(node: Any, path: str, depth: int = 0) -> Iterable[tuple[str, Any]]:
    if depth > 8:
        return
    if isinstance(node, Mapping):
        for key, child in node.items():
            yield from _leaves(child, f"{path}.{key}", depth + 1)
    elif isinstance(node, list):
        for number, child in enumerate(node[:64]):
            yield from _leaves(child, f"{path}.{number}", depth + 1)
    else:
        yield path, node


def urllib_fetch(url: str, timeout_s: float) -> bytes:
    """GET `url`; raises on a connection error, a timeout or a non-2xx answer.

    With PITCHEY_ADMIN_TOKEN in the environment it is sent as a bearer token: a deployment's
    /status answers only loopback peers or that token, and a run against a remote
    deployment would otherwise lose its service series. The token is never logged (a
    refused scrape is recorded as "HTTP 403")."""
    headers = {"Accept": "text/plain, application/json"}
    token = os.environ.get(ADMIN_TOKEN_VARIABLE)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our URLs
        body: bytes = response.read()
        return body


class Scraper:
    """Polls every target's /metrics and /status into a RunWriter and a SeriesStore."""

    def __init__(
        self,
        targets: Mapping[str, str] | Sequence[ScrapeTarget],
        *,
        writer: RunWriter | None = None,
        store: SeriesStore | None = None,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        fetch: Fetch = urllib_fetch,
    ) -> None:
        self.targets = (targets_from_mapping(targets) if isinstance(targets, Mapping)
                        else list(targets))
        self.writer = writer
        self.store = store if store is not None else SeriesStore(retention_s=DEFAULT_RETENTION_S)
        self.interval_s = interval_s
        self.timeout_s = min(timeout_s, max(interval_s, 0.1))
        self._clock = clock
        self._fetch = fetch
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.scrapes = 0
        self.gaps = 0

    # one round -------------------------------------------------------------------------------
    def scrape_once(self, t: float | None = None) -> int:
        """Scrape every target once (sequentially); returns the number of failed scrapes."""
        return sum(self.scrape_target(target, t) for target in self.targets)

    def scrape_target(self, target: ScrapeTarget, t: float | None = None) -> int:
        """Scrape one target's endpoints once; returns how many of them failed."""
        failed = 0
        for path, parse in ((target.metrics_path, _parse_metrics_body),
                            (target.status_path, _parse_status_body)):
            if path is not None:
                failed += self._scrape(target, path, parse, self._clock() if t is None else t)
        return failed

    def _scrape(
        self, target: ScrapeTarget, path: str,
        parse: Callable[[bytes, float, str], list[ServiceSample]], t: float,
    ) -> int:
        url = target.url(path)
        started = time.perf_counter()
        try:
            samples = parse(self._fetch(url, self.timeout_s), t, target.name)
            error = None
        except Exception as exc:  # any failure of the target is a gap, never a crash
            samples, error = [], _describe(exc)
        elapsed = time.perf_counter() - started
        health: list[ServiceSample] = [
            {"t": t, "target": target.name, "metric": "up", "labels": {"endpoint": path},
             "value": 0.0 if error else 1.0},
            {"t": t, "target": target.name, "metric": "scrape_duration_seconds",
             "labels": {"endpoint": path}, "value": elapsed},
        ]
        self._record(samples + health)
        self.scrapes += 1
        if error is None:
            return 0
        self.gaps += 1
        if self.writer is not None:
            self.writer.add_event(t, "scrape_gap", target=target.name, endpoint=path, url=url,
                                  error=error)
        return 1

    def _record(self, samples: list[ServiceSample]) -> None:
        self.store.add_many(samples)
        if self.writer is not None:
            self.writer.add_service_samples(samples)

    # background loop -------------------------------------------------------------------------
    def start(self) -> None:
        """One daemon thread (greenlet under gevent) per target, ticking every interval_s."""
        if self._threads:
            raise RuntimeError("scraper already started")
        self._stop.clear()
        for target in self.targets:
            thread = threading.Thread(target=self._loop, args=(target,), daemon=True,
                                      name=f"scrape-{target.name}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loops and wait for them (a scrape in flight finishes first)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def __enter__(self) -> Scraper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, target: ScrapeTarget) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.scrape_target(target)
            except Exception:  # a writer problem must not kill the loop silently
                log.exception("recording a scrape of %s failed", target.name)
            next_tick += self.interval_s
            now = time.monotonic()
            if next_tick < now:  # overran: skip the missed ticks instead of bursting
                next_tick = now + self.interval_s - ((now - next_tick) % self.interval_s)
            self._stop.wait(next_tick - now)


def _parse_metrics_body(body: bytes, t: float, target: str) -> list[ServiceSample]:
    return parse_metrics(body.decode("utf-8"), t, target)


def _parse_status_body(body: bytes, t: float, target: str) -> list[ServiceSample]:
    return flatten_status(json.loads(body), t, target)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
