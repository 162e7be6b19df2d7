"""The service's Prometheus metrics, on a registry the caller injects.

Names follow the OpenTelemetry semantic conventions where one exists
(`http.server.request.duration` in seconds, with the recommended buckets, which put a
boundary at 0.1 s for the 100 ms SLO). Labels are bounded: the route template, never the path.

The per-request series (request histogram, in-flight count, cache lookups) are custom
collectors over plain integers rather than prometheus_client's Histogram/Counter: those take a
lock per observation (and `labels()` a lock plus tuple building per call), while an aiohttp
service mutates them from its one event-loop thread only. Cumulative buckets are assembled at
scrape time, which is rare; observing stays a dictionary lookup, a bisect and two additions.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = [
    "DURATION_BUCKETS",
    "InFlight",
    "LabelledCounter",
    "RequestHistogram",
    "ServiceMetrics",
]

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_REQUEST_LABELS = ["http_route", "http_request_method", "http_response_status_code"]


class InFlight:
    """Requests being served right now."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def value(self) -> float:
        return float(self.count)


class RequestHistogram(Collector):
    """`http_server_request_duration_seconds{http_route, http_request_method,
    http_response_status_code}` with per-bucket integer counts, no lock per observation."""

    def __init__(
        self,
        buckets: Sequence[float] = DURATION_BUCKETS,
        name: str = "http_server_request_duration_seconds",
        documentation: str = "Duration of HTTP server requests.",
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = [float(bound) for bound in buckets]
        self._labels = [
            floatToGoString(bound)  # type: ignore[no-untyped-call]
            for bound in self._bounds
        ] + ["+Inf"]
        # per series: one count per bucket (not cumulative), then the sum of the values
        self._series: dict[tuple[str, str, int], list[float]] = {}

    @property
    def bounds(self) -> list[float]:
        """The upper bounds, for callers that observe into `series()` lists themselves."""
        return self._bounds

    def series(self, route: str, method: str, status: int) -> list[float]:
        """The counts-then-sum list of one label set, created on first use. A caller on the
        hot path keeps it and observes inline: `counts[bisect_left(bounds, s)] += 1` and
        `counts[-1] += s` (the request wrapper does, per route)."""
        key = (route, method, status)
        counts = self._series.get(key)
        if counts is None:
            counts = self._series[key] = [0] * (len(self._bounds) + 1) + [0.0]
        return counts

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counts = self._series.get((route, method, status))
        if counts is None:
            counts = self.series(route, method, status)
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le)
        counts[bisect.bisect_left(self._bounds, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=_REQUEST_LABELS)
        for key, counts in sorted(self._series.items()):
            route, method, status = key
            cumulative = itertools.accumulate(counts[:-1])
            family.add_metric(
                [route, method, str(status)],
                [(label, float(total)) for label, total in zip(self._labels, cumulative,
                                                                strict=True)],
                sum_value=counts[-1],
            )
        yield family


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LabelledCounter(Collector):
    """A counter with one label whose children are plain floats (event-loop thread only)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self._children: dict[str, _CounterChild] = {}

    def labels(self, value: str) -> _CounterChild:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _CounterChild()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in sorted(self._children.items()):
            family.add_metric([value], child.value)
        yield family


class ServiceMetrics:
    """Every series the service exports. One instance per app, on an injected registry."""

    def __init__(self, registry: CollectorRegistry, *, process: bool = True) -> None:
        from prometheus_client.process_collector import ProcessCollector

        self.registry = registry
        self.requests = RequestHistogram()
        registry.register(self.requests)
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            registry=registry,
        )
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
        self.cache_lookups = LabelledCounter("pitchey_cache_lookups", "Cache lookups.", "cache")
        self.cache_hits = LabelledCounter(
            "pitchey_cache_hits", "Cache lookups that found a fresh entry.", "cache"
        )
        registry.register(self.cache_lookups)
        registry.register(self.cache_hits)
        self.rate_limited = Counter(
            "pitchey_rate_limited_requests",
            "Requests refused with 429 by the per-client rate limit.",
            registry=registry,
        )
        self.auth_failures = Counter(
            "pitchey_auth_failures",
            "Refused logins by portal and reason (unknown_account, wrong_password, "
            "wrong_portal, throttled).",
            ["portal", "reason"],
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
