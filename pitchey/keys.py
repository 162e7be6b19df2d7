"""Typed application state: every shared object of the app lives under one of these keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from pitchey.cache import Cache
    from pitchey.metrics import ServiceMetrics
    from pitchey.ratelimit import RateLimiter
    from pitchey.runtime import RuntimeStats
    from pitchey.settings import Settings
    from pitchey.storage import Database
    from pitchey.tracing import Tracing

__all__ = [
    "SETTINGS",
    "METRICS",
    "DATABASE",
    "CACHE",
    "TRACING",
    "RATE_LIMITER",
    "RUNTIME",
]

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[ServiceMetrics] = web.AppKey("metrics")
DATABASE: web.AppKey[Database] = web.AppKey("database")
CACHE: web.AppKey[Cache] = web.AppKey("cache")
TRACING: web.AppKey[Tracing] = web.AppKey("tracing")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
RUNTIME: web.AppKey[RuntimeStats] = web.AppKey("runtime")
