"""POST /api/analytics/events (record one event, signed in or not) and
GET /api/analytics/events (the signed-in user's summary by event type)."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from pitchey.api.common import SERVICES, json_response, visible_pitch
from pitchey.auth import current_session, require_user
from pitchey.errors import field_errors
from pitchey.instrumentation import RouteTable
from pitchey.storage import activity
from pitchey.validation import Checker, parse_query_int, read_json

__all__ = ["EVENT_TYPE", "MAX_DAYS", "MAX_PROPERTIES_BYTES", "add_analytics_routes"]

EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
MAX_PROPERTIES_BYTES = 4096
MAX_DAYS = 365
_DEFAULT_DAYS = 30


def _event(body: dict[str, Any]) -> dict[str, Any]:
    check = Checker(body)
    check.text("event_type", 1, 64)
    check.identifier("pitch_id", required=False, nullable=True)
    values = check.done()
    errors: dict[str, str] = {}
    # the untrimmed text, as the document's pattern states it: " view" is no event type
    if not EVENT_TYPE.fullmatch(body["event_type"]):
        errors["event_type"] = (
            "must be lowercase letters, digits, '_' or '.', starting with a letter"
        )
    # absent means {}; null is refused like any other non-object (the document says object)
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        errors["properties"] = "must be a JSON object"
    elif len(json.dumps(properties, ensure_ascii=True)) > MAX_PROPERTIES_BYTES:
        errors["properties"] = f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"
    if errors:
        raise field_errors(errors)
    values["properties"] = properties
    return values


async def record_event(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    values = _event(await read_json(request))
    session = await current_session(request)
    pitch_id: int | None = values.get("pitch_id")
    owner: int | None = None
    if pitch_id is not None:
        meta = await visible_pitch(services.db, pitch_id, session.user.id if session else None)
        if meta is None:
            raise field_errors({"pitch_id": "no such pitch"})
        owner = int(meta["creator_id"])
    event_id = await activity.record_event(
        services.db, session.user.id if session else None, values["event_type"], pitch_id,
        values["properties"], services.clock(),
    )
    if owner is not None:  # the creator's dashboard counts events on their pitches
        await services.invalidate(f"dashboard:{owner}")
    return json_response({"id": event_id, "recorded": True}, status=201)


async def event_summary(request: web.Request) -> web.StreamResponse:
    """Counts by event type over the last `days` (1-MAX_DAYS, default 30): the user's own events,
    and for creators the events on their pitches."""
    services = request.app[SERVICES]
    user = await require_user(request, None)
    errors: dict[str, str] = {}
    days = parse_query_int(request.query, "days", _DEFAULT_DAYS, MAX_DAYS, errors)
    if errors:
        raise field_errors(errors)
    since = services.clock() - days * 86400
    body: dict[str, Any] = {
        "days": days,
        "mine": await activity.user_event_counts(services.db, user.id, since),
    }
    if user.portal == "creator":
        body["on_my_pitches"] = await activity.creator_event_counts(services.db, user.id, since)
    return json_response(body)


def add_analytics_routes(router: RouteTable) -> None:
    router.add_post("/api/analytics/events", record_event, name="analytics_record")
    router.add_get("/api/analytics/events", event_summary, name="analytics_summary")
