"""Forwarding one request from the edge to a region, and failing over to the next one.

What is retried, and why: a refused connection proves the request never reached the worker,
so it is sent to the next region (any method when `retry_refused_writes`, else GET/HEAD
only). A GET or HEAD that could not connect for another reason, or whose connection dropped
before the answer's headers arrived, is also retried once: it is idempotent. Nothing else
is: a timeout or an error status may mean the worker did the work, and resending would do it
twice or pile load on a struggling region.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pitchey.geo.breaker import CircuitBreaker
from pitchey.geo.deadlines import Deadlines
from pitchey.geo.health import RegionHealth
from pitchey.geo.http1 import Broken, ConnectFailed, ConnectRefused, Dropped, Http1Pool
from pitchey.geo.latency import LatencyModel
from pitchey.geo.priority import admits
from pitchey.geo.regions import GeoConfig, PriorityClass, Region
from pitchey.geo.routing import Candidate, Health, Router
from pitchey.geo.timeouts import AdaptiveTimeout

__all__ = [
    "UpstreamResponse",
    "RegionRuntime",
    "Forwarder",
    "Outcome",
    "ANSWERED",
    "HOP_BY_HOP",
    "SERVED_BY_HEADER",
    "forwardable_headers",
    "edge_error",
]

SERVED_BY_HEADER = "X-Pitchey-Served-By"
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class UpstreamResponse:
    """A whole answer: from a region, or made by the edge itself. `head` holds its header
    lines ("Name: value\r\n" each), without hop-by-hop ones or Content-Length."""

    status: int
    head: str
    body: bytes
    region: str | None
    outcome: str = "ok"
    content_length: int | None = None  # for HEAD: the length of the body it does not carry


class Outcome:
    """Labels of pitchey_edge_upstream_requests_total."""

    OK = "ok"
    ERROR_STATUS = "error_status"
    SLOW = "slow"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    DROPPED = "dropped"
    ERROR = "error"
    UNREACHABLE = "unreachable"


# Outcomes where the region itself answered (its status and body are passed on).
ANSWERED = frozenset({Outcome.OK, Outcome.ERROR_STATUS, Outcome.SLOW})
# Outcomes after which a request may be sent to another region (see _may_retry).
_RETRYABLE = frozenset({Outcome.REFUSED, Outcome.UNREACHABLE, Outcome.DROPPED})


@dataclass
class RegionRuntime:
    """Everything the edge tracks about one region."""

    region: Region
    url: str
    health: RegionHealth
    breaker: CircuitBreaker
    timeout: AdaptiveTimeout
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    shed: int = 0
    retried_away: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    pool: Http1Pool = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"region {self.region.name}: upstream URL must be "
                             f"http://host:port, got {self.url!r}")
        self.pool = Http1Pool(parts.hostname, parts.port)

    @property
    def name(self) -> str:
        return self.region.name

    def candidate(self) -> Candidate:
        return Candidate(self.region.name, self.region.weight, self.in_flight,
                         self.health.health, self.breaker.would_allow())


def forwardable_headers(
    headers: Iterable[tuple[str, str]], peer: str | None, scheme: str, host: str | None
) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop ones, plus the X-Forwarded-* trail."""
    out: list[tuple[str, str]] = []
    previous_for: str | None = None
    has_proto = has_host = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP:
            continue
        if lowered == "x-forwarded-for":
            previous_for = value
            continue
        has_proto = has_proto or lowered == "x-forwarded-proto"
        has_host = has_host or lowered == "x-forwarded-host"
        out.append((name, value))
    if peer:
        out.append(("X-Forwarded-For", f"{previous_for}, {peer}" if previous_for else peer))
    elif previous_for:
        out.append(("X-Forwarded-For", previous_for))
    if not has_proto:
        out.append(("X-Forwarded-Proto", scheme))
    if host and not has_host:
        out.append(("X-Forwarded-Host", host))
    return out


async def _sleep_until(loop: asyncio.AbstractEventLoop, seconds: float,
                       deadline: float) -> None:
    """The latency model's delay, cut short by the call's deadline."""
    remaining = deadline - loop.time()
    await asyncio.sleep(max(0.0, min(seconds, remaining)))
    if seconds >= remaining:
        raise TimeoutError


def edge_error(status: int, code: str, message: str, retry_after: int | None = None,
               region: str | None = None, outcome: str = "edge") -> UpstreamResponse:
    import json

    body = json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()
    head = "Content-Type: application/json; charset=utf-8\r\n"
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    return UpstreamResponse(status, head, body, region, outcome)


