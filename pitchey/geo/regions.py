"""The geo topology's configuration: regions, routing, health checks, breakers, caches,
timeouts, priorities, the edge's limits and the latency model, as frozen dataclasses whose
defaults are the figures of "Pitchey Platform - Auto-Scaling & Load Balancing Architecture"
(the `SEED_*` names: that document was the "seed" of the geo topology) or, where it says
nothing, assumptions; docs/targets.md lists each with its section.
`pitchey.geo.config_file.load_geo_config` reads them from YAML; `pitchey.geo.haproxy_config`
turns them into the HAProxy edge's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ROUTING_STRATEGIES",
    "SEED_REGIONS",
    "DEFAULT_BACKBONE_MS",
    "Region",
    "HealthConfig",
    "BreakerConfig",
    "CoalescingConfig",
    "CacheConfig",
    "TimeoutConfig",
    "EdgeConfig",
    "PriorityClass",
    "PriorityConfig",
    "LatencyConfig",
    "SupervisorConfig",
    "GeoConfig",
    "default_one_way_ms",
    "default_geo_config",
]

ROUTING_STRATEGIES = ("geo", "weighted", "least_connections")


@dataclass(frozen=True)
class Region:
    """One regional worker. `latency_ms` is the document's regional latency ("Performance
    Benchmarks › Current Performance"): the round trip of a client to the worker of its own
    region, an input of the latency model, not a target (docs/targets.md). `max_in_flight` is
    the number of requests the edge lets a region hold at once (HAProxy's server `maxconn`);
    more wait in its queue, highest priority first."""

    name: str
    colos: tuple[str, ...]
    weight: int
    capacity: int
    latency_ms: float
    max_in_flight: int


def _seed_region(name: str, colos: tuple[str, ...], weight: int, capacity: int,
                 latency_ms: float) -> Region:
    # The document's capacity counts concurrent users (connections); one user keeps about one
    # request in flight per hundred (think time >> response time), hence capacity // 100
    # (an assumption).
    return Region(name, colos, weight, capacity, latency_ms, max(1, capacity // 100))


# The document's REGIONS (§ Load Balancing Strategy › 1. Geographic Distribution: colos,
# weight, capacity) and "Regional Latencies" (§ Performance Benchmarks › Current Performance).
SEED_REGIONS: tuple[Region, ...] = (
    _seed_region("us-east", ("IAD", "EWR", "BOS", "ATL"), 30, 30_000, 35.0),
    _seed_region("us-west", ("LAX", "SJC", "SEA", "PDX"), 25, 25_000, 42.0),
    _seed_region("europe", ("LHR", "CDG", "FRA", "AMS"), 25, 25_000, 48.0),
    _seed_region("asia", ("NRT", "SIN", "HKG", "SYD"), 20, 20_000, 65.0),
)

# One-way backbone transit between two regions, on top of both regions' access latency
# (half of each region's latency_ms). An assumption, not the document's: roughly public
# inter-region round trips halved, minus the access part. It is what makes us-west, not
# us-east, the nearest region to asia.
DEFAULT_BACKBONE_MS: Mapping[frozenset[str], float] = MappingProxyType({
    frozenset({"us-east", "us-west"}): 15.0,
    frozenset({"us-east", "europe"}): 20.0,
    frozenset({"us-east", "asia"}): 50.0,
    frozenset({"us-west", "europe"}): 35.0,
    frozenset({"us-west", "asia"}): 25.0,
    frozenset({"europe", "asia"}): 45.0,
})
# Transit assumed between two regions the table above does not know.
UNKNOWN_BACKBONE_MS = 40.0


def default_one_way_ms(regions: tuple[Region, ...]) -> dict[tuple[str, str], float]:
    """The default delay matrix built from the regions' latencies: a client reaching its own
    region pays half its `latency_ms` each way (so the round trip is that figure);
    reaching another region adds the backbone transit between the two."""
    matrix: dict[tuple[str, str], float] = {}
    for a in regions:
        for b in regions:
            if a.name == b.name:
                matrix[(a.name, b.name)] = a.latency_ms / 2.0
            else:
                transit = DEFAULT_BACKBONE_MS.get(frozenset({a.name, b.name}), UNKNOWN_BACKBONE_MS)
                matrix[(a.name, b.name)] = a.latency_ms / 2.0 + b.latency_ms / 2.0 + transit
    return matrix


@dataclass(frozen=True)
class HealthConfig:
    """The document's HEALTH_CONFIG (§ Load Balancing Strategy › 3. Health Checking). HAProxy
    probes the first endpoint (liveness) every `interval_s`, each probe bounded by `timeout_s`;
    `retries` failed probes in a row mark the region down (`fall`), re-probing every
    `timeout_s` meanwhile (`fastinter`). The edge's status agent probes the other endpoints: a
    region that fails them is degraded."""

    interval_s: float = 30.0
    timeout_s: float = 5.0
    retries: int = 3
    endpoints: tuple[str, ...] = ("/health", "/health/db", "/health/services")


@dataclass(frozen=True)
class BreakerConfig:
    """The document's circuit-breaker THRESHOLDS (§ Load Balancing Strategy › 4. Circuit
    Breaker Pattern), as HAProxy's passive outlier ejection implements them: a call fails
    when it cannot connect, times out or answers 500/502/503/504 (`observe layer7`);
    error_threshold_pct of volume_threshold calls in a row open the breaker (`error-limit`,
    `on-error mark-down`); while open the region is probed every
    sleep_window_s / success_threshold seconds (`downinter`), then, once a probe passes, every
    `health.timeout_s` (`fastinter`), and closes after success_threshold passing probes in a
    row (`rise`): half-open recovery takes about the sleep window (measured 25 s of 30)."""

    error_threshold_pct: float = 50.0
    volume_threshold: int = 20
    sleep_window_s: float = 30.0
    success_threshold: int = 5

    @property
    def consecutive_errors(self) -> int:
        """HAProxy counts errors in a row, not a rate: the document's rate times its volume."""
        return max(1, round(self.volume_threshold * self.error_threshold_pct / 100.0))


