"""Observability endpoints: /health, /health/db, /health/services, /api/health (seed 000's
detailed format), /metrics, /status, /config."""

from __future__ import annotations

import asyncio
import platform
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pitchey import keys
from pitchey.instrumentation import RouteTable

__all__ = ["add_observability_routes", "probe_database", "probe_cache"]

_DB_TIMEOUT_S = 2.0


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def probe_database(app: web.Application) -> dict[str, Any]:
    """Ping the database; keeps pitchey_db_up and the pool gauges current."""
    database = app[keys.DATABASE]
    metrics = app[keys.METRICS]
    metrics.db_pool_in_use.set(database.pool_in_use)
    metrics.db_pool_size.set(database.pool_size)
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the ping completes, and the probe task would then never stop.
        async with asyncio.timeout(_DB_TIMEOUT_S):
            latency_ms = await database.ping()
    except Exception as exc:  # any failure means unhealthy; the reason is reported
        metrics.db_up.set(0)
        return {"status": "unhealthy", "latency": None, "details": f"{type(exc).__name__}: {exc}"}
    metrics.db_up.set(1)
    return {
        "status": "healthy",
        "latency": round(latency_ms, 2),
        "details": f"connected to {database.backend}",
    }


async def probe_cache(app: web.Application) -> dict[str, Any]:
    cache = app[keys.CACHE]
    metrics = app[keys.METRICS]
    lookups = metrics.app_cache_lookups.value
    hits = metrics.app_cache_hits.value
    try:
        async with asyncio.timeout(_DB_TIMEOUT_S):
            latency_ms = await cache.ping()
    except Exception as exc:
        return {"status": "unhealthy", "latency": None, "kind": cache.kind,
                "details": f"{type(exc).__name__}: {exc}"}
    return {
        "status": "healthy",
        "latency": round(latency_ms, 2),
        "kind": cache.kind,
        "hit_rate": round(hits / lookups, 4) if lookups else None,
    }


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "timestamp": _now_iso()})


async def health_db(request: web.Request) -> web.Response:
    result = await probe_database(request.app)
    return web.json_response(result, status=200 if result["status"] == "healthy" else 503)


async def health_services(request: web.Request) -> web.Response:
    services = {"database": await probe_database(request.app),
                "cache": await probe_cache(request.app)}
    healthy = all(service["status"] == "healthy" for service in services.values())
    return web.json_response(
        {"status": "healthy" if healthy else "unhealthy", "services": services},
        status=200 if healthy else 503,
    )


async def api_health(request: web.Request) -> web.Response:
    """Seed 000's detailed health document."""
    app = request.app
    database = await probe_database(app)
    cache = await probe_cache(app)
    recent = app[keys.RUNTIME].recent()
    storage_ok = database["status"] == "healthy"
    services = {
        "database": database,
        "cache": cache,
        "storage": {"status": "healthy" if storage_ok else "unhealthy", "available": storage_ok},
        "websocket": {"status": "healthy", "connections": 0},
    }
    if database["status"] != "healthy":
        status = "unhealthy"
    elif cache["status"] != "healthy" or recent.error_rate > 0.05:
        status = "degraded"
    else:
        status = "healthy"
    body = {
        "status": status,
        "timestamp": _now_iso(),
        "services": services,
        "metrics": {
            "uptime": round(app[keys.RUNTIME].uptime_s(), 1),
            "requests_per_second": round(recent.requests_per_second, 2),
            "average_response_time": round(recent.mean_ms, 2),
            "error_rate": round(recent.error_rate, 5),
        },
    }
    return web.json_response(body, status=503 if status == "unhealthy" else 200)


async def metrics_endpoint(request: web.Request) -> web.Response:
    app = request.app
    database = app[keys.DATABASE]
    metrics = app[keys.METRICS]
    metrics.db_pool_in_use.set(database.pool_in_use)
    metrics.db_pool_size.set(database.pool_size)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    app = request.app
    settings = app[keys.SETTINGS]
    runtime = app[keys.RUNTIME]
    recent = runtime.recent()
    database = await probe_database(app)
    cache = await probe_cache(app)
    return web.json_response(
        {
            "service": settings.otel_service_name,
            "version": settings.version,
            "region": settings.region,
            "uptime_s": round(runtime.uptime_s(), 1),
            "started_at": datetime.fromtimestamp(runtime.started_wall, UTC).isoformat(),
            "config_hash": settings.config_hash(),
            "python": platform.python_version(),
            "pid": __import__("os").getpid(),
            "dependencies": {
                "database": {"backend": database_backend(app), **database},
                "cache": cache,
            },
            "recent": {
                "window_s": runtime.window_s,
                "requests": recent.requests,
                "requests_per_second": round(recent.requests_per_second, 2),
                "error_rate": round(recent.error_rate, 5),
                "mean_ms": round(recent.mean_ms, 3),
                "p95_ms": None if recent.p95_ms is None else round(recent.p95_ms, 3),
            },
            "totals": {"requests": runtime.total_requests, "errors": runtime.total_errors},
            "timestamp": time.time(),
        }
    )


def database_backend(app: web.Application) -> str:
    return app[keys.DATABASE].backend


async def config(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.SETTINGS].redacted())


def add_observability_routes(router: RouteTable) -> None:
    router.add_get("/health", health, name="health")
    router.add_get("/health/db", health_db, name="health_db")
    router.add_get("/health/services", health_services, name="health_services")
    router.add_get("/api/health", api_health, name="api_health")
    router.add_get("/metrics", metrics_endpoint, name="metrics")
    router.add_get("/status", status, name="status")
    router.add_get("/config", config, name="config")
