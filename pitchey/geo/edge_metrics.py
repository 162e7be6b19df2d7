"""What the edge exports: Prometheus series on an injected registry, and the /status document.

The per-region gauges (pitchey_region_*) are read from the live region state at scrape time
by a custom collector, so the request path never touches them.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pitchey.geo.breaker import BreakerState
from pitchey.geo.regions import GeoConfig
from pitchey.geo.routing import Health
from pitchey.geo.upstream import RegionRuntime
from pitchey.metrics import DURATION_BUCKETS, RequestHistogram

__all__ = ["EdgeMetrics", "RegionCollector", "RequestHistogram", "status_document"]


class RegionCollector(Collector):
    """pitchey_region_{up,degraded,breaker_state,in_flight,p95_seconds,weight,...}{region}."""

    def __init__(self, regions: Mapping[str, RegionRuntime], latency_extra: Any) -> None:
        self._regions = regions
        self._latency_extra = latency_extra

    def collect(self) -> Iterator[Metric]:
        families = {
            "up": GaugeMetricFamily(
                "pitchey_region_up",
                "1 when the region's worker answers its liveness check, else 0.",
                labels=["region"]),
            "degraded": GaugeMetricFamily(
                "pitchey_region_degraded",
                "1 when the region answers but a dependency check (database, services) fails.",
                labels=["region"]),
            "breaker": GaugeMetricFamily(
                "pitchey_region_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.", labels=["region"]),
            "in_flight": GaugeMetricFamily(
                "pitchey_region_in_flight",
                "Requests the edge has in flight to the region.", labels=["region"]),
            "p95": GaugeMetricFamily(
                "pitchey_region_p95_seconds",
                "Recent p95 of upstream calls to the region (NaN before enough calls).",
                labels=["region"]),
            "weight": GaugeMetricFamily(
                "pitchey_region_weight", "Routing weight of the region.", labels=["region"]),
            "timeout": GaugeMetricFamily(
                "pitchey_region_timeout_seconds",
                "Adaptive upstream timeout currently applied to the region.",
                labels=["region"]),
            "extra": GaugeMetricFamily(
                "pitchey_region_injected_delay_seconds",
                "Extra delay injected into the region through the latency model.",
                labels=["region"]),
        }
        upstream = CounterMetricFamily(
            "pitchey_edge_upstream_requests",
            "Calls from the edge to a region, by outcome (ok, error_status, slow, timeout, "
            "refused, unreachable, dropped, error).", labels=["region", "outcome"])
        for name, runtime in self._regions.items():
            for outcome, count in sorted(runtime.outcomes.items()):
                upstream.add_metric([name, outcome], float(count))
            health = runtime.health.health
            p95 = runtime.timeout.percentile_s()
            families["up"].add_metric([name], 0.0 if health is Health.DOWN else 1.0)
            families["degraded"].add_metric([name], 1.0 if health is Health.DEGRADED else 0.0)
            families["breaker"].add_metric([name], float(runtime.breaker.state))
            families["in_flight"].add_metric([name], float(runtime.in_flight))
            families["p95"].add_metric([name], math.nan if p95 is None else p95)
            families["weight"].add_metric([name], float(runtime.region.weight))
            families["timeout"].add_metric([name], runtime.timeout.current_s())
            families["extra"].add_metric([name], float(self._latency_extra(name)))
        yield from families.values()
        yield upstream


class EdgeMetrics:
    """The edge's own series. Names shared with the regional workers keep their meaning:
    the request histogram measures what clients of the edge see."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = RequestHistogram(DURATION_BUCKETS)
        registry.register(self.requests)
        # counted as a plain int on the hot path, read at scrape time
        self.active = 0
        self.active_requests = Gauge(
            "http_server_active_requests", "Number of active HTTP server requests.",
            registry=registry)
        self.active_requests.set_function(lambda: float(self.active))
        cache_lookups = Counter("pitchey_cache_lookups", "Cache lookups.", ["cache"],
                                registry=registry)
        cache_hits = Counter("pitchey_cache_hits", "Cache lookups that found a fresh entry.",
                             ["cache"], registry=registry)
        self.edge_cache_lookups = cache_lookups.labels("edge")
        self.edge_cache_hits = cache_hits.labels("edge")
        self.retries = Counter(
            "pitchey_edge_retries", "Requests sent on to another region after this one failed "
            "to connect.", ["region"], registry=registry)
        self.shed = Counter(
            "pitchey_edge_shed_requests", "Requests refused with 503 because the region was "
            "saturated, by priority class.", ["region", "priority_class"], registry=registry)
        self.coalesced = Counter(
            "pitchey_edge_coalesced_requests",
            "GET requests answered by an identical concurrent request's upstream call.",
            registry=registry)
        self.breaker_transitions = Counter(
            "pitchey_region_breaker_transitions", "Circuit breaker state changes.",
            ["region", "state"], registry=registry)
        self.info = Gauge(
            "pitchey_edge_info", "Edge facts; the value is always 1.",
            ["version", "routing", "primary_region", "python_version"], registry=registry)


