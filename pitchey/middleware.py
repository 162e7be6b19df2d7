"""The one middleware every request goes through: rate limit, tracing, metrics, security
headers, CORS and error rendering.

It is a single function on purpose. aiohttp pays a wrapper call per middleware, and the
instrumentation budget is tight (the benchmark compares this path with a bare handler), so the
work is done inline: the sampling decision before any span exists, histogram children cached
per label set, the security headers merged from one prebuilt dict.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from pitchey.errors import ApiError, StorageUnavailable, json_error
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

__all__ = ["build_middleware", "UNMATCHED_ROUTE", "UNLIMITED_PATHS"]

log = logging.getLogger("pitchey.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNMATCHED_ROUTE = "unmatched"
# Observability endpoints are never rate limited: a scraper polling every second must not
# lock an operator out of /health, and they cost nothing to serve.
UNLIMITED_PATHS = frozenset(
    {"/health", "/health/db", "/health/services", "/api/health", "/metrics", "/status",
     "/config", "/openapi.json"}
)
_SERVER_ERROR = "internal_error"
_SECURITY_MARKER = "Content-Security-Policy"


def _route_of(request: web.Request) -> str:
    match_info = request.match_info
    if match_info.http_exception is not None:  # aiohttp's system route for a 404 or 405
        return UNMATCHED_ROUTE
    resource = match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


def _client_of(request: web.Request, trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",", 1)[0].strip()
    return request.remote or "unknown"


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
    log.exception("unhandled error", exc_info=exc)
    return json_error(500, _SERVER_ERROR, "internal error")


def build_middleware(
    settings: Settings,
    metrics: ServiceMetrics,
    tracing: Tracing,
    limiter: RateLimiter,
    runtime: RuntimeStats,
) -> Middleware:
    limit_enabled = settings.rate_limit_per_minute > 0
    trust_forwarded_for = settings.trust_forwarded_for
    allowed_origin = settings.frontend_origin
    record = metrics.requests.observe
    in_flight = metrics.in_flight
    rate_limited = metrics.rate_limited
    decide = tracing.decide
    start_span = tracing.start_server_span
    runtime_record_at = runtime.record_at
    route_names: dict[object, str] = {}

    def route_of(request: web.Request) -> str:
        """The route template, memoised per route object (system routes for 404/405 are
        new objects on every request, so they are never stored)."""
        match_info = request.match_info
        route = match_info.route
        name = route_names.get(route)
        if name is None:
            name = _route_of(request)
            if match_info.http_exception is None:
                route_names[route] = name
        return name
    perf_counter = time.perf_counter

    def preflight(origin: str) -> web.Response:
        if origin != allowed_origin:
            return json_error(403, "cors_forbidden", f"origin {origin!r} is not allowed")
        response = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = CORS_ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"
        return response

    # The in-process limiter answers without a coroutine; Redis needs a round trip.
    hit_now = limiter.hit_now if isinstance(limiter, MemoryRateLimiter) else None

    def refusal(retry_after_s: int) -> web.Response:
        rate_limited.inc()
        return json_error(
            429, "rate_limited",
            f"more than {limiter.limit} requests per minute from this client",
            headers={"Retry-After": str(retry_after_s)},
        )

    async def traced_call(
        request: web.Request, handler: Handler, route: str, parent: object
    ) -> web.StreamResponse:
        with start_span(
            f"{request.method} {route}",
            parent,  # type: ignore[arg-type]
            {"http.request.method": request.method, "http.route": route,
             "url.path": request.path},
        ) as span:
            response = await call(request, handler)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(_error_status())
        return response

    async def call(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # rendered as JSON, never a traceback
            return _render_exception(exc)

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        # One coroutine frame on the common path: the handler is awaited right here.
        started = perf_counter()
        in_flight.count += 1
        status = 500
        route = route_of(request)
        headers = request.headers
        origin = headers.get("Origin")
        try:
            response: web.StreamResponse | None = None
            if origin is not None and request.method == "OPTIONS":
                response = preflight(origin)
            elif limit_enabled and route not in UNLIMITED_PATHS:  # templates equal paths there
                client = _client_of(request, trust_forwarded_for)
                decision = hit_now(client) if hit_now is not None else await limiter.hit(client)
                if not decision.allowed:
                    response = refusal(decision.retry_after_s)
            if response is None:
                traced, parent = decide(headers)
                if traced:
                    response = await traced_call(request, handler, route, parent)
                else:
                    try:
                        response = await handler(request)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # rendered as JSON, never a traceback
                        response = _render_exception(exc)
            status = response.status
            response_headers = response.headers
            if _SECURITY_MARKER not in response_headers:  # JSON bodies are built with them
                response_headers.update(SECURITY_HEADERS)
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
            record(route, request.method, status, elapsed)
            runtime_record_at(finished, elapsed, 500 <= status < 599)

    return observe


def _error_status() -> object:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR)
