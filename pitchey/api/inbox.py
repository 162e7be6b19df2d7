"""GET/POST /api/messages, GET /api/notifications, POST /api/notifications/{id}/read."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pitchey.api.common import SERVICES, iso, json_response, page_of, visible_pitch
from pitchey.auth import require_user
from pitchey.errors import ApiError, field_errors
from pitchey.instrumentation import RouteTable
from pitchey.storage import Row, inbox
from pitchey.validation import Checker, parse_id, parse_page, parse_query_id, read_json

__all__ = ["add_inbox_routes", "message_body", "notification_body"]

_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


def message_body(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "sender": {"id": row["sender_id"], "name": row["sender_name"]},
        "recipient": {"id": row["recipient_id"], "name": row["recipient_name"]},
        "pitch_id": row["pitch_id"],
        "body": row["body"],
        "created_at": iso(row["created_at"]),
    }


def notification_body(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "title": row["title"],
        "body": row["body"],
        "data": json.loads(row["data"]),
        "created_at": iso(row["created_at"]),
        "read": row["read_at"] is not None,
        "read_at": iso(row["read_at"]),
    }


async def send_message(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user = await require_user(request, None)
    check = Checker(await read_json(request))
    check.identifier("recipient_id")
    check.text("body", 1, 5000)
    check.identifier("pitch_id", required=False, nullable=True)
    values = check.done()
    recipient_id: int = values["recipient_id"]
    pitch_id: int | None = values.get("pitch_id")
    if recipient_id == user.id:
        raise field_errors({"recipient_id": "cannot be yourself"})
    now = services.clock()
    async with services.db.transaction() as tx:
        errors: dict[str, str] = {}
        if not await inbox.user_exists(tx, recipient_id):
            errors["recipient_id"] = "no such user"
        if pitch_id is not None and await visible_pitch(tx, pitch_id, user.id) is None:
            errors["pitch_id"] = "no such pitch"
        if errors:
            raise field_errors(errors)
        row = await inbox.insert_message(tx, user.id, recipient_id, values["body"], pitch_id, now)
        await inbox.notify(
            tx, recipient_id, "message", f"New message from {user.name}",
            values["body"][:140], {"message_id": row["id"], "sender_id": user.id}, now,
        )
    await services.invalidate(f"dashboard:{recipient_id}")
    return json_response(message_body(row), status=201)


async def list_messages(request: web.Request) -> web.StreamResponse:
    """The signed-in user's messages, newest first; `?with=<user id>` for one conversation."""
    services = request.app[SERVICES]
    user = await require_user(request, None)
    errors: dict[str, str] = {}
    page = parse_page(request.query, errors)
    other_id = parse_query_id(request.query, "with", errors)  # `?with=` is refused
    if errors:
        raise field_errors(errors)
    limit = page.per_page + 1
    if other_id is None:
        rows = await inbox.list_messages(services.db, user.id, limit, page.offset)
    else:
        rows = await inbox.list_conversation(services.db, user.id, other_id, limit, page.offset)
    items, more = page_of(rows, page.per_page)
    return json_response({
        "items": [message_body(row) for row in items],
        "page": page.page, "per_page": page.per_page, "has_more": more,
    })


async def list_notifications(request: web.Request) -> web.StreamResponse:
    """The signed-in user's notifications, newest first; `?unread=true` for unread ones."""
    services = request.app[SERVICES]
    user = await require_user(request, None)
    errors: dict[str, str] = {}
    page = parse_page(request.query, errors)
    unread = _BOOLEAN.get(request.query.get("unread", "false").lower())
    if unread is None:
        errors["unread"] = "must be true or false"
    if errors:
        raise field_errors(errors)
    rows = await inbox.list_notifications(
        services.db, user.id, bool(unread), page.per_page + 1, page.offset
    )
    items, more = page_of(rows, page.per_page)
    return json_response({
        "items": [notification_body(row) for row in items],
        "page": page.page, "per_page": page.per_page, "has_more": more,
    })


async def read_notification(request: web.Request) -> web.StreamResponse:
    """Marks one of the user's notifications read (idempotent)."""
    services = request.app[SERVICES]
    user = await require_user(request, None)
    notification_id = parse_id(request.match_info["id"], "notification")
    row = await inbox.mark_read(services.db, notification_id, user.id, services.clock())
    if row is None:
        raise ApiError(404, "not_found", "no such notification")
    await services.invalidate(f"dashboard:{user.id}")
    return json_response(notification_body(row))


def add_inbox_routes(router: RouteTable) -> None:
    router.add_get("/api/messages", list_messages, name="messages_list")
    router.add_post("/api/messages", send_message, name="messages_send")
    router.add_get("/api/notifications", list_notifications, name="notifications_list")
    router.add_post(
        r"/api/notifications/{id:\d+}/read", read_notification, name="notifications_read"
    )
