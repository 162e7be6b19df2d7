"""The application factory: `create_app(settings)` returns the Pitchey platform service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from pitchey import keys
from pitchey.cache import Cache, open_cache
from pitchey.health import add_observability_routes, probe_database
from pitchey.instrumentation import Instrumentation, RouteTable
from pitchey.metrics import ServiceMetrics
from pitchey.ratelimit import open_rate_limiter
from pitchey.runtime import RuntimeStats
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey.tracing import Tracing

__all__ = ["create_app", "OPENAPI_KEY"]

log = logging.getLogger("pitchey")

OPENAPI_KEY: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
# How often the background probe refreshes pitchey_db_up and the storage gauges.
PROBE_INTERVAL_S = 5.0


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    database: Database | None = None,
    cache: Cache | None = None,
    span_exporter: SpanExporter | None = None,
    probe_interval_s: float = PROBE_INTERVAL_S,
    extra_routes: Callable[[RouteTable], None] | None = None,
) -> web.Application:
    """Build the service. Injected `database` and `cache` are used as they are and left open
    (their owner closes them); otherwise they are opened from `settings` at startup.
    `extra_routes` registers a deployment's own routes (the geo worker's) on the same
    instrumented table, before the catch-all that would otherwise shadow them."""
    metrics = ServiceMetrics(registry if registry is not None else CollectorRegistry())
    metrics.build_info.labels(
        settings.version, settings.region, settings.backend, platform.python_version()
    ).set(1)
    tracing = Tracing(settings, exporter=span_exporter)
    limiter = open_rate_limiter(settings.rate_limit_per_minute, settings.redis_url)
    runtime = RuntimeStats()
    app = web.Application(client_max_size=settings.max_body_bytes)
    routes = RouteTable(app, Instrumentation(settings, metrics, tracing, limiter, runtime))
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.TRACING] = tracing
    app[keys.RATE_LIMITER] = limiter
    app[keys.RUNTIME] = runtime
    app.cleanup_ctx.append(_resources(database, cache, probe_interval_s))
    add_observability_routes(routes)
    app[OPENAPI_KEY] = {}  # filled on first request: the routes are final by then
    routes.add_get("/openapi.json", openapi_document, name="openapi")
    from pitchey.api import add_routes

    add_routes(app, routes)
    if extra_routes is not None:
        extra_routes(routes)
    routes.add_fallback()  # last: it matches every path
    return app


def _resources(
    database: Database | None, cache: Cache | None, probe_interval_s: float
) -> Any:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        owns_database = database is None
        if database is None:
            from pitchey.storage.factory import open_database

            opened = await open_database(
                settings, app[keys.METRICS], tracing=app[keys.TRACING]
            )
            await opened.migrate()
            app[keys.DATABASE] = opened
        else:
            app[keys.DATABASE] = database
        owns_cache = cache is None
        app[keys.CACHE] = cache if cache is not None else open_cache(settings.redis_url)
        probe = asyncio.create_task(_probe_forever(app, probe_interval_s))
        try:
            yield
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            if owns_cache:
                await app[keys.CACHE].close()
            if owns_database:
                await app[keys.DATABASE].close()
            await app[keys.RATE_LIMITER].close()
            app[keys.TRACING].shutdown()

    return resources


async def _probe_forever(app: web.Application, interval_s: float) -> None:
    """Keep the health and storage gauges fresh between scrapes."""
    metrics = app[keys.METRICS]
    while True:
        await probe_database(app)
        try:
            used, capacity = await app[keys.DATABASE].storage_usage()
            metrics.storage_used_bytes.set(used)
            metrics.storage_capacity_bytes.set(capacity)
        except Exception as exc:  # storage may be the thing that is down; the probe says so
            log.debug("storage usage probe failed: %s", exc)
        await asyncio.sleep(interval_s)


async def openapi_document(request: web.Request) -> web.Response:
    holder = request.app[OPENAPI_KEY]
    if "document" not in holder:
        from pitchey.openapi import build_openapi

        holder["document"] = build_openapi(request.app)
    return web.json_response(holder["document"])