def status_document(
    config: GeoConfig,
    regions: Mapping[str, RegionRuntime],
    *,
    version: str,
    started_at: float,
    started_wall: float,
    cache_entries: int,
    cache_lookups: int,
    cache_hits: int,
    coalesced: int,
    latency_enabled: bool,
    extra_delay: Any,
    now: float,
) -> dict[str, Any]:
    """The edge's /status: every region with health, breaker, in-flight, p95, weight, pid."""
    supervisor = os.environ.get("PITCHEY_SUPERVISOR_PID")
    return {
        "service": "pitchey-edge",
        "role": "edge",
        "version": version,
        "pid": os.getpid(),
        "supervisor_pid": int(supervisor) if supervisor and supervisor.isdigit() else None,
        "python": platform.python_version(),
        "uptime_s": round(now - started_at, 1),
        "started_at": started_wall,
        "timestamp": time.time(),
        "config_source": config.source,
        "routing": config.routing,
        "primary_region": config.primary_region,
        "latency_model": latency_enabled,
        "health_check": {
            "interval_s": config.health.interval_s,
            "timeout_s": config.health.timeout_s,
            "retries": config.health.retries,
            "endpoints": list(config.health.endpoints),
        },
        "edge_cache": {
            "entries": cache_entries,
            "lookups": cache_lookups,
            "hits": cache_hits,
            "hit_rate": round(cache_hits / cache_lookups, 4) if cache_lookups else None,
        },
        "coalesced_requests": coalesced,
        "regions": [_region_status(runtime, extra_delay, now) for runtime in regions.values()],
    }


def _region_status(runtime: RegionRuntime, extra_delay: Any, now: float) -> dict[str, Any]:
    health = runtime.health
    breaker = runtime.breaker
    calls, failures = breaker.window()
    p95 = runtime.timeout.percentile_s()
    return {
        "name": runtime.name,
        "url": runtime.url,
        "health": health.health.value,
        "reason": health.reason,
        "checks": {
            endpoint: {"ok": r.ok, "status": r.status, "latency_ms": r.latency_ms,
                       "error": r.error, "attempts": r.attempts}
            for endpoint, r in health.probes.items()
        },
        "last_check_age_s": None if health.last_check_at is None
        else round(now - health.last_check_at, 3),
        "breaker": BreakerState(breaker.state).name.lower(),
        "breaker_window": {"calls": calls, "failures": failures},
        "in_flight": runtime.in_flight,
        "p95_ms": None if p95 is None else round(p95 * 1000.0, 2),
        "timeout_s": round(runtime.timeout.current_s(), 3),
        "weight": runtime.region.weight,
        "capacity": runtime.region.capacity,
        "max_in_flight": runtime.region.max_in_flight,
        "colos": list(runtime.region.colos),
        "pid": health.pid,
        "requests": runtime.requests,
        "failures": runtime.failures,
        "shed": runtime.shed,
        "retried_away": runtime.retried_away,
        "ejections": health.ejections,
        "injected_delay_ms": round(float(extra_delay(runtime.name)) * 1000.0, 1),
    }
