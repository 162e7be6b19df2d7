"""The Pitchey platform API ("Cloudflare Deployment Guide for Pitchey Platform", § Service URLs
and Endpoints › API Endpoints Structure): `add_routes(app, routes)` registers every route by
name on the instrumented route table.

Handlers find their collaborators in `app[SERVICES]`, built at startup from the lead's app
keys (the database and cache are opened by the app's cleanup context, which runs first).
`app[CLOCK]` (default `time.time`) is the one clock for session expiry and timestamps; a
test may replace it before the app starts.
"""

from __future__ import annotations

import time

from aiohttp import web

from pitchey import keys
from pitchey.api.analytics import add_analytics_routes
from pitchey.api.common import CLOCK, SERVICES, Services
from pitchey.api.dashboards import add_dashboard_routes
from pitchey.api.inbox import add_inbox_routes
from pitchey.api.info_requests import add_info_request_routes
from pitchey.api.pitches import add_pitch_routes
from pitchey.api.sessions import add_session_routes
from pitchey.auth import AUTH, Auth
from pitchey.instrumentation import RouteTable

__all__ = ["CLOCK", "SERVICES", "Services", "add_routes"]


async def _start_services(app: web.Application) -> None:
    clock = app[CLOCK]
    database = app[keys.DATABASE]
    cache = app[keys.CACHE]
    auth = Auth(app[keys.SETTINGS], database, cache, clock, app[keys.METRICS])
    app[AUTH] = auth
    app[SERVICES] = Services(
        settings=app[keys.SETTINGS],
        metrics=app[keys.METRICS],
        tracing=app[keys.TRACING],
        db=database,
        cache=cache,
        auth=auth,
        clock=clock,
    )


def add_routes(app: web.Application, routes: RouteTable) -> None:
    """Register the API's routes and the startup hook that wires their services."""
    if CLOCK not in app:
        app[CLOCK] = time.time
    add_session_routes(routes)
    add_pitch_routes(routes)
    add_dashboard_routes(routes)
    add_info_request_routes(routes)
    add_inbox_routes(routes)
    add_analytics_routes(routes)
    app.on_startup.append(_start_services)
