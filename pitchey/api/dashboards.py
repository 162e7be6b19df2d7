"""GET /api/dashboard/{creator,investor,production}/metrics: one cached body per user.

Each body is cached for 5 minutes (docs/targets.md) under the namespace "dashboard:<user id>",
which every write that changes one of its figures bumps (pitch writes by the creator, NDA
requests and decisions for both sides, notifications, analytics events on the creator's
pitches). The production dashboard also shows the public catalogue, so its key carries the
"pitches" generation: any pitch write anywhere makes it reload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pitchey.api.common import SERVICES, Services, dumps, iso, json_body
from pitchey.auth import User, require_user
from pitchey.instrumentation import RouteTable
from pitchey.storage import Connection
from pitchey.storage import activity as store

__all__ = ["add_dashboard_routes"]

Builder = Callable[[Connection, User, float], Awaitable[dict[str, Any]]]
_RECENT = 5
_VIEW_WINDOW_S = 30 * 86400


async def _creator(conn: Connection, user: User, now: float) -> dict[str, Any]:
    recent = await store.recent_pitches(conn, user.id, _RECENT)
    return {
        "pitches": await store.pitch_status_counts(conn, user.id),
        "info_requests": await store.info_request_counts(conn, user.id, as_creator=True),
        "events_30d": await store.creator_event_counts(conn, user.id, now - _VIEW_WINDOW_S),
        "recent_pitches": [
            {"id": r["id"], "title": r["title"], "status": r["status"],
             "created_at": iso(r["created_at"])}
            for r in recent
        ],
    }


async def _investor(conn: Connection, user: User, now: float) -> dict[str, Any]:
    return {
        "info_requests": await store.info_request_counts(conn, user.id, as_creator=False),
        "portfolio": await store.portfolio(conn, user.id),
    }


async def _production(conn: Connection, user: User, now: float) -> dict[str, Any]:
    return {
        "info_requests": await store.info_request_counts(conn, user.id, as_creator=False),
        "catalog": {"published_by_genre": await store.catalog_by_genre(conn)},
    }


_BUILDERS: dict[str, Builder] = {
    "creator": _creator, "investor": _investor, "production": _production,
}


async def _body(services: Services, user: User, portal: str) -> bytes:
    now = services.clock()
    # plain reads, not a transaction: on SQLite they run on the read connections, beside writes
    figures = await _BUILDERS[portal](services.db, user, now)
    unread = await store.unread_notifications(services.db, user.id)
    return dumps({
        "portal": portal,
        "user": user.public(),
        **figures,
        "unread_notifications": unread,
        "generated_at": iso(now),
    })


def _dashboard_handler(portal: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def dashboard(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        user = await require_user(request, portal)
        key = portal
        if portal == "production":
            key = f"{portal}:{await services.cache.generation('pitches')}"
        body = await services.cached(
            f"dashboard:{user.id}", key, services.settings.cache_ttl_dashboard_s,
            lambda: _body(services, user, portal),
        )
        return json_body(body)

    dashboard.__name__ = f"{portal}_dashboard"
    dashboard.__doc__ = f"The {portal} portal's dashboard figures for the signed-in user."
    return dashboard


def add_dashboard_routes(router: RouteTable) -> None:
    for portal in _BUILDERS:
        router.add_get(
            f"/api/dashboard/{portal}/metrics", _dashboard_handler(portal),
            name=f"dashboard_{portal}",
        )
