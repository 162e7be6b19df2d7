"""What every handler shares: the per-app services, JSON bodies as bytes, the read-through
cache with its metrics and spans, timestamps as ISO 8601."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from pitchey.auth import Auth
from pitchey.cache import Cache, MemoryCache, read_through
from pitchey.metrics import ServiceMetrics
from pitchey.security import SECURITY_HEADERS
from pitchey.settings import Settings
from pitchey.storage import Connection, Database, Row, ndas
from pitchey.storage import pitches as pitch_store
from pitchey.tracing import Tracing
from pitchey.validation import ListQuery, parse_pitch_list

__all__ = [
    "CLOCK",
    "SERVICES",
    "Services",
    "dumps",
    "iso",
    "json_body",
    "json_response",
    "page_of",
    "visible_pitch",
]

Clock = Callable[[], float]
_MAX_MEMO = 4096


@dataclass
class Services:
    """Resolved once at startup so a handler pays one dict lookup, not five."""

    settings: Settings
    metrics: ServiceMetrics
    tracing: Tracing
    db: Database
    cache: Cache
    auth: Auth
    clock: Clock
    # raw query string -> validated list query: the hot list path skips re-validation
    list_queries: dict[str, ListQuery] = field(default_factory=dict)

    def cached_now(self, namespace: str, key: str) -> bytes | None:
        """The cached bytes when the in-process cache holds them, answered without a
        coroutine and counted as a hit; None on a miss or for Redis (the caller then takes
        `cached`, which counts the lookup). Only for unsampled requests: it records no
        span (the request wrapper calls synchronous answers only for those)."""
        cache = self.cache
        if type(cache) is not MemoryCache:
            return None
        value = cache.read_now(namespace, key)
        if value is not None:
            metrics = self.metrics
            metrics.app_cache_lookups.value += 1
            metrics.app_cache_hits.value += 1
        return value

    def on_lookup(self, hit: bool) -> None:
        self.metrics.app_cache_lookups.inc()
        if hit:
            self.metrics.app_cache_hits.inc()

    async def cached(
        self, namespace: str, key: str, ttl_s: float, loader: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """Read-through: the stored bytes, or `loader()`'s, stored for `ttl_s`."""
        if not self.tracing.recording():  # the common case: no span, no attribute building
            return await read_through(
                self.cache, namespace, key, ttl_s, loader, on_lookup=self.on_lookup
            )
        with self.tracing.span("cache.read_through", cache_namespace=namespace.split(":")[0]):
            return await read_through(
                self.cache, namespace, key, ttl_s, loader, on_lookup=self.on_lookup
            )

    def list_query(self, request: web.Request) -> ListQuery:
        """The request's validated pitch-list query, memoised by its raw query string."""
        raw = request.query_string
        query = self.list_queries.get(raw)
        if query is None:
            query = parse_pitch_list(request.query)  # raises 422 for bad input: never stored
            if len(self.list_queries) >= _MAX_MEMO:
                self.list_queries.clear()
            self.list_queries[raw] = query
        return query

    async def invalidate(self, *namespaces: str) -> None:
        """Bump each namespace's generation: every entry cached under it is now unreachable."""
        with self.tracing.span("cache.invalidate"):
            for namespace in dict.fromkeys(namespaces):
                await self.cache.bump(namespace)


SERVICES: web.AppKey[Services] = web.AppKey("pitchey.services", Services)
CLOCK: web.AppKey[Clock] = web.AppKey("pitchey.clock")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# The security headers are built into every JSON response at construction (one C-level copy),
# which is cheaper than the request wrapper patching them in afterwards; it still adds them to any
# response that lacks them.
_JSON_HEADERS = {**SECURITY_HEADERS, "Content-Type": "application/json"}


def json_body(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # a plain header dict: cheaper than content_type=, which parses and rebuilds the header
    merged = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    return web.Response(body=body, status=status, headers=merged)


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_body(dumps(value), status, headers)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(float(timestamp), UTC).isoformat(timespec="milliseconds")[
        :-6
    ] + "Z"


def page_of(rows: list[Row], per_page: int) -> tuple[list[Row], bool]:
    """Rows fetched with LIMIT per_page + 1 -> (the page, whether another page follows)."""
    return rows[:per_page], len(rows) > per_page


async def visible_pitch(conn: Connection, pitch_id: int, user_id: int | None) -> Row | None:
    """`creator_id`, `status` and `title` of a pitch the caller may see, else None.

    Someone else's draft is None exactly like a missing pitch (unless the caller holds an
    approved NDA for it, as GET /api/pitches/{id} allows): otherwise a write naming a pitch
    id would tell drafts apart from ids that do not exist."""
    meta = await pitch_store.owner_of(conn, pitch_id)
    if meta is None or meta["status"] != "draft" or meta["creator_id"] == user_id:
        return meta
    if user_id is not None:
        nda = await ndas.find(conn, pitch_id, user_id)
        if nda is not None and nda["status"] == "approved":
            return meta
    return None
