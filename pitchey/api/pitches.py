"""GET/POST /api/pitches, GET/PUT/DELETE /api/pitches/{id}.

Reads are served from cached JSON bytes (namespace "pitches", 10 min TTL: docs/targets.md); every
write bumps the namespace, so the next read anywhere reloads. Protected fields (synopsis,
budget_details, script_url) appear only for the pitch's creator and for users whose NDA
request on it was approved; everyone else gets the public body. Who may see what is itself
cached per user (namespace "access:<user id>"), bumped when that set changes; a delete bumps
it for the owner and for everyone who had an NDA request on the pitch.

Every representation carries a strong `ETag`, `"<version>-<access>"`: the pitch's `version`
column counts its writes, and the owner, an NDA holder and the public see different bodies,
so different tags. PUT and DELETE honour `If-Match` (RFC 9110 13.1.1) by comparing and
bumping the version in the one statement that writes; a stale tag is a 412. Check and write
are that one statement, so a PUT or DELETE racing a DELETE answers 404, never 500, and only
one of several DELETEs answers 204.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any, NoReturn

from aiohttp import web

from pitchey.api.common import SERVICES, Services, dumps, iso, json_body, json_response
from pitchey.auth import User, current_session, require_user
from pitchey.errors import ApiError
from pitchey.instrumentation import AnswerNow, RouteTable
from pitchey.storage import Connection, Row
from pitchey.storage import pitches as store
from pitchey.validation import ListQuery, parse_id, read_json, validate_pitch

__all__ = [
    "PROTECTED_FIELDS", "add_pitch_routes", "entity_tag", "full_pitch", "if_match_versions",
    "pitch_summary",
]

PROTECTED_FIELDS = ("synopsis", "budget_details", "script_url")
_ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')
# only the owner may write, so only the owner's representation can satisfy an If-Match; the
# digit bound keeps the number inside BIGINT
_OWNER_TAG = re.compile(r"([0-9]{1,18})-owner")


def entity_tag(version: int, access: str) -> str:
    """The strong ETag of one representation: the pitch's version and who it was for."""
    return f'"{version}-{access}"'


def if_match_versions(request: web.Request) -> frozenset[int] | None:
    """The versions the request's If-Match accepts; None when it sets no condition (no
    header, or `*`: any current representation, and a missing pitch is a 404 anyway).

    Comparison is strong (RFC 9110 8.8.3.2), so weak tags and tags of another
    representation match nothing: an empty set, which fails the condition."""
    values = request.headers.getall("If-Match", [])
    if not values:
        return None
    header = ",".join(values)
    if header.strip() == "*":
        return None
    versions = set()
    for weak, tag in _ENTITY_TAG.findall(header):
        match = None if weak else _OWNER_TAG.fullmatch(tag)
        if match is not None:
            versions.add(int(match.group(1)))
    return frozenset(versions)


