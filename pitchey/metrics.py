"""The service's Prometheus metrics, on a registry the caller injects.

Names follow the OpenTelemetry semantic conventions where one exists
(`http.server.request.duration` in seconds, with the recommended buckets, which put a
boundary at 0.1 s for the 100 ms SLO). Labels are bounded: the route template, never the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.process_collector import ProcessCollector

__all__ = ["DURATION_BUCKETS", "InFlight", "ServiceMetrics", "RequestRecorder"]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


class InFlight:
    """Requests being served right now."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def value(self) -> float:
        return float(self.count)


@dataclass
class RequestRecorder:
    """Cached label children per (route, method, status): `labels()` is the slow part of
    prometheus_client (a dict lookup under a lock plus tuple building), so the hot path
    resolves each child once and then only calls `observe()`."""

    histogram: Histogram
    _children: dict[tuple[str, str, int], MetricWrapperBase] = field(default_factory=dict)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self.histogram.labels(route, method, str(status))
            self._children[key] = child
        child.observe(seconds)  # type: ignore[attr-defined]


class ServiceMetrics:
    """Every series the service exports. One instance per app, on an injected registry."""

    def __init__(self, registry: CollectorRegistry, *, process: bool = True) -> None:
        self.registry = registry
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_route", "http_request_method", "http_response_status_code"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.requests = RequestRecorder(self.request_duration)
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            registry=registry,
        )
        # A plain integer the hot path adjusts without taking the gauge's lock (one event
        # loop thread writes it); the gauge reads it at scrape time.
        self.in_flight = InFlight()
        self.active_requests.set_function(self.in_flight.value)
        self.db_pool_in_use = Gauge(
            "pitchey_db_pool_connections_in_use",
            "Database connections currently checked out of the pool.",
            registry=registry,
        )
        self.db_pool_size = Gauge(
            "pitchey_db_pool_connections_max",
            "Size of the database connection pool.",
            registry=registry,
        )
        self.db_up = Gauge(
            "pitchey_db_up",
            "1 when the last database health probe succeeded, else 0.",
            registry=registry,
        )
        self.db_queries = Counter(
            "pitchey_db_queries",
            "Database statements executed.",
            ["operation"],
            registry=registry,
        )
        self.db_slow_queries = Counter(
            "pitchey_db_slow_queries",
            "Database statements slower than the slow-query threshold (100 ms).",
            ["operation"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "pitchey_cache_lookups",
            "Cache lookups.",
            ["cache"],
            registry=registry,
        )
        self.cache_hits = Counter(
            "pitchey_cache_hits",
            "Cache lookups that found a fresh entry.",
            ["cache"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "pitchey_rate_limited_requests",
            "Requests refused with 429 by the per-client rate limit.",
            registry=registry,
        )
        self.storage_used_bytes = Gauge(
            "pitchey_storage_used_bytes",
            "Bytes used by the service's storage (database file or database size).",
            registry=registry,
        )
        self.storage_capacity_bytes = Gauge(
            "pitchey_storage_capacity_bytes",
            "Bytes the storage may grow to (free disk plus used for SQLite).",
            registry=registry,
        )
        self.build_info = Gauge(
            "pitchey_build_info",
            "Build and runtime facts; the value is always 1.",
            ["version", "region", "backend", "python_version"],
            registry=registry,
        )
        # Children for the fixed 'app' cache label, resolved once for the hot path.
        self.app_cache_lookups = self.cache_lookups.labels("app")
        self.app_cache_hits = self.cache_hits.labels("app")
        if process:
            ProcessCollector(registry=registry)
