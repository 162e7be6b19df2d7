"""The edge tier of the multi-tier cache (seed 003: 300 s): whole responses to anonymous GETs
of public paths, kept by the edge and invalidated by writes.

Only requests without a session (no `pitchey_session` cookie, no Authorization header) are
cached, and only 200 answers that set no cookie and do not forbid shared caching, so one
client's personal view can never reach another. Invalidation is a generation: a successful
write under an `edge_invalidate_on` prefix bumps it, through the edge or, via the shared
generations file, straight at a worker; entries of an older generation are never served.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pitchey.geo.generations import Generations
from pitchey.geo.regions import CacheConfig

__all__ = ["CachedResponse", "EdgeCache", "HeaderLookup", "EDGE_GENERATION", "SESSION_COOKIE",
           "WRITE_METHODS"]

EDGE_GENERATION = "edge"
SESSION_COOKIE = "pitchey_session"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An answer that sets a cookie or forbids shared caching is never kept.
_UNSHAREABLE = re.compile(
    r"^(?:set-cookie[ \t]*:|cache-control[ \t]*:[^\r\n]*\b(?:no-store|private|no-cache)\b)",
    re.IGNORECASE | re.MULTILINE)


class HeaderLookup(Protocol):
    """Case-insensitive header access (a CIMultiDict, or the edge's request view)."""

    def get(self, name: str, default: str | None = None, /) -> str | None: ...
    def __contains__(self, name: object, /) -> bool: ...


@dataclass(frozen=True)
class CachedResponse:
    status: int
    head: str  # header lines, "Name: value\r\n" each
    body: bytes
    stored_at: float
    generation: int
    expires_at: float


class EdgeCache:
    def __init__(
        self,
        config: CacheConfig,
        generations: Generations,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = config.edge_ttl_s
        self.enabled = config.edge_ttl_s > 0
        self._paths = config.edge_paths
        self._invalidate_on = config.edge_invalidate_on
        self._max_entries = config.edge_max_entries
        self._generations = generations
        self._clock = clock
        self._entries: OrderedDict[tuple[str, ...], CachedResponse] = OrderedDict()
        self.lookups = 0
        self.hits = 0

    def applies_to(self, method: str, path: str, headers: HeaderLookup,
                   cookies: Mapping[str, str]) -> bool:
        """Whether this request may be answered from (and stored in) the edge tier."""
        return (self.enabled and method == "GET" and path.startswith(self._paths)
                and SESSION_COOKIE not in cookies and "Authorization" not in headers)

    @staticmethod
    def key(path_qs: str, headers: HeaderLookup) -> tuple[str, ...]:
        return (path_qs, headers.get("Accept") or "", headers.get("Accept-Encoding") or "")

    def generation(self) -> int:
        return self._generations.get(EDGE_GENERATION)

    def lookup(self, key: tuple[str, ...]) -> CachedResponse | None:
        self.lookups += 1
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock() or entry.generation != self.generation():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def store(self, key: tuple[str, ...], status: int, head: str, body: bytes,
              generation: int) -> bool:
        """Keep a response fetched while the generation was `generation` (a write since then
        makes it unusable, so it is not stored)."""
        if status != 200 or generation != self.generation() or _UNSHAREABLE.search(head):
            return False
        now = self._clock()
        self._entries[key] = CachedResponse(status, head, body, now, generation,
                                            now + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return True

    def invalidates(self, method: str, path: str, status: int) -> bool:
        """Whether a finished request may have changed what the edge tier serves: a write
        that did not fail validation (a 5xx or a timeout may still have committed)."""
        return (method in WRITE_METHODS and not 400 <= status < 500
                and path.startswith(self._invalidate_on))

    def invalidate(self) -> None:
        self._generations.bump((EDGE_GENERATION,))
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
