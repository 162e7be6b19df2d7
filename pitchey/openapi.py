"""OpenAPI 3.1 description of the whole service, built from the live router.

Paths and methods come from `app.router`, so the document can never list a route that does
not exist; each route's documentation comes from `OPERATIONS`, keyed by route name, and a
test fails when a route has no entry. Field limits and enums are read from
`pitchey.validation`, the same constants that enforce them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pitchey.api.analytics import EVENT_TYPE, MAX_DAYS, MAX_PROPERTIES_BYTES
from pitchey.idempotency import HEADER as IDEMPOTENCY_HEADER
from pitchey.idempotency import WRITE_METHODS
from pitchey.instrumentation import UNLIMITED_PATHS
from pitchey.validation import (
    BUDGET_RANGES,
    DEFAULT_PER_PAGE,
    GENRES,
    MAX_ID,
    MAX_PAGE,
    MAX_PER_PAGE,
    PITCH_STATUSES,
    PORTALS,
    PUBLIC_STATUSES,
    TEXT_LIMITS,
)

__all__ = ["OPERATIONS", "Operation", "build_openapi", "undocumented_routes"]

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: dict[int, tuple[str, str | None]]  # status -> (description, schema name)
    body: str | None = None
    auth: str = "none"  # none | optional | required | <portal>
    query: tuple[dict[str, Any], ...] = ()
    content_type: str = _JSON
    extra: dict[str, Any] = field(default_factory=dict)
    # whether the handler reaches the database or the shared cache, and so can answer 503
    # when they are down (the health probes document their own 503)
    storage: bool = True
    headers: tuple[dict[str, Any], ...] = ()  # request header parameters
    response_headers: dict[int, dict[str, Any]] = field(default_factory=dict)  # by status


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_PAGE = (
    _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
           "1-based page number"),
    _query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                        "default": DEFAULT_PER_PAGE}, "items per page"),
)
_E = {400: ("Malformed JSON body", "Error"), 401: ("No valid session", "Error"),
      403: ("Session of another portal, or not the owner", "Error"),
      404: ("Not found", "Error"), 409: ("Conflicts with the current state", "Error"),
      413: ("The body is larger than the service accepts (`PITCHEY_MAX_BODY_BYTES`)", "Error"),
      422: ("Invalid input; `fields` names each field and why", "Error"),
      429: ("Too many requests from this client; `Retry-After` says when to retry", "Error"),
      503: ("Storage unavailable; nothing was changed", "Error")}
# added to every operation they can happen on (see `_operation`), so no entry can forget them
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "integer", "minimum": 0}}}
# pitch versions (pitchey.api.pitches): a strong ETag per representation, If-Match on writes
_ETAG = {"ETag": {"description": "strong validator of this representation (the pitch's "
                                 "version and who it is for); send it back in `If-Match`",
                  "schema": {"type": "string"}}}
_IF_MATCH = ({"name": "If-Match", "in": "header", "required": False,
              "schema": {"type": "string"},
              "description": "write only if the pitch is still at this ETag (the owner's, from "
                             "a read or a write), or `*`; absent: unconditional"},)
_STALE = {412: ("If-Match names no current version of the pitch (`precondition_failed`): "
                "read it again and retry", "Error")}


_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
    "description": "Executes this write at most once per key and user (client address when "
                   "anonymous) for 24 h: a repeat of the same request gets the stored answer "
                   "with `Idempotent-Replayed: true`; the key with another method, path or "
                   "body is a 422 (`idempotency_key_mismatch`); while the first is still "
                   "running, a 409 (`idempotency_key_in_use`) with `Retry-After`. Ignored "
                   "by the /api/auth/ routes (their answers hold session tokens).",
}


def _errors(*statuses: int) -> dict[int, tuple[str, str | None]]:
    return {status: _E[status] for status in statuses}


def _login(portal: str) -> Operation:
    return Operation(
        f"Sign in to the {portal} portal", "auth",
        {200: ("Signed in; sets the `pitchey_session` cookie", "SessionResponse"),
         **_errors(400, 422), 401: ("Wrong email or password", "Error"),
         403: ("The account belongs to another portal", "Error"),
         429: ("Too many requests from this client, or too many failed sign-ins for this "
               "account or address (`too_many_attempts`, answered before the password is "
               "checked); `Retry-After` says when to retry", "Error")},
        body="Credentials",
    )


def _dashboard(portal: str) -> Operation:
    return Operation(
        f"{portal.capitalize()} dashboard figures (cached 5 min per user)", "dashboards",
        {200: ("Dashboard", "Dashboard"), **_errors(401, 403)}, auth=portal,
    )


_OBSERVABILITY = "observability"
OPERATIONS: dict[str, Operation] = {
    "health": Operation("Liveness: cheap, touches nothing", _OBSERVABILITY,
                        {200: ("Alive", "Object")}, storage=False),
    "health_db": Operation("Database health and latency", _OBSERVABILITY,
                           {200: ("Healthy", "Object"), 503: ("Unhealthy", "Object")},
                           storage=False),
    "health_services": Operation("Health of every dependency", _OBSERVABILITY,
                                 {200: ("Healthy", "Object"), 503: ("Unhealthy", "Object")},
                                 storage=False),
    "api_health": Operation("The Deployment Architecture document's detailed health "
                            "(status, services, metrics)",
                            _OBSERVABILITY, {200: ("Healthy or degraded", "Object"),
                                             503: ("Unhealthy", "Object")}, storage=False),
    "metrics": Operation("Prometheus metrics (text exposition format)", _OBSERVABILITY,
                         {200: ("Metrics", None)}, content_type="text/plain", storage=False),
    "status": Operation("Version, uptime, region, config hash, dependencies, recent p95",
                        _OBSERVABILITY, {200: ("Status", "Object")}, storage=False),
    "config": Operation("Effective settings with every secret redacted", _OBSERVABILITY,
                        {200: ("Settings", "Object")}, storage=False),
    "openapi": Operation("This document", _OBSERVABILITY, {200: ("OpenAPI 3.1", "Object")},
                         storage=False),
    **{f"auth_{portal}_login": _login(portal) for portal in PORTALS},
    "auth_refresh": Operation(
        "Extend the session: a new token with a fresh 24 h expiry, never past the session's "
        "absolute lifetime (`PITCHEY_SESSION_MAX_LIFETIME`, 7 days from sign-in; then 401); "
        "the old token stops working",
        "auth", {200: ("Renewed; sets the cookie", "SessionResponse"), **_errors(401)},
        auth="required"),
    "auth_logout": Operation("End the session (if any) and clear the cookie", "auth",
                             {200: ("Signed out", "Object")}, auth="optional"),
    "auth_me": Operation("The signed-in user", "auth",
                         {200: ("User and session expiry", "Object"), **_errors(401)},
                         auth="required"),
    "pitches_list": Operation(
        "List published (or archived) pitches, newest first; cached 10 min", "pitches",
        {200: ("One page", "PitchPage"), **_errors(422)},
        query=(*_PAGE,
               _query("status", {"type": "string", "enum": list(PUBLIC_STATUSES),
                                 "default": "published"}, "pitch status"),
               _query("genre", {"type": "string", "enum": list(GENRES)}, "genre filter"),
               _query("budget_range", {"type": "string", "enum": list(BUDGET_RANGES)},
                      "budget filter"))),
    "pitches_create": Operation(
        "Create a pitch (creator portal)", "pitches",
        {201: ("Created", "Pitch"), **_errors(400, 401, 403, 422)},
        body="PitchInput", auth="creator", response_headers={201: _ETAG}),
    "pitches_get": Operation(
        "One pitch; protected fields only for its creator and approved-NDA holders", "pitches",
        {200: ("The pitch", "Pitch"), **_errors(404)}, auth="optional",
        response_headers={200: _ETAG}),
    "pitches_update": Operation(
        "Change some fields of your pitch (only if still at `If-Match`, when sent)", "pitches",
        {200: ("Updated", "Pitch"), **_errors(400, 401, 403, 404, 422), **_STALE},
        body="PitchUpdate", auth="required", headers=_IF_MATCH, response_headers={200: _ETAG}),
    "pitches_delete": Operation("Delete your pitch (only if still at `If-Match`, when sent)",
                                "pitches",
                                {204: ("Deleted", None), **_errors(401, 403, 404), **_STALE},
                                auth="required", headers=_IF_MATCH),
    **{f"dashboard_{portal}": _dashboard(portal) for portal in PORTALS},
    "info_requests_create": Operation(
        "Request an NDA for a published pitch (investor or production portal)", "info-requests",
        {201: ("Requested (or a rejected request reopened)", "InfoRequest"),
         **_errors(400, 401, 403, 409, 422)},
        body="InfoRequestInput", auth="investor|production"),
    "info_requests_list": Operation(
        "Creators: requests on their pitches; others: their own requests", "info-requests",
        {200: ("One page", "InfoRequestPage"), **_errors(401, 422)}, auth="required",
        query=(*_PAGE, _query("status", {"type": "string",
                                         "enum": ["pending", "approved", "rejected"]},
                              "request status (absent: every status)"))),
    "info_requests_approve": Operation(
        "Approve a pending request on your pitch", "info-requests",
        {200: ("Approved", "InfoRequest"), **_errors(401, 403, 404, 409)}, auth="creator"),
    "info_requests_reject": Operation(
        "Reject a pending request on your pitch", "info-requests",
        {200: ("Rejected", "InfoRequest"), **_errors(401, 403, 404, 409)}, auth="creator"),
    "messages_list": Operation(
        "Your messages, newest first; `with` narrows to one conversation", "messages",
        {200: ("One page", "MessagePage"), **_errors(401, 422)}, auth="required",
        query=(*_PAGE, _query("with", {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                              "the other user"))),
    "messages_send": Operation("Send a message to another user", "messages",
                               {201: ("Sent", "Message"), **_errors(400, 401, 422)},
                               body="MessageInput", auth="required"),
    "notifications_list": Operation(
        "Your notifications, newest first", "notifications",
        {200: ("One page", "NotificationPage"), **_errors(401, 422)}, auth="required",
        query=(*_PAGE, _query("unread", {"type": "boolean", "default": False},
                              "only unread ones"))),
    "notifications_read": Operation("Mark one of your notifications read", "notifications",
                                    {200: ("Read", "Notification"), **_errors(401, 404)},
                                    auth="required"),
    "analytics_record": Operation(
        "Record an analytics event (signed in or anonymous)", "analytics",
        {201: ("Recorded", "Object"), **_errors(400, 422)}, body="AnalyticsEventInput",
        auth="optional"),
    "analytics_summary": Operation(
        "Your event counts by type (and, for creators, events on your pitches)", "analytics",
        {200: ("Summary", "AnalyticsSummary"), **_errors(401, 422)}, auth="required",
        query=(_query("days", {"type": "integer", "minimum": 1, "maximum": MAX_DAYS,
                               "default": 30}, "window in days"),)),
}


def _text(name: str) -> dict[str, Any]:
    low, high = TEXT_LIMITS[name]
    return {"type": "string", "minLength": low, "maxLength": high,
            "description": "trimmed before the length check; no NUL characters"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _page_of(item: str, counted: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"items": {"type": "array", "items": _ref(item)},
                                  "page": {"type": "integer"}, "per_page": {"type": "integer"}}
    if counted:
        properties.update(total={"type": "integer"}, pages={"type": "integer"})
    else:
        properties["has_more"] = {"type": "boolean"}
    return {"type": "object", "properties": properties, "required": sorted(properties)}


_VISIBLE_PITCH = ("a pitch the caller may see: someone else's draft is refused (422) exactly "
                  "like an id that does not exist")


def _schemas() -> dict[str, Any]:
    pitch_fields = {
        "title": _text("title"), "logline": _text("logline"), "synopsis": _text("synopsis"),
        "genre": {"type": "string", "enum": list(GENRES)},
        "budget_range": {"type": "string", "enum": list(BUDGET_RANGES)},
        "status": {"type": "string", "enum": list(PITCH_STATUSES), "default": "published"},
        "budget_details": _nullable(_text("budget_details")),
        "script_url": _nullable({**_text("script_url"), "format": "uri"}),
    }
    ident = {"type": "integer", "minimum": 1}
    timestamp = {"type": "string", "format": "date-time"}
    named = {"type": "object", "properties": {"id": ident, "name": {"type": "string"}}}
    return {
        "Object": {"type": "object"},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["status", "code", "message"],
            "properties": {"status": {"type": "integer"}, "code": {"type": "string"},
                           "message": {"type": "string"},
                           "fields": {"type": "object",
                                      "additionalProperties": {"type": "string"}}}}}},
        "Credentials": {"type": "object", "required": ["email", "password"], "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024}}},
        "User": {"type": "object", "properties": {
            "id": ident, "email": {"type": "string"}, "name": {"type": "string"},
            "portal": {"type": "string", "enum": list(PORTALS)},
            "company": _nullable({"type": "string"})}},
        "SessionResponse": {"type": "object", "required": ["user", "session"], "properties": {
            "user": _ref("User"),
            "session": {"type": "object", "properties": {
                "token": {"type": "string", "description": "also usable as a Bearer token"},
                "expires_at": timestamp}}}},
        "PitchInput": {"type": "object", "properties": pitch_fields,
                       "required": ["title", "logline", "synopsis", "genre", "budget_range"]},
        "PitchUpdate": {"type": "object", "properties": pitch_fields, "minProperties": 1},
        "PitchSummary": {"type": "object", "properties": {
            "id": ident, "title": {"type": "string"}, "logline": {"type": "string"},
            "genre": pitch_fields["genre"], "budget_range": pitch_fields["budget_range"],
            "status": pitch_fields["status"], "creator": named,
            "created_at": timestamp, "updated_at": timestamp}},
        "Pitch": {"allOf": [_ref("PitchSummary"), {"type": "object", "properties": {
            "access": {"type": "string", "enum": ["public", "owner", "nda"]},
            "protected_fields": {"type": "array", "items": {"type": "string"}},
            "synopsis": {"type": "string"}, "budget_details": _nullable({"type": "string"}),
            "script_url": _nullable({"type": "string"})}}]},
        "PitchPage": _page_of("PitchSummary", counted=True),
        "InfoRequestInput": {"type": "object", "required": ["pitch_id"], "properties": {
            "pitch_id": ident, "message": _nullable({"type": "string", "maxLength": 2000})}},
        "InfoRequest": {"type": "object", "properties": {
            "id": ident, "pitch": {"type": "object"}, "requester": {"type": "object"},
            "status": {"type": "string", "enum": ["pending", "approved", "rejected"]},
            "message": _nullable({"type": "string"}), "created_at": timestamp,
            "decided_at": _nullable(timestamp)}},
        "InfoRequestPage": _page_of("InfoRequest", counted=False),
        "MessageInput": {"type": "object", "required": ["recipient_id", "body"], "properties": {
            "recipient_id": ident, "body": {"type": "string", "minLength": 1, "maxLength": 5000,
                                            "description": "trimmed before the length check"},
            "pitch_id": {**_nullable(ident), "description": _VISIBLE_PITCH}}},
        "Message": {"type": "object", "properties": {
            "id": ident, "conversation_id": {"type": "string"}, "sender": named,
            "recipient": named, "pitch_id": _nullable(ident), "body": {"type": "string"},
            "created_at": timestamp}},
        "MessagePage": _page_of("Message", counted=False),
        "Notification": {"type": "object", "properties": {
            "id": ident, "kind": {"type": "string"}, "title": {"type": "string"},
            "body": {"type": "string"}, "data": {"type": "object"}, "read": {"type": "boolean"},
            "created_at": timestamp, "read_at": _nullable(timestamp)}},
        "NotificationPage": _page_of("Notification", counted=False),
        "AnalyticsEventInput": {"type": "object", "required": ["event_type"], "properties": {
            "event_type": {"type": "string", "pattern": f"^{EVENT_TYPE.pattern}$"},
            "pitch_id": {**_nullable(ident), "description": _VISIBLE_PITCH},
            "properties": {"type": "object",
                           "description": f"at most {MAX_PROPERTIES_BYTES} bytes as JSON "
                                          "(ASCII-escaped); absent means {}, null is refused"}}},
        "AnalyticsSummary": {"type": "object", "properties": {
            "days": {"type": "integer"},
            "mine": {"type": "object", "additionalProperties": {"type": "integer"}},
            "on_my_pitches": {"type": "object", "additionalProperties": {"type": "integer"}}}},
        "Dashboard": {"type": "object", "required": ["portal", "user", "generated_at"],
                      "properties": {"portal": {"type": "string", "enum": list(PORTALS)},
                                     "user": _ref("User"), "generated_at": timestamp}},
    }


def _security(auth: str) -> list[dict[str, list[str]]] | None:
    if auth == "none":
        return None
    schemes: list[dict[str, list[str]]] = [{"cookieAuth": []}, {"bearerAuth": []}]
    return [*schemes, {}] if auth == "optional" else schemes


def _operation(route: web.AbstractRoute, path: str, doc: Operation) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": doc.summary,
        "tags": [doc.tag],
        "responses": {},
    }
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1}}
        for name in _PARAM.findall(path)
    ] + list(doc.query) + list(doc.headers)
    if route.method in WRITE_METHODS:
        parameters.append(_IDEMPOTENCY_KEY)
    if parameters:
        operation["parameters"] = parameters
    if doc.body:
        operation["requestBody"] = {"required": True,
                                    "content": {_JSON: {"schema": _ref(doc.body)}}}
    responses = dict(doc.responses)
    if doc.body is not None:
        responses.setdefault(413, _E[413])
    if path not in UNLIMITED_PATHS:
        responses.setdefault(429, _E[429])
    if doc.storage:
        responses.setdefault(503, _E[503])
    if route.method in WRITE_METHODS:  # an Idempotency-Key in use, reused or malformed
        responses.setdefault(409, _E[409])
        responses.setdefault(422, _E[422])
    for status, (description, schema) in sorted(responses.items()):
        response: dict[str, Any] = {"description": description}
        if status in (429, 503) and schema == "Error":
            response["headers"] = _RETRY_AFTER
        if schema == "Error":
            response["content"] = {_JSON: {"schema": _ref(schema)}}
        elif schema is not None:
            response["content"] = {doc.content_type: {"schema": _ref(schema)}}
        elif doc.content_type != _JSON:
            response["content"] = {doc.content_type: {"schema": {"type": "string"}}}
        if status in doc.response_headers:
            response["headers"] = {**response.get("headers", {}), **doc.response_headers[status]}
        operation["responses"][str(status)] = response
    security = _security(doc.auth)
    if security is not None:
        operation["security"] = security
    if doc.auth not in ("none", "optional", "required"):
        operation["x-portal"] = doc.auth.split("|")
    return operation


def _documented_routes(app: web.Application) -> list[tuple[web.AbstractRoute, str]]:
    routes = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        routes.append((route, _PARAM.sub(r"{\1}", route.resource.canonical)))
    return routes


def undocumented_routes(app: web.Application) -> list[str]:
    """`METHOD path` of every route without an OPERATIONS entry (a test keeps this empty)."""
    return [f"{route.method} {path}" for route, path in _documented_routes(app)
            if route.name not in OPERATIONS]


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route registered on `app`."""
    paths: dict[str, dict[str, Any]] = {}
    for route, path in _documented_routes(app):
        doc = OPERATIONS.get(route.name or "") or Operation(
            (route.handler.__doc__ or route.handler.__name__).strip().splitlines()[0],
            "undocumented", {200: ("OK", None)},
        )
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, path, doc)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Pitchey platform API",
            "version": "0.1.0",
            "description": "The Pitchey platform (as the Cloudflare Deployment Guide describes "
                           "it): per-portal sign-in, pitches, "
                           "the NDA workflow, messages, notifications, analytics, dashboards, "
                           "and the service's health and metrics endpoints.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "pitchey_session"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
    }
