"""What every request goes through: rate limit, tracing, metrics, security headers, CORS and
JSON errors, applied by wrapping each route's handler once, when the route is registered.

Why not an aiohttp middleware: as soon as an application has one, aiohttp also runs its own
`_fix_request_current_app` middleware, looks the chain up and awaits two more coroutine frames
on every request, and the middleware has to find the route template again each time. A
wrapper built at registration knows its route template, its rate-limit exemption and its
metric label up front, so the per-request work is only the work itself. The benchmark
compares this path with a bare handler, so that difference is the instrumentation budget.

Requests no route matches (404), a known path with the wrong method (405) and CORS preflights
go to one catch-all route registered last, wrapped the same way (`RouteTable.add_fallback`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

if TYPE_CHECKING:
    from opentelemetry.trace import Status

from pitchey.cache import CacheUnavailable
from pitchey.errors import ApiError, StorageUnavailable, json_error
from pitchey.idempotency import WRITE_METHODS, idempotent
from pitchey.metrics import ServiceMetrics
from pitchey.ratelimit import MemoryRateLimiter, RateLimiter
from pitchey.runtime import RuntimeStats
from pitchey.security import (
    CORS_ALLOW_HEADERS,
    CORS_ALLOW_METHODS,
    SECURITY_HEADERS,
    cors_headers,
)
from pitchey.settings import Settings
from pitchey.tracing import Tracing

__all__ = [
    "AnswerNow",
    "FALLBACK_ROUTE_NAME",
    "Handler",
    "Instrumentation",
    "RouteTable",
    "UNLIMITED_PATHS",
    "UNMATCHED_ROUTE",
    "client_address",
    "route_template",
]

log = logging.getLogger("pitchey.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A handler's synchronous answer for requests it can serve without waiting (a cached public
# read): the response, or None to fall through to the handler itself.
AnswerNow = Callable[[web.Request], web.StreamResponse | None]

UNMATCHED_ROUTE = "unmatched"
FALLBACK_ROUTE_NAME = "unmatched"
# Observability endpoints are never rate limited: a scraper polling every second must not
# lock an operator out of /health, and they cost nothing to serve.
UNLIMITED_PATHS = frozenset(
    {"/health", "/health/db", "/health/services", "/api/health", "/metrics", "/status",
     "/config", "/openapi.json"}
)
_SERVER_ERROR = "internal_error"
_SECURITY_MARKER = "Content-Security-Policy"


def route_template(request: web.Request) -> str:
    """The request's route template as the metrics label it ("unmatched" for 404/405)."""
    match_info = request.match_info
    if match_info.http_exception is not None:  # aiohttp's system route (no fallback route)
        return UNMATCHED_ROUTE
    resource = match_info.route.resource
    if resource is None or resource.name == FALLBACK_ROUTE_NAME:
        return UNMATCHED_ROUTE
    return resource.canonical


def _peer_of(request: web.Request) -> str:
    return request.remote or "unknown"


def client_address(request: web.Request, trust_forwarded_for: bool) -> str:
    """The address the rate limit counts a request against.

    Behind a trusted proxy that is the right-most entry of the last X-Forwarded-For line:
    the proxy (HAProxy's `option forwardfor`) appends the address it saw after whatever the
    client sent, and only that entry is not the client's to choose. A left-most entry would let
    a client rotate its own header past the limit. A last entry that is empty or not an IP
    address (no proxy added one) counts against the peer, i.e. the proxy, instead."""
    if trust_forwarded_for:
        lines = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
        if lines:
            last = lines[-1].rpartition(",")[2].strip()
            try:
                return str(ipaddress.ip_address(last))  # one spelling per address
            except ValueError:
                pass
    return _peer_of(request)


def _render_exception(exc: BaseException) -> web.StreamResponse:
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return exc  # redirects and the like pass through
        code = exc.reason.lower().replace(" ", "_") if exc.reason else "http_error"
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, code, message or code, headers=headers)
    if isinstance(exc, StorageUnavailable):
        return json_error(
            503, "storage_unavailable", "storage is unavailable; nothing was changed",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, CacheUnavailable):
        return json_error(
            503, "cache_unavailable", "the shared cache is unavailable; try again",
            headers={"Retry-After": "1"},
        )
    log.exception("unhandled error", exc_info=exc)
    return json_error(500, _SERVER_ERROR, "internal error")


