"""The edge load balancer in front of the regional workers (seed 003).

Per request: answer from the edge cache tier when it may; otherwise classify the request's
priority, pick the region (routing + health + breakers), shed it with 503 when that region
is saturated for its priority, coalesce it with an identical GET already in flight, and
forward it with the latency model and an adaptive timeout, failing over on a failed
connection. The edge's own routes are /status, /metrics, /_edge/health and the loopback-only
/_edge/regions/{region}/latency fault injection; every other path is proxied.

The data path runs on `http_server` and `http1` (asyncio + httptools) rather than aiohttp's
server and client: measured on this machine kind, aiohttp on both sides cost the edge about
twice the CPU a regional worker spends on a cached read. Health checks, off the hot path,
use aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pitchey import __version__
from pitchey.geo.breaker import BreakerState, CircuitBreaker
from pitchey.geo.coalesce import Coalescer
from pitchey.geo.edge_metrics import EdgeMetrics, RegionCollector, status_document
from pitchey.geo.edgecache import EdgeCache
from pitchey.geo.generations import Generations, LocalGenerations
from pitchey.geo.health import HealthChecker, RegionHealth
from pitchey.geo.http_server import HttpRequest, HttpResponse, HttpServer, json_response
from pitchey.geo.latency import LatencyModel
from pitchey.geo.priority import PriorityClassifier
from pitchey.geo.regions import GeoConfig, PriorityClass
from pitchey.geo.routing import Router
from pitchey.geo.timeouts import AdaptiveTimeout
from pitchey.geo.upstream import (
    ANSWERED,
    SERVED_BY_HEADER,
    Forwarder,
    RegionRuntime,
    UpstreamResponse,
    forwardable_headers,
)
from pitchey.security import SECURITY_HEADERS

__all__ = [
    "EdgeServer",
    "EdgeState",
    "REGION_HEADER",
    "ROUTE_HEADER",
    "EDGE_CACHE_HEADER",
    "FAILED_REGION_HEADER",
    "EDGE_ERROR_HEADER",
    "main",
]

log = logging.getLogger("pitchey.geo.edge")

REGION_HEADER = "X-Pitchey-Region"
ROUTE_HEADER = "X-Pitchey-Route"
EDGE_CACHE_HEADER = "X-Pitchey-Edge-Cache"
FAILED_REGION_HEADER = "X-Pitchey-Failed-Region"
EDGE_ERROR_HEADER = "X-Pitchey-Edge-Error"
_PROXY_ROUTE = "proxy"
_MAX_BODY = 1024 * 1024
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
_LATENCY_PREFIX = "/_edge/regions/"
_SECURITY = list(SECURITY_HEADERS.items())
# searched in "\n" + head: a literal first character is much faster than a MULTILINE "^"
_ROUTE = re.compile(r"\nx-pitchey-route[ \t]*:[ \t]*([^\r\n]*)\r\n", re.IGNORECASE)
CoalesceKey = tuple[str, ...]


@dataclass
class EdgeState:
    config: GeoConfig
    regions: dict[str, RegionRuntime]
    forwarder: Forwarder
    latency: LatencyModel
    classifier: PriorityClassifier
    cache: EdgeCache
    coalescer: Coalescer[CoalesceKey, UpstreamResponse]
    metrics: EdgeMetrics
    region_names: dict[str, str]
    clock: Callable[[], float]
    started_at: float
    started_wall: float
    version: str

    def client_region(self, value: str | None) -> str | None:
        """The region named by X-Pitchey-Region: a region name or one of its colo codes."""
        if not value:
            return None
        return self.region_names.get(value.strip().lower())

    def status(self) -> dict[str, object]:
        return status_document(
            self.config, self.regions, version=self.version, started_at=self.started_at,
            started_wall=self.started_wall, cache_entries=len(self.cache),
            cache_lookups=self.cache.lookups, cache_hits=self.cache.hits,
            coalesced=self.coalescer.joined, latency_enabled=self.latency.enabled,
            extra_delay=self.latency.extra_s, now=self.clock())


def build_state(
    config: GeoConfig,
    upstreams: Mapping[str, str],
    registry: CollectorRegistry,
    generations: Generations,
    clock: Callable[[], float],
    version: str,
) -> EdgeState:
    missing = [name for name in config.names if name not in upstreams]
    if missing:
        raise ValueError(f"no upstream URL for region(s) {', '.join(missing)}")
    metrics = EdgeMetrics(registry)
    metrics.info.labels(version, config.routing, config.primary_region,
                        platform.python_version()).set(1)
    regions: dict[str, RegionRuntime] = {}
    for region in config.regions:
        name = region.name

        def transition(state: BreakerState, name: str = name) -> None:
            metrics.breaker_transitions.labels(name, state.name.lower()).inc()
            log.warning("region %s: breaker %s", name, state.name.lower())

        regions[name] = RegionRuntime(
            region=region,
            url=upstreams[name].rstrip("/"),
            health=RegionHealth(name),
            breaker=CircuitBreaker(config.breaker, clock, transition),
            timeout=AdaptiveTimeout(config.timeouts, clock),
        )
    latency = LatencyModel(config.latency)
    registry.register(RegionCollector(regions, latency.extra_s))
    forwarder = Forwarder(
        config, regions, Router(config.routing, latency, config.default_region), latency,
        clock=clock,
        on_retry=lambda runtime: metrics.retries.labels(runtime.name).inc(),
        on_shed=lambda runtime, klass: metrics.shed.labels(runtime.name, klass.name).inc(),
    )
    names = {region.name.lower(): region.name for region in config.regions}
    for region in config.regions:
        names.update({colo.lower(): region.name for colo in region.colos})
    return EdgeState(
        config=config, regions=regions, forwarder=forwarder, latency=latency,
        classifier=PriorityClassifier(config.priorities),
        cache=EdgeCache(config.cache, generations, clock),
        coalescer=Coalescer(config.coalescing, clock), metrics=metrics, region_names=names,
        clock=clock, started_at=clock(), started_wall=time.time(), version=version)


class EdgeServer:
    """The edge: `await start(...)`, serve, `await close()`."""

    def __init__(
        self,
        config: GeoConfig,
        upstreams: Mapping[str, str],
        *,
        registry: CollectorRegistry | None = None,
        generations: Generations | None = None,
        clock: Callable[[], float] = time.monotonic,
        version: str = __version__,
        health_checks: bool = True,
    ) -> None:
        self.state = build_state(config, upstreams, registry or CollectorRegistry(),
                                 generations or LocalGenerations(), clock, version)
        self._health_checks = health_checks
        self._http = HttpServer(self.handle, max_body=_MAX_BODY)
        self._health_session: aiohttp.ClientSession | None = None
        self._checker: asyncio.Task[None] | None = None
        self.health_checker: HealthChecker | None = None

    async def start(self, *, host: str = "127.0.0.1", port: int = 0,
                    sock: socket.socket | None = None) -> None:
        state = self.state
        if self._health_checks:
            self._health_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, force_close=True),
                cookie_jar=aiohttp.DummyCookieJar())
            self.health_checker = HealthChecker(
                state.config.health, {n: r.url for n, r in state.regions.items()},
                {n: r.health for n, r in state.regions.items()}, self._health_session,
                clock=state.clock)
            self._checker = asyncio.create_task(self.health_checker.run_forever())
        await self._http.start(host=host, port=port, sock=sock)

    @property
    def url(self) -> str:
        host, port = self._http.address
        return f"http://{host}:{port}"

    async def close(self) -> None:
        await self._http.close()
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._health_session is not None:
            await self._health_session.close()
        await self.state.forwarder.close()

    # -- one request ----------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse:
        metrics = self.state.metrics
        started = time.perf_counter()
        metrics.active += 1
        status = 500
        route = _PROXY_ROUTE
        try:
            response, route = await self._dispatch(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's convention)
            raise
        finally:
            metrics.active -= 1
            metrics.requests.observe(route, request.method, status,
                                     time.perf_counter() - started)

    async def _dispatch(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        path = request.path
        if path.startswith("/_edge/") or path in ("/status", "/metrics"):
            own = await self._own_route(request, path)
            if own is not None:
                response, route = own
                response.headers.extend(_SECURITY)
                return response, route
        return await self._proxy(request)

    async def _own_route(self, request: HttpRequest,
                         path: str) -> tuple[HttpResponse, str] | None:
        state = self.state
        if path.startswith(_LATENCY_PREFIX) and path.endswith("/latency"):
            region = path[len(_LATENCY_PREFIX):-len("/latency")]
            return await self._latency(request, region), "/_edge/regions/{region}/latency"
        if request.method not in ("GET", "HEAD"):
            return _error(405, "method_not_allowed", "use GET"), path
        if path == "/status":
            return json_response(state.status()), path
        if path == "/metrics":
            body = generate_latest(state.metrics.registry)
            return HttpResponse(200, [("Content-Type", CONTENT_TYPE_LATEST)], body), path
        if path == "/_edge/health":
            routable = state.forwarder.order(None, None)
            return json_response({"status": "ok" if routable else "unavailable",
                                  "routable_regions": routable},
                                 200 if routable else 503), path
        return None

    async def _latency(self, request: HttpRequest, region: str) -> HttpResponse:
        """GET shows, PUT sets {"extra_ms": N} on one region (loopback clients only)."""
        state = self.state
        if region not in state.regions:
            return _error(404, "unknown_region", f"no region named {region!r}")
        if request.method in ("PUT", "POST"):
            if request.peer not in _LOOPBACK:
                return _error(403, "forbidden", "fault injection is only allowed from loopback")
            try:
                extra_ms = float(json.loads(request.body)["extra_ms"])
            except (ValueError, KeyError, TypeError):
                return _error(422, "validation_failed",
                              'body must be {"extra_ms": <number >= 0>}')
            if not extra_ms >= 0:
                return _error(422, "validation_failed", "extra_ms must be >= 0")
            state.latency.set_extra(region, extra_ms / 1000.0)
            log.warning("region %s: injected delay set to %.1f ms", region, extra_ms)
        elif request.method != "GET":
            return _error(405, "method_not_allowed", "use GET or PUT")
        return json_response({"region": region,
                              "extra_ms": state.latency.extra_s(region) * 1000.0})

    async def _proxy(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        state = self.state
        method = request.method
        client_region = state.client_region(request.header("x-pitchey-region"))
        cache = state.cache
        path = request.path
        if cache.enabled and cache.applies_to(method, path, _HeaderView(request),
                                              request.cookies):
            key = cache.key(request.target, _HeaderView(request))
            state.metrics.edge_cache_lookups.inc()
            hit = cache.lookup(key)
            if hit is not None:
                state.metrics.edge_cache_hits.inc()
                age = str(int(state.clock() - hit.stored_at))
                upstream = UpstreamResponse(hit.status, hit.head, hit.body, None)
                return self._respond(upstream, "HIT", age=age)
            generation = cache.generation()
            upstream = await self._forward(request, client_region)
            cache.store(key, upstream.status, upstream.head, upstream.body, generation)
            return self._respond(upstream, "MISS")
        upstream = await self._forward(request, client_region)
        if cache.enabled and cache.invalidates(method, path, upstream.status):
            cache.invalidate()
        return self._respond(upstream, "BYPASS")

    async def _forward(self, request: HttpRequest,
                       client_region: str | None) -> UpstreamResponse:
        state = self.state
        method = request.method
        priority = state.classifier.classify(request.path, _HeaderView(request))
        affinity = request.cookies.get(state.config.affinity_cookie) \
            if state.config.routing == "weighted" else None
        headers = forwardable_headers(request.headers, request.peer, request.scheme,
                                      request.header("host"))
        body = request.body

        async def call() -> UpstreamResponse:
            return await state.forwarder.forward(method, request.target, headers, body,
                                                 client_region, affinity, priority)

        if method != "GET" or body or not state.coalescer.enabled:
            return await call()
        upstream, joined = await state.coalescer.run(
            _coalesce_key(request, client_region, priority), call)
        if joined:
            state.metrics.coalesced.inc()
        return upstream

    def _respond(self, upstream: UpstreamResponse, cache_state: str,
                 age: str | None = None) -> tuple[HttpResponse, str]:
        found = _ROUTE.search("\n" + upstream.head)
        route = found.group(1) if found else _PROXY_ROUTE
        answered = upstream.outcome in ANSWERED
        headers = [(EDGE_CACHE_HEADER, cache_state)]
        if upstream.region is not None:
            if answered:
                if SERVED_BY_HEADER not in upstream.head:  # our workers say so themselves
                    headers.append((SERVED_BY_HEADER, upstream.region))
            else:  # the edge's own answer about a region that failed or was saturated
                headers.append((FAILED_REGION_HEADER, upstream.region))
                headers.append((EDGE_ERROR_HEADER, upstream.outcome))
        if not answered:
            headers.extend(_SECURITY)
        if age is not None:
            headers.append(("Age", age))
        if self.state.config.routing == "weighted" and answered and upstream.region is not None:
            headers.append(("Set-Cookie", f"{self.state.config.affinity_cookie}="
                            f"{upstream.region}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"))
        return HttpResponse(upstream.status, headers, upstream.body, upstream.content_length,
                            raw_head=upstream.head, dated=answered), route


class _HeaderView:
    """The `Mapping.get` the cache and the classifier need, on a request's headers."""

    __slots__ = ("_request",)

    def __init__(self, request: HttpRequest) -> None:
        self._request = request

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._request.header(name.lower())
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._request.header(name.lower()) is not None


