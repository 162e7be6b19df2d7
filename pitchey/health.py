"""Observability endpoints: /health, /health/db, /health/services, /api/health (the detailed
format of "Pitchey Platform Deployment Architecture", § Monitoring and Observability › Health
Check System), /metrics, /status, /config."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import platform
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pitchey import keys
from pitchey.errors import json_error
from pitchey.instrumentation import RouteTable
from pitchey.redact import redact

__all__ = [
    "add_observability_routes", "admin_allowed", "metrics_app", "probe_database", "probe_cache",
]

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
        return {"status": "unhealthy", "latency": None, "details": _describe(app, exc)}
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
                "details": _describe(app, exc)}
    return {
        "status": "healthy",
        "latency": round(latency_ms, 2),
        "kind": cache.kind,
        "hit_rate": round(hits / lookups, 4) if lookups else None,
    }


def _describe(app: web.Application, exc: BaseException) -> str:
    """A probe's failure as /status and /health/* show it: a driver's message may quote the
    DSN it was given, so it goes through the redaction first."""
    text = redact(f"{type(exc).__name__}: {exc}", known=app[keys.SETTINGS].secret_values())
    return text or type(exc).__name__


# Headers a proxy adds: a request carrying one came through it, whatever the peer address.
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP", "X-Forwarded-Host")


def _is_loopback(request: web.Request) -> bool:
    if any(name in request.headers for name in _PROXY_HEADERS):
        return False  # HAProxy on loopback in front of a geo worker: the client is elsewhere
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def admin_allowed(request: web.Request) -> bool:
    """/config and /status: a loopback peer (no proxy header), or anyone presenting
    `Authorization: Bearer <PITCHEY_ADMIN_TOKEN>` when a token is configured."""
    if _is_loopback(request):
        return True
    token = request.app[keys.SETTINGS].admin_token
    if token is None:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # constant time: the comparison must not tell how much of a guess was right
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def _admin_only(request: web.Request) -> web.Response:
    how = ("from loopback or with Authorization: Bearer <PITCHEY_ADMIN_TOKEN>"
           if request.app[keys.SETTINGS].admin_token else "from loopback")
    return json_error(403, "admin_only", f"{request.path} is served only {how}")


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
    """The detailed health document ("Pitchey Platform Deployment Architecture", § Health Check
    System)."""
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
    return _metrics_response(request.app)


def _metrics_response(app: web.Application) -> web.Response:
    database = app[keys.DATABASE]
    metrics = app[keys.METRICS]
    metrics.db_pool_in_use.set(database.pool_in_use)
    metrics.db_pool_size.set(database.pool_size)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    if not admin_allowed(request):
        return _admin_only(request)
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
            "rate_limit": _rate_limit_scope(app),
            "timestamp": time.time(),
        }
    )


def database_backend(app: web.Application) -> str:
    return app[keys.DATABASE].backend


def _rate_limit_scope(app: web.Application) -> dict[str, Any]:
    """Which counter the per-client limit uses: Redis is one counter for every instance
    behind one address; the in-process one counts this process's requests only (the geo
    edge's stick table shares the limit across regions then: its /status says so)."""
    from pitchey.ratelimit import RedisRateLimiter

    settings = app[keys.SETTINGS]
    per_minute = settings.rate_limit_per_minute
    if per_minute <= 0:
        scope = "off"
    elif isinstance(app[keys.RATE_LIMITER], RedisRateLimiter):
        scope = "redis (shared by every instance)"
    else:
        scope = "this process only"
    client = ("right-most X-Forwarded-For entry" if settings.trust_forwarded_for
              else "peer address")
    return {"per_minute": max(0, per_minute), "scope": scope, "client": client}


async def config(request: web.Request) -> web.Response:
    if not admin_allowed(request):
        return _admin_only(request)
    return web.json_response(request.app[keys.SETTINGS].redacted())


def metrics_app(service: web.Application) -> web.Application:
    """An application serving only `GET /metrics` of `service`'s registry, for
    PITCHEY_METRICS_PORT (a scrape port of its own, as Prometheus exporters have)."""
    from pitchey.security import SECURITY_HEADERS

    async def metrics_only(request: web.Request) -> web.Response:
        if request.path != "/metrics" or request.method not in ("GET", "HEAD"):
            return json_error(404, "not_found", "only GET /metrics is served on this port",
                              headers=SECURITY_HEADERS)
        response = _metrics_response(service)
        response.headers.update(SECURITY_HEADERS)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:[\\s\\S]*}", metrics_only)
    return app


def add_observability_routes(router: RouteTable) -> None:
    router.add_get("/health", health, name="health")
    router.add_get("/health/db", health_db, name="health_db")
    router.add_get("/health/services", health_services, name="health_services")
    router.add_get("/api/health", api_health, name="api_health")
    router.add_get("/metrics", metrics_endpoint, name="metrics")
    router.add_get("/status", status, name="status")
    router.add_get("/config", config, name="config")
