"""What a regional worker adds to each HTTP exchange, now that HAProxy is the edge: the
modelled network delay and its fault injection (`/_geo/latency`), the headers naming who
answered, and explicit Cache-Control for the edge's cache.

The delay is paid by the worker because HAProxy forwards without simulating geography: a
request that names its client's region (`X-Pitchey-Region`, a region or a colo code) waits
the one-way time from that region before the handler and the way back after it. An injected
extra delay slows every answer, /health included, so the edge's health checks see a slow
region as clients do; only /_geo/latency itself answers at once, so that restoring a region
is not held up by the fault it removes.

HAProxy's cache keeps only 200 answers that carry an explicit expiry and never one to a
request with Authorization, so the worker says what may be shared: anonymous reads of the
edge paths are `public, max-age=<edge TTL>`, anything touching credentials or setting a
cookie is `private, no-store`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from prometheus_client import Gauge

from pitchey import keys
from pitchey.api.common import json_response
from pitchey.auth import SESSION_COOKIE
from pitchey.errors import ApiError, field_errors
from pitchey.geo.latency import RegionDelay
from pitchey.geo.regions import CacheConfig
from pitchey.instrumentation import RouteTable, route_template
from pitchey.validation import read_json

__all__ = [
    "CLIENT_REGION_HEADER",
    "LATENCY_PATH",
    "PID_HEADER",
    "PRIVATE_CACHE_CONTROL",
    "REGION_DELAY",
    "REGION_SERVED_HEADER",
    "ROUTE_HEADER",
    "add_latency_routes",
    "cache_control_for",
    "edge_headers_middleware",
    "latency_middleware",
]

CLIENT_REGION_HEADER = "X-Pitchey-Region"
REGION_SERVED_HEADER = "X-Pitchey-Served-By"
PID_HEADER = "X-Pitchey-Worker-Pid"
ROUTE_HEADER = "X-Pitchey-Route"
LATENCY_PATH = "/_geo/latency"
PRIVATE_CACHE_CONTROL = "private, no-store"
REGION_DELAY: web.AppKey[RegionDelay] = web.AppKey("geo_region_delay", RegionDelay)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_READS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


# -- the modelled delay -----------------------------------------------------------------------


def latency_middleware(delay: RegionDelay) -> Middleware:
    """Delays each answer by the round trip to the client's region plus the injected extra.
    Outermost, so the request histogram keeps measuring the server, not the simulated
    network."""
    model = delay.model
    region = delay.region
    client_region = delay.client_region
    one_way_s = model.one_way_s
    sleep = asyncio.sleep

    @web.middleware
    async def modelled_latency(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = (client_region(request.headers.get(CLIENT_REGION_HEADER))
                  if model.enabled else None)
        # the request travels to this region (and waits out a degraded one; the control
        # route itself does not, so restoring a region takes effect at once) ...
        there_s = one_way_s(client, region)
        if request.path != LATENCY_PATH:
            there_s += delay.extra_s
        if there_s > 0:
            await sleep(there_s)
        response = await handler(request)
        # ... and the answer travels back. No worker handler streams its body, so the answer
        # is still unsent here and the client sees the whole round trip.
        back_s = one_way_s(region, client)
        if back_s > 0:
            await sleep(back_s)
        return response

    return modelled_latency


def add_latency_routes(routes: RouteTable, delay: RegionDelay) -> None:
    """GET/PUT /_geo/latency as routes of the service, so they are instrumented under their
    own template rather than counted as unmatched."""
    gauge = Gauge(
        "pitchey_region_injected_delay_seconds",
        "Extra delay injected into this region's answers (PUT /_geo/latency).",
        ["region"],
        registry=routes.app[keys.METRICS].registry,
    )
    gauge.labels(delay.region).set_function(lambda: delay.extra_s)
    routes.app[REGION_DELAY] = delay
    routes.add_get(LATENCY_PATH, show_latency, name="geo_latency_show")
    routes.add_put(LATENCY_PATH, set_latency, name="geo_latency_set")


def _latency_body(delay: RegionDelay) -> dict[str, object]:
    return {
        "region": delay.region,
        "model_enabled": delay.model.enabled,
        "extra_ms": delay.extra_s * 1000.0,
        # what a client in each region pays for one request here, without the extra
        "round_trip_ms": {name: delay.round_trip_s(name) * 1000.0
                          for name in delay.region_names},
    }


async def show_latency(request: web.Request) -> web.StreamResponse:
    """This worker's latency model, its round trips per client region and the injected delay."""
    return json_response(_latency_body(request.app[REGION_DELAY]))


async def set_latency(request: web.Request) -> web.StreamResponse:
    """Set the injected delay: `{"extra_ms": N}`, N >= 0 (0 restores the region). Only for an
    operator on this machine talking to the worker directly: a request that came through
    the edge carries X-Forwarded-For, and the edge's own peer address is loopback too."""
    if not _is_loopback(request.remote) or hdrs.X_FORWARDED_FOR in request.headers:
        raise ApiError(403, "forbidden",
                       "fault injection is only accepted from loopback, not through the edge")
    body = await read_json(request)
    extra_ms = body.get("extra_ms")
    if (isinstance(extra_ms, bool) or not isinstance(extra_ms, int | float)
            or not math.isfinite(extra_ms) or extra_ms < 0):
        raise field_errors({"extra_ms": "must be a number of milliseconds >= 0"})
    delay = request.app[REGION_DELAY]
    delay.set_extra(extra_ms / 1000.0)
    return json_response(_latency_body(delay))


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# -- who answered, and what the edge may cache ----------------------------------------------


def cache_control_for(request: web.Request, response: web.StreamResponse,
                      config: CacheConfig) -> str | None:
    """The Cache-Control the worker gives `response` when its handler set none: private for
    anything touching credentials or setting a cookie, public for a 200 anonymous read of an
    edge path (when the edge tier is on), else None (no opinion)."""
    headers = request.headers
    credentials = hdrs.AUTHORIZATION in headers or any(
        SESSION_COOKIE in line for line in headers.getall(hdrs.COOKIE, ()))
    if credentials or response.cookies or hdrs.SET_COOKIE in response.headers:
        return PRIVATE_CACHE_CONTROL
    max_age = int(config.edge_ttl_s)
    if (max_age > 0 and response.status == 200 and request.method in _READS
            and request.path.startswith(config.edge_paths)):
        return f"public, max-age={max_age}"
    return None


def edge_headers_middleware(region: str, config: CacheConfig) -> Middleware:
    """Which region and worker process answered, the route template, and Cache-Control."""
    pid = str(os.getpid())

    @web.middleware
    async def edge_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers[REGION_SERVED_HEADER] = region
        headers[PID_HEADER] = pid
        headers[ROUTE_HEADER] = route_template(request)
        if hdrs.CACHE_CONTROL not in headers:
            policy = cache_control_for(request, response, config)
            if policy is not None:
                headers[hdrs.CACHE_CONTROL] = policy
                if policy != PRIVATE_CACHE_CONTROL and hdrs.VARY not in headers:
                    # CORS headers depend on Origin even when this request sent none: a
                    # shared cache must keep one answer per Origin
                    headers[hdrs.VARY] = "Origin"
        return response

    return edge_headers