@dataclass(frozen=True)
class CoalescingConfig:
    """The document's COALESCING_CONFIG (§ Performance Optimization › 1. Request Coalescing)."""

    enabled: bool = True
    window_ms: float = 100.0
    max_batch: int = 50


@dataclass(frozen=True)
class CacheConfig:
    """The document's CACHE_LAYERS TTLs (§ Performance Optimization › 2. Multi-tier Caching;
    sizes are assumptions). A TTL of 0 turns that tier off. `edge_paths` are the path
    prefixes whose anonymous GETs the edge caches; a successful write under an
    `edge_invalidate_on` prefix clears the edge tier."""

    edge_ttl_s: float = 300.0
    application_ttl_s: float = 60.0
    query_ttl_s: float = 30.0
    edge_paths: tuple[str, ...] = ("/api/pitches",)
    edge_invalidate_on: tuple[str, ...] = ("/api/pitches", "/api/info-requests")
    edge_size_mb: int = 64
    query_max_entries: int = 10_000


@dataclass(frozen=True)
class TimeoutConfig:
    """The edge's timeouts. `server_s` is the document's initial ADAPTIVE_TIMEOUTS value
    (§ Performance Optimization › 3. Adaptive Timeouts; HAProxy's timeout is fixed, not
    adaptive); `http_request_s` bounds how long a client may take to send its request headers
    (slow clients), `keep_alive_s` how long an idle connection stays open, `queue_s` how long a
    request may wait for a busy region before a 503 (those three are assumptions)."""

    server_s: float = 30.0
    connect_s: float = 5.0
    client_s: float = 30.0
    http_request_s: float = 10.0
    keep_alive_s: float = 10.0
    queue_s: float = 5.0


@dataclass(frozen=True)
class PriorityClass:
    name: str
    priority: int
    paths: tuple[str, ...]


# The document's RESOURCE_PRIORITIES (§ Performance Optimization › 4. Resource Prioritization);
# the path prefixes that put a request in each class.
SEED_PRIORITIES: tuple[PriorityClass, ...] = (
    PriorityClass("authentication", 10, ("/api/auth/",)),
    PriorityClass("api", 8, ("/api/",)),
    PriorityClass("websocket", 7, ("/ws",)),
    PriorityClass("static", 5, ("/static/", "/assets/", "/favicon.ico")),
    PriorityClass("analytics", 2, ("/api/analytics/",)),
)


@dataclass(frozen=True)
class PriorityConfig:
    """Requests waiting for a busy region leave its queue highest priority first (HAProxy's
    `set-priority-class`; writes rank with authentication). A request that finds the queue
    full, or waits longer than `timeouts.queue_s`, gets 503 with Retry-After."""

    classes: tuple[PriorityClass, ...] = SEED_PRIORITIES
    default_class: str = "api"
    retry_after_s: int = 1


@dataclass(frozen=True)
class LatencyConfig:
    """One-way delays in milliseconds between a client's region and a worker's region."""

    enabled: bool = True
    one_way_ms: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: MappingProxyType(default_one_way_ms(SEED_REGIONS))
    )


@dataclass(frozen=True)
class EdgeConfig:
    """HAProxy's own limits. `max_connections` is the document's "Max Concurrent Connections";
    `threads` stays at 1 on a two-core machine so that the workers keep a core; `retries` is
    how often a request whose connection failed is tried again (redispatched: another region
    with weighted/least_connections routing, a region's fallback once its own worker is
    marked down with geo routing). `max_queue` requests may wait for a busy region; more
    get 503 with Retry-After at once."""

    max_connections: int = 100_000
    threads: int = 1
    retries: int = 3
    max_queue: int = 1_000


@dataclass(frozen=True)
class SupervisorConfig:
    """A worker that dies is restarted after `restart_delay_s` (SIGUSR1 to the supervisor
    restarts dead workers at once)."""

    restart_delay_s: float = 5.0
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class GeoConfig:
    regions: tuple[Region, ...] = SEED_REGIONS
    primary_region: str = "us-east"
    default_region: str = "us-east"
    routing: str = "geo"
    affinity_cookie: str = "pitchey_region"
    health: HealthConfig = HealthConfig()
    breaker: BreakerConfig = BreakerConfig()
    coalescing: CoalescingConfig = CoalescingConfig()
    cache: CacheConfig = CacheConfig()
    timeouts: TimeoutConfig = TimeoutConfig()
    priorities: PriorityConfig = PriorityConfig()
    latency: LatencyConfig = LatencyConfig()
    edge: EdgeConfig = EdgeConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    source: str = "<defaults>"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(region.name for region in self.regions)

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)


def default_geo_config() -> GeoConfig:
    """The four regions and settings of the Auto-Scaling document (docs/targets.md)."""
    return GeoConfig()