def pitch_summary(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "logline": row["logline"],
        "genre": row["genre"],
        "budget_range": row["budget_range"],
        "status": row["status"],
        "creator": {"id": row["creator_id"], "name": row["creator_name"]},
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def public_pitch(row: Row) -> dict[str, Any]:
    return {**pitch_summary(row), "access": "public", "protected_fields": list(PROTECTED_FIELDS)}


def full_pitch(row: Row, access: str) -> dict[str, Any]:
    body = {**pitch_summary(row), "access": access}
    for field in PROTECTED_FIELDS:
        body[field] = row[field]
    return body


async def access_map(services: Services, user: User) -> dict[str, str]:
    """pitch id (as text) -> 'owner' | 'nda' for every pitch this user may read in full."""

    async def load() -> bytes:
        owned = await store.owned_ids(services.db, user.id)
        granted = await store.accessible_ids(services.db, user.id)
        mapping = {str(pitch_id): "nda" for pitch_id in granted}
        mapping.update({str(pitch_id): "owner" for pitch_id in owned})
        return dumps(mapping)

    blob = await services.cached(
        f"access:{user.id}", "pitches", services.settings.cache_ttl_pitches_s, load
    )
    result: dict[str, str] = json.loads(blob)
    return result


def cached_page_answer(app: web.Application) -> AnswerNow:
    """The list route's hot path: a page the in-process cache holds, answered without a
    coroutine (None sends the request on to `list_pitches`: a miss, Redis, or a query
    string not validated yet)."""
    resolved: list[Services] = []  # app[SERVICES] exists from startup on, then never changes

    def answer(request: web.Request) -> web.StreamResponse | None:
        services = resolved[0] if resolved else None
        if services is None:
            services = app[SERVICES]
            resolved.append(services)
        query = services.list_queries.get(request.query_string)
        if query is None:
            return None
        body = services.cached_now("pitches", query.cache_key)
        return None if body is None else json_body(body)

    return answer


async def list_pitches(request: web.Request) -> web.StreamResponse:
    """Published (or archived) pitches, newest first, paginated and filtered."""
    services = request.app[SERVICES]
    query = services.list_query(request)
    body = await services.cached(
        "pitches", query.cache_key, services.settings.cache_ttl_pitches_s,
        functools.partial(_load_pitch_page, services, query),
    )
    return json_body(body)


async def _load_pitch_page(services: Services, query: ListQuery) -> bytes:
    rows, total = await store.list_public(services.db, query)
    per_page = query.page.per_page
    return dumps({
        "items": [pitch_summary(row) for row in rows],
        "page": query.page.page,
        "per_page": per_page,
        "total": total,
        "pages": math.ceil(total / per_page),
    })


async def get_pitch(request: web.Request) -> web.StreamResponse:
    """One pitch: public fields for everyone, protected ones for the owner and NDA holders."""
    services = request.app[SERVICES]
    pitch_id = parse_id(request.match_info["id"], "pitch")
    ttl = services.settings.cache_ttl_pitches_s
    session = await current_session(request)
    access = (await access_map(services, session.user)).get(str(pitch_id)) if session else None

    view = access or "public"

    async def load() -> bytes:
        # the ETag is cached with the body it describes, on a line of its own before it
        # (compact JSON has no raw newline), so a hit answers both without a query
        row = await store.get(services.db, pitch_id)
        if row is None or (access is None and row["status"] == "draft"):
            raise ApiError(404, "not_found", "no such pitch")
        body = dumps(full_pitch(row, access) if access else public_pitch(row))
        return entity_tag(int(row["version"]), view).encode() + b"\n" + body

    tagged = await services.cached("pitches", f"tagged:{pitch_id}:{view}", ttl, load)
    tag, _, body = tagged.partition(b"\n")
    return json_body(body, headers={"ETag": tag.decode()})


async def create_pitch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user = await require_user(request, "creator")
    values = validate_pitch(await read_json(request))
    async with services.db.transaction() as tx:
        pitch_id = await store.insert(tx, user.id, values, services.clock())
        row = await store.get(tx, pitch_id)
    assert row is not None
    await services.invalidate("pitches", f"dashboard:{user.id}", f"access:{user.id}")
    return json_response(
        full_pitch(row, "owner"), status=201,
        headers={"Location": f"/api/pitches/{pitch_id}",
                 "ETag": entity_tag(int(row["version"]), "owner")},
    )


def _check_owner(meta: Row | None, user: User) -> None:
    """404 for a missing pitch (or someone else's draft, which others cannot see);
    403 for someone else's visible pitch."""
    if meta is None or (meta["creator_id"] != user.id and meta["status"] == "draft"):
        raise ApiError(404, "not_found", "no such pitch")
    if meta["creator_id"] != user.id:
        raise ApiError(403, "not_owner", "only the pitch's creator may change it")


async def _refuse(
    conn: Connection, pitch_id: int, user: User, versions: frozenset[int] | None
) -> NoReturn:
    """Why a write found no row to change: 404 or 403 exactly as without If-Match (RFC 9110
    13.2.1: preconditions never mask those), else the version did not match: 412."""
    _check_owner(await store.owner_of(conn, pitch_id), user)
    if versions is not None:
        raise ApiError(412, "precondition_failed",
                       "the pitch changed since the version in If-Match; read it again and "
                       "retry with its current ETag")
    raise ApiError(404, "not_found", "no such pitch")  # deleted between the two statements


async def update_pitch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user = await require_user(request, None)
    pitch_id = parse_id(request.match_info["id"], "pitch")
    versions = if_match_versions(request)
    values = validate_pitch(await read_json(request), partial=True)
    async with services.db.transaction() as tx:
        changed = await store.update(tx, pitch_id, user.id, values, services.clock(), versions)
        if changed is None:
            await _refuse(tx, pitch_id, user, versions)
        # our UPDATE holds the row until commit: a racing DELETE cannot remove it before this
        row = await store.get(tx, pitch_id)
    if row is None:
        raise ApiError(404, "not_found", "no such pitch")
    await services.invalidate("pitches", f"dashboard:{user.id}")
    return json_response(full_pitch(row, "owner"),
                         headers={"ETag": entity_tag(int(row["version"]), "owner")})


async def delete_pitch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    user = await require_user(request, None)
    pitch_id = parse_id(request.match_info["id"], "pitch")
    versions = if_match_versions(request)
    async with services.db.transaction() as tx:
        # read before the cascade removes them: whose cached access names this pitch
        requesters = await store.nda_requesters(tx, pitch_id)
        if not await store.delete(tx, pitch_id, user.id, versions):
            await _refuse(tx, pitch_id, user, versions)
    await services.invalidate(
        "pitches", f"dashboard:{user.id}", f"access:{user.id}",
        *(f"{kind}:{requester}" for requester in requesters for kind in ("access", "dashboard")),
    )
    return web.Response(status=204)


def add_pitch_routes(router: RouteTable) -> None:
    router.add_get("/api/pitches", list_pitches, name="pitches_list",
                   answer_now=cached_page_answer(router.app))
    router.add_post("/api/pitches", create_pitch, name="pitches_create")
    router.add_get(r"/api/pitches/{id:\d+}", get_pitch, name="pitches_get")
    router.add_put(r"/api/pitches/{id:\d+}", update_pitch, name="pitches_update")
    router.add_delete(r"/api/pitches/{id:\d+}", delete_pitch, name="pitches_delete")
