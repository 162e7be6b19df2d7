"""The NDA workflow: POST/GET /api/info-requests, POST /api/info-requests/{id}/approve|reject.

An investor or production user asks for a published pitch's protected fields; the pitch's
creator approves or rejects. One request per (pitch, user): asking again while one is
pending or approved is a 409; a rejected one may be reopened. Each step notifies the other
side, and bumps both dashboards and the requester's access set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pitchey.api.common import SERVICES, iso, json_response, page_of
from pitchey.auth import require_user
from pitchey.errors import ApiError, field_errors
from pitchey.instrumentation import RouteTable
from pitchey.storage import Row, inbox, ndas
from pitchey.storage import pitches as pitch_store
from pitchey.storage.errors import UniqueViolation
from pitchey.validation import Checker, parse_id, parse_page, parse_query_choice, read_json

__all__ = ["add_info_request_routes", "info_request_body"]

REQUESTER_PORTALS = ("investor", "production")
STATUSES = ("pending", "approved", "rejected")


def info_request_body(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "pitch": {"id": row["pitch_id"], "title": row["pitch_title"],
                  "creator_id": row["creator_id"]},
        "requester": {"id": row["user_id"], "name": row["user_name"],
                      "portal": row["user_portal"]},
        "status": row["status"],
        "message": row["message"],
        "created_at": iso(row["created_at"]),
        "decided_at": iso(row["decided_at"]),
    }


async def create_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user = await require_user(request, REQUESTER_PORTALS)
    check = Checker(await read_json(request))
    check.identifier("pitch_id")
    check.text("message", 0, 2000, required=False, nullable=True)
    values = check.done()
    pitch_id: int = values["pitch_id"]
    now = services.clock()
    try:
        async with services.db.transaction() as tx:
            pitch = await pitch_store.owner_of(tx, pitch_id)
            if pitch is None or pitch["status"] != "published":
                raise field_errors({"pitch_id": "no such published pitch"})
            existing = await ndas.find(tx, pitch_id, user.id)
            if existing is not None and existing["status"] != "rejected":
                raise ApiError(
                    409, "already_requested",
                    f"you already have a {existing['status']} request for this pitch",
                )
            reopen = int(existing["id"]) if existing is not None else None
            request_id = await ndas.open_request(
                tx, pitch_id, user.id, values.get("message"), now, reopen
            )
            await inbox.notify(
                tx, int(pitch["creator_id"]), "nda_requested", "New NDA request",
                f"{user.name} asked for the details of \u201c{pitch['title']}\u201d",
                {"info_request_id": request_id, "pitch_id": pitch_id}, now,
            )
            row = await ndas.get(tx, request_id)
    except UniqueViolation:  # a concurrent duplicate won the race
        raise ApiError(409, "already_requested", "you already requested this pitch") from None
    assert row is not None
    await services.invalidate(
        f"dashboard:{pitch['creator_id']}", f"dashboard:{user.id}", f"access:{user.id}"
    )
    return json_response(info_request_body(row), status=201)


async def list_requests(request: web.Request) -> web.StreamResponse:
    """Creators see requests on their pitches; investors and production users their own."""
    services = request.app[SERVICES]
    user = await require_user(request, None)
    errors: dict[str, str] = {}
    page = parse_page(request.query, errors)
    status = parse_query_choice(request.query, "status", STATUSES, errors)
    if errors:
        raise field_errors(errors)
    lister = ndas.list_for_creator if user.portal == "creator" else ndas.list_for_requester
    rows = await lister(services.db, user.id, status, page.per_page + 1, page.offset)
    items, more = page_of(rows, page.per_page)
    return json_response({
        "items": [info_request_body(row) for row in items],
        "page": page.page, "per_page": page.per_page, "has_more": more,
    })


def _decision_handler(status: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    verb = "approve" if status == "approved" else "reject"

    async def decide(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        user = await require_user(request, "creator")
        request_id = parse_id(request.match_info["id"], "info request")
        now = services.clock()
        async with services.db.transaction() as tx:
            row = await ndas.get(tx, request_id)
            if row is None or row["creator_id"] != user.id:
                # someone else's request is not found, not forbidden: ids are not probeable
                raise ApiError(404, "not_found", "no such info request on your pitches")
            if not await ndas.decide(tx, request_id, status, now):
                raise ApiError(409, "already_decided", f"this request is already {row['status']}")
            await inbox.notify(
                tx, int(row["user_id"]), f"nda_{status}", f"NDA request {status}",
                f"Your request for \u201c{row['pitch_title']}\u201d was {status}",
                {"info_request_id": request_id, "pitch_id": row["pitch_id"]}, now,
            )
            decided = await ndas.get(tx, request_id)
        assert decided is not None
        await services.invalidate(
            f"dashboard:{user.id}", f"dashboard:{row['user_id']}", f"access:{row['user_id']}"
        )
        return json_response(info_request_body(decided))

    decide.__name__ = f"{verb}_request"
    decide.__doc__ = f"The pitch's creator {verb}s a pending NDA request."
    return decide


def add_info_request_routes(router: RouteTable) -> None:
    router.add_post("/api/info-requests", create_request, name="info_requests_create")
    router.add_get("/api/info-requests", list_requests, name="info_requests_list")
    router.add_post(
        r"/api/info-requests/{id:\d+}/approve", _decision_handler("approved"),
        name="info_requests_approve",
    )
    router.add_post(
        r"/api/info-requests/{id:\d+}/reject", _decision_handler("rejected"),
        name="info_requests_reject",
    )