def _coalesce_key(request: HttpRequest, client_region: str | None,
                  priority: PriorityClass) -> CoalesceKey:
    header = request.header
    return (request.target, header("accept") or "", header("accept-encoding") or "",
            header("cookie") or "", header("authorization") or "", client_region or "",
            priority.name)


def _error(status: int, code: str, message: str) -> HttpResponse:
    return json_response({"error": {"status": status, "code": code, "message": message}},
                         status)


async def serve_edge(edge: EdgeServer, *, fd: int | None, host: str, port: int) -> None:
    """Run `edge` until SIGTERM/SIGINT, printing one 'listening on' line."""
    import os
    import signal

    sock = None
    if fd is not None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
    await edge.start(host=host, port=port, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"pitchey edge: listening on {edge.url} (pid {os.getpid()})", flush=True)
    try:
        await stop.wait()
    finally:
        await edge.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m pitchey.geo.edge --upstream us-east=http://127.0.0.1:9001 ...`"""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m pitchey.geo.edge",
                                     description="Run the geo topology's edge load balancer.")
    parser.add_argument("--regions", default=None, metavar="FILE", help="regions YAML")
    parser.add_argument("--upstream", action="append", default=[], metavar="REGION=URL",
                        help="a region's worker URL (one per region)")
    parser.add_argument("--fd", type=int, default=None, help="inherited listening socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--generations", default=None, metavar="FILE",
                        help="the topology's shared generations file")
    args = parser.parse_args(argv)
    from pitchey.geo.config_file import GeoConfigError, load_geo_config
    from pitchey.geo.generations import SharedGenerations

    logging.basicConfig(level=logging.WARNING, format="[edge] %(name)s: %(message)s")
    try:
        config = load_geo_config(args.regions)
        upstreams = dict(item.split("=", 1) for item in args.upstream)
        generations = SharedGenerations(args.generations) if args.generations else None
        edge = EdgeServer(config, upstreams, generations=generations)
    except (GeoConfigError, ValueError, OSError) as exc:
        print(f"pitchey edge: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve_edge(edge, fd=args.fd, host=args.host, port=args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