class Forwarder:
    """Chooses the region(s) for a request and performs the upstream calls."""

    def __init__(
        self,
        config: GeoConfig,
        regions: Mapping[str, RegionRuntime],
        router: Router,
        latency: LatencyModel,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_outcome: Callable[[RegionRuntime, str], None] | None = None,
        on_retry: Callable[[RegionRuntime], None] | None = None,
        on_shed: Callable[[RegionRuntime, PriorityClass], None] | None = None,
    ) -> None:
        self._config = config
        self._regions = regions
        self._router = router
        self._latency = latency
        self._clock = clock
        self._slow_call_s = config.breaker.slow_call_s
        self._retry_after = config.priorities.retry_after_s
        self._on_outcome = on_outcome
        self._on_retry = on_retry
        self._on_shed = on_shed
        self._runtimes = tuple(regions.values())
        self._deadlines = Deadlines()
        # Geo orders per client region while every region is healthy with a closed breaker
        # (the common case), so the hot path does not rebuild and sort candidates. Any
        # health or breaker change bumps the version and the cache is rebuilt.
        self._steady_orders: dict[str | None, list[str]] = {}
        self._version = 0
        self._steady_version = -1
        self._steady = False
        for runtime in self._runtimes:
            runtime.health.listeners.append(self._changed)
            runtime.breaker.add_listener(self._changed)

    def order(self, client_region: str | None, affinity: str | None) -> list[str]:
        """The regions to try, in order (callers must not change the list)."""
        if self._steady_version != self._version:
            self._steady_version = self._version
            self._steady_orders.clear()
            self._steady = self._router.strategy == "geo" and all(
                r.health.health is Health.UP and r.breaker.closed for r in self._runtimes)
        steady = self._steady
        if steady:
            cached = self._steady_orders.get(client_region)
            if cached is not None:
                return cached
        candidates = [runtime.candidate() for runtime in self._runtimes]
        order = self._router.order(candidates, client_region, affinity)
        if steady:
            self._steady_orders[client_region] = order
        if order:
            return order
        # Panic mode (Envoy's term): every region looks down. Health checks can be wrong,
        # so try the regions whose breakers still allow calls rather than refuse everything.
        panic = [Candidate(c.name, c.weight, c.in_flight, Health.UP, c.breaker_allows)
                 for c in candidates]
        return self._router.order(panic, client_region, affinity)

    async def forward(
        self,
        method: str,
        path_qs: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client_region: str | None,
        affinity: str | None,
        priority: PriorityClass,
    ) -> UpstreamResponse:
        order = self.order(client_region, affinity)
        if not order:
            return edge_error(503, "no_region_available",
                              "no region can take requests right now", self._retry_after)
        retried = False
        failed: UpstreamResponse | None = None
        for name in order:
            runtime = self._regions[name]
            if not runtime.breaker.allow():
                continue  # its half-open trial slots filled up since the order was made
            if not admits(priority.priority, runtime.in_flight, runtime.region.max_in_flight):
                runtime.breaker.release()
                runtime.shed += 1
                if self._on_shed is not None:
                    self._on_shed(runtime, priority)
                return edge_error(503, "overloaded",
                                  f"region {name} is saturated; {priority.name} requests are "
                                  "shed first", self._retry_after, region=name, outcome="shed")
            try:
                response = await self._call(runtime, method, path_qs, headers, body,
                                            client_region)
            except asyncio.CancelledError:
                runtime.breaker.release()  # the client left: the call has no outcome
                raise
            if response.outcome not in _RETRYABLE:
                return response
            if retried or not self._may_retry(method, response.outcome):
                return response
            failed = response
            retried = True
            runtime.retried_away += 1
            if self._on_retry is not None:
                self._on_retry(runtime)
        if failed is not None:
            return failed  # nowhere left to send it: the failure itself is the answer
        return edge_error(503, "no_region_available", "every region failed to answer",
                          self._retry_after)

    def _changed(self, _: object) -> None:
        self._version += 1

    async def close(self) -> None:
        await self._deadlines.close()
        for runtime in self._regions.values():
            runtime.pool.close()

    def _may_retry(self, method: str, outcome: str) -> bool:
        if method in _IDEMPOTENT:
            return True
        return outcome == Outcome.REFUSED and self._config.retry_refused_writes

    async def _call(
        self,
        runtime: RegionRuntime,
        method: str,
        path_qs: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client_region: str | None,
    ) -> UpstreamResponse:
        name = runtime.name
        latency = self._latency
        runtime.in_flight += 1
        runtime.requests += 1
        started = time.perf_counter()
        timeout_s = runtime.timeout.current_s()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            outbound = latency.outbound_s(client_region, name)
            if outbound:
                await _sleep_until(loop, outbound, deadline)
            answer = await runtime.pool.request(method, path_qs, headers, body,
                                                deadline=deadline, deadlines=self._deadlines)
            inbound = latency.one_way_s(name, client_region)
            if inbound:
                await _sleep_until(loop, inbound, deadline)
        except TimeoutError:
            return self._failed(runtime, Outcome.TIMEOUT, 504, "upstream_timeout",
                                f"region {name} did not answer within {timeout_s:.1f} s")
        except ConnectRefused as exc:
            runtime.health.eject(f"connection refused ({exc})", self._clock())
            return self._failed(runtime, Outcome.REFUSED, 502, "upstream_unreachable",
                                f"region {name} refused the connection")
        except ConnectFailed:
            return self._failed(runtime, Outcome.UNREACHABLE, 502, "upstream_unreachable",
                                f"cannot connect to region {name}")
        except Dropped:
            return self._failed(runtime, Outcome.DROPPED, 502, "upstream_failed",
                                f"region {name} dropped the connection before answering")
        except Broken:
            return self._failed(runtime, Outcome.ERROR, 502, "upstream_failed",
                                f"region {name} broke off its answer")
        finally:
            runtime.in_flight -= 1
        elapsed = time.perf_counter() - started
        status = answer.status
        if status >= 500:
            outcome = Outcome.ERROR_STATUS
        else:
            outcome = Outcome.SLOW if elapsed > self._slow_call_s else Outcome.OK
            runtime.timeout.observe(elapsed)
        self._record(runtime, outcome)
        return UpstreamResponse(status, answer.head, answer.body, name, outcome,
                                answer.content_length if method == "HEAD" else None)

    def _failed(self, runtime: RegionRuntime, outcome: str, status: int, code: str,
                message: str) -> UpstreamResponse:
        self._record(runtime, outcome)
        return edge_error(status, code, message, region=runtime.name, outcome=outcome)

    def _record(self, runtime: RegionRuntime, outcome: str) -> None:
        success = outcome == Outcome.OK
        runtime.breaker.record(success)
        if not success:
            runtime.failures += 1
        runtime.outcomes[outcome] = runtime.outcomes.get(outcome, 0) + 1
        if self._on_outcome is not None:
            self._on_outcome(runtime, outcome)