class Instrumentation:
    """Builds the per-route wrappers; holds what they share."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        tracing: Tracing,
        limiter: RateLimiter,
        runtime: RuntimeStats,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._tracing = tracing
        self._limiter = limiter
        self._runtime = runtime
        self._allowed_origin = settings.frontend_origin
        # The in-process limiter answers without a coroutine; Redis needs a round trip.
        self._retry_after_now = (limiter.retry_after_now if isinstance(limiter, MemoryRateLimiter)
                                 else None)

    # -- the rate limit, shared by the wrappers and the fallback --------------------------

    def _client_of(self, request: web.Request) -> str:
        return client_address(request, self._settings.trust_forwarded_for)

    def _refuse(self, retry_after_s: int) -> web.Response:
        self._metrics.rate_limited.inc()
        return json_error(
            429, "rate_limited",
            f"more than {self._limiter.limit} requests per minute from this client",
            headers={"Retry-After": str(retry_after_s)},
        )

    async def _limit(self, request: web.Request) -> web.Response | None:
        """A 429 when this request's client is over its limit, else None."""
        client = self._client_of(request)
        if self._retry_after_now is not None:
            retry_after_s = self._retry_after_now(client)
            return None if retry_after_s == 0 else self._refuse(retry_after_s)
        decision = await self._limiter.hit(client)
        return None if decision.allowed else self._refuse(decision.retry_after_s)

    # -- the wrapper ------------------------------------------------------------------------

    def wrap(
        self,
        handler: Handler,
        route: str,
        *,
        rate_limited: bool = True,
        answer_now: AnswerNow | None = None,
    ) -> Handler:
        """`handler` with everything above around it, its metrics labelled `route`.

        `answer_now`, when given, is tried first on unsampled requests: a cache hit is then
        served without creating and awaiting the handler's coroutine. Sampled requests always
        take the handler, so their cache and storage spans are recorded."""
        limited = (rate_limited and self._settings.rate_limit_per_minute > 0
                   and route not in UNLIMITED_PATHS)
        # the in-process limiter, keyed by the peer address, is answered inline; a trusted
        # proxy's X-Forwarded-For or the Redis limiter take the general path
        inline_limit = (self._retry_after_now
                        if limited and not self._settings.trust_forwarded_for else None)
        refuse = self._refuse
        limit = self._limit
        allowed_origin = self._allowed_origin
        histogram = self._metrics.requests
        bounds = histogram.bounds
        # this route's series by (method, status): observed inline, no call per request
        route_series: dict[tuple[str, int], list[float]] = {}
        in_flight = self._metrics.in_flight
        decide = self._tracing.decide
        ratio = self._tracing.ratio
        draw = random.random
        origin_header = hdrs.ORIGIN
        traced_call = self._traced_call
        runtime_record_at = self._runtime.record_at
        perf_counter = time.perf_counter
        security_headers = SECURITY_HEADERS

        @functools.wraps(handler)
        async def instrumented(request: web.Request) -> web.StreamResponse:
            started = perf_counter()
            in_flight.count += 1
            status = 500
            method = request.method
            try:
                response: web.StreamResponse | None = None
                if inline_limit is not None:
                    retry_after_s = inline_limit(request.remote or "unknown")
                    if retry_after_s:
                        response = refuse(retry_after_s)
                elif limited:
                    response = await limit(request)
                headers = request.headers
                if response is None:
                    if "traceparent" in headers:
                        traced, parent = decide(headers)
                    else:  # the common case, inlined: one random draw against the ratio
                        traced, parent = draw() < ratio, None
                    if traced:
                        response = await traced_call(request, handler, route, parent)
                    else:
                        try:
                            if answer_now is None or (response := answer_now(request)) is None:
                                response = await handler(request)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:  # rendered as JSON, never a traceback
                            response = _render_exception(exc)
                status = response.status
                response_headers = response.headers
                if _SECURITY_MARKER not in response_headers:  # JSON bodies are built with them
                    response_headers.update(security_headers)
                origin = headers.get(origin_header)
                if origin is not None and origin == allowed_origin:
                    response_headers.update(cors_headers(origin))
                return response
            except asyncio.CancelledError:
                status = 499  # the client went away (nginx's convention); not a server error
                raise
            finally:
                in_flight.count -= 1
                finished = perf_counter()
                elapsed = finished - started
                counts = route_series.get((method, status))
                if counts is None:
                    counts = route_series[(method, status)] = histogram.series(
                        route, method, status
                    )
                counts[bisect_left(bounds, elapsed)] += 1
                counts[-1] += elapsed
                runtime_record_at(finished, elapsed, status >= 500)

        return instrumented

    async def _traced_call(
        self, request: web.Request, handler: Handler, route: str, parent: object
    ) -> web.StreamResponse:
        with self._tracing.start_server_span(
            f"{request.method} {route}",
            parent,  # type: ignore[arg-type]
            {"http.request.method": request.method, "http.route": route,
             "url.path": request.path},
        ) as span:
            try:
                response = await handler(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # rendered as JSON, never a traceback
                response = _render_exception(exc)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(_error_status())
        return response

    # -- the catch-all: preflight, 404, 405 ----------------------------------------------

    async def fallback(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and request.method == hdrs.METH_OPTIONS:
            return self._preflight(origin)  # never rate limited: browsers send them unasked
        if self._settings.rate_limit_per_minute > 0:
            refused = await self._limit(request)
            if refused is not None:
                return refused
        allowed: set[str] = set()
        own = request.match_info.route.resource
        for resource in request.app.router.resources():
            if resource is not own:
                _, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            return json_error(
                405, "method_not_allowed",
                f"{request.method} is not allowed on {request.path}",
                headers={"Allow": ",".join(sorted(allowed))},
            )
        return json_error(404, "not_found", f"no route for {request.method} {request.path}")

    def _preflight(self, origin: str) -> web.Response:
        if origin != self._allowed_origin:
            return json_error(403, "cors_forbidden", f"origin {origin!r} is not allowed")
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"
        return response


class RouteTable:
    """The router as the API modules see it: every handler added here is instrumented under
    its route template (aiohttp's `resource.canonical`, e.g. `/api/pitches/{id}`)."""

    def __init__(self, app: web.Application, instrumentation: Instrumentation) -> None:
        self.app = app
        self._router = app.router
        self._instrumentation = instrumentation

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        name: str | None = None,
        answer_now: AnswerNow | None = None,
    ) -> web.AbstractRoute:
        resource = self._router.add_resource(path, name=name)
        if method in WRITE_METHODS:  # honours Idempotency-Key (pitchey.idempotency)
            handler = idempotent(self.app, handler, resource.canonical,
                                 self._instrumentation._client_of)
        wrapped = self._instrumentation.wrap(handler, resource.canonical, answer_now=answer_now)
        if method == hdrs.METH_GET:  # as aiohttp's add_get: HEAD is served too
            resource.add_route(hdrs.METH_HEAD, wrapped)
        return resource.add_route(method, wrapped)

    def add_get(
        self,
        path: str,
        handler: Handler,
        *,
        name: str | None = None,
        answer_now: AnswerNow | None = None,
    ) -> web.AbstractRoute:
        return self.add(hdrs.METH_GET, path, handler, name=name, answer_now=answer_now)

    def add_post(
        self, path: str, handler: Handler, *, name: str | None = None
    ) -> web.AbstractRoute:
        return self.add(hdrs.METH_POST, path, handler, name=name)

    def add_put(
        self, path: str, handler: Handler, *, name: str | None = None
    ) -> web.AbstractRoute:
        return self.add(hdrs.METH_PUT, path, handler, name=name)

    def add_patch(
        self, path: str, handler: Handler, *, name: str | None = None
    ) -> web.AbstractRoute:
        return self.add(hdrs.METH_PATCH, path, handler, name=name)

    def add_delete(
        self, path: str, handler: Handler, *, name: str | None = None
    ) -> web.AbstractRoute:
        return self.add(hdrs.METH_DELETE, path, handler, name=name)

    def add_fallback(self) -> web.AbstractRoute:
        """The catch-all for 404, 405 and preflights. Register it last: aiohttp tries
        resources in order, so a route added after it could never match."""
        instrumentation = self._instrumentation
        wrapped = instrumentation.wrap(
            instrumentation.fallback, UNMATCHED_ROUTE, rate_limited=False
        )
        # [\s\S], not ".": a path with an encoded newline (%0A) must match it too
        return self._router.add_route(
            hdrs.METH_ANY, "/{tail:[\\s\\S]*}", wrapped, name=FALLBACK_ROUTE_NAME
        )


def _error_status() -> Status:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)
