"""Read/write split for a regional worker, with the query cache tier (30 s: docs/targets.md).

`SplitDatabase` implements the `Database` protocol over two handles on the one shared
database: the primary (every write, every transaction) and this region's replica view (plain
reads): a read-only handle (`mode=ro` SQLite connections, or a PostgreSQL pool whose
transactions default to read-only). Writes from a region other than the primary pay the
latency model's backbone round trip to the primary region (server to server: no client access
leg), once per statement or transaction; writes in the primary's own region pay nothing.
Replica lag is not simulated as staleness: the view reads the same data, so a client never
reads its own write stale.

Query cache: the rows of a plain read are kept for `query_ttl_s`, keyed by the statement, its
arguments and the generations of every table the statement names. A write bumps the
generations of the tables it names, plus the tables that reference them by foreign key (a
DELETE may cascade), in the topology-wide generations file, after it commits. A schema with
triggers turns that into "any write invalidates every read". Reads naming no known table are
never cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pitchey.errors import StorageUnavailable
from pitchey.geo.generations import Generations
from pitchey.geo.latency import LatencyModel
from pitchey.storage import Connection, Database, Row

__all__ = ["SplitDatabase", "QueryCache", "is_read", "HEARTBEAT_TABLE"]

log = logging.getLogger("pitchey.geo.replica")

HEARTBEAT_TABLE = "pitchey_geo_heartbeat"
_ALL = "q:*"
_WRITE_WORDS = re.compile(r"\b(insert|update|delete|merge)\b", re.IGNORECASE)
_IDENT = re.compile(r"[a-z_][a-z0-9_]*", re.IGNORECASE)
_CASCADING = re.compile(r"^\s*(update|delete)\b", re.IGNORECASE)


def is_read(sql: str) -> bool:
    """A statement the replica view can run: SELECT, or a WITH that writes nothing."""
    head = sql.lstrip()[:6].lower()
    if head == "select":
        return True
    return head.startswith("with") and _WRITE_WORDS.search(sql) is None


class QueryCache:
    """An LRU of query results with a TTL; the clock is injected."""

    def __init__(self, ttl_s: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, list[Row]]] = OrderedDict()
        self.lookups = 0
        self.hits = 0
        # called with True on a hit, False on a miss (pitchey_cache_*_total{cache="query"})
        self.observer: Callable[[bool], None] | None = None

    def get(self, key: Hashable) -> list[Row] | None:
        self.lookups += 1
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._entries[key]
            entry = None
        if self.observer is not None:
            self.observer(entry is not None)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return [dict(row) for row in entry[1]]  # handlers may change the rows they get

    def put(self, key: Hashable, rows: list[Row]) -> None:
        self._entries[key] = (self._clock() + self.ttl_s, [dict(row) for row in rows])
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class _Schema:
    """Which tables exist and which reference which, read once at startup."""

    def __init__(self) -> None:
        self.tables: frozenset[str] = frozenset()
        self.dependents: dict[str, frozenset[str]] = {}
        self.has_triggers = True  # until introspected: invalidate everything on any write
        self._read_cache: dict[str, frozenset[str]] = {}
        self._write_cache: dict[str, frozenset[str]] = {}

    def load(self, tables: set[str], references: list[tuple[str, str]], triggers: bool) -> None:
        self.tables = frozenset(t for t in tables if t != HEARTBEAT_TABLE)
        direct: dict[str, set[str]] = {}
        for child, parent in references:
            direct.setdefault(parent, set()).add(child)
        self.dependents = {t: frozenset(_closure(t, direct)) for t in self.tables}
        self.has_triggers = triggers
        self._read_cache.clear()
        self._write_cache.clear()

    def named(self, sql: str) -> frozenset[str]:
        return frozenset(w.lower() for w in _IDENT.findall(sql)) & self.tables

    def read_tables(self, sql: str) -> frozenset[str]:
        cached = self._read_cache.get(sql)
        if cached is None:
            cached = self._read_cache[sql] = self.named(sql)
        return cached

    def write_generations(self, sql: str) -> frozenset[str]:
        """Generation names a write must bump."""
        cached = self._write_cache.get(sql)
        if cached is None:
            named = self.named(sql)
            if self.has_triggers or not named:
                cached = frozenset({_ALL})
            else:
                tables = set(named)
                if _CASCADING.match(sql):
                    for table in named:
                        tables |= self.dependents.get(table, frozenset())
                cached = frozenset(f"q:{t}" for t in tables)
            self._write_cache[sql] = cached
        return cached


def _closure(table: str, direct: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [table]
    while stack:
        for child in direct.get(stack.pop(), set()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


class _TrackingConnection:
    """The primary's transaction connection, noting which generations its writes touch."""

    def __init__(self, inner: Connection, schema: _Schema, touched: set[str]) -> None:
        self._inner = inner
        self._schema = schema
        self._touched = touched

    def _note(self, sql: str) -> None:
        if not is_read(sql):
            self._touched |= self._schema.write_generations(sql)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        self._note(sql)
        return await self._inner.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        self._note(sql)
        return await self._inner.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._note(sql)
        return await self._inner.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        self._note(sql)
        return await self._inner.execute(sql, *args)


class SplitDatabase:
    """The `Database` protocol: writes to the primary, reads from the replica view."""

    def __init__(
        self,
        *,
        region: str,
        primary_region: str,
        latency: LatencyModel,
        generations: Generations,
        query_cache: QueryCache | None,
    ) -> None:
        self.region = region
        self.primary_region = primary_region
        self._latency = latency
        self._generations = generations
        self._query_cache = query_cache
        self._schema = _Schema()
        self._primary: Database | None = None
        self._replica: Database | None = None
        self._ping: asyncio.Future[float] | None = None
        self._prepared = False
        self._shutting_down = asyncio.Event()
        self.backend = "unbound"

    # -- wiring ----------------------------------------------------------------------------

    def bind(self, primary: Database, replica: Database | None) -> None:
        self._primary = primary
        self._replica = replica if replica is not None else primary
        self.backend = primary.backend

    @property
    def primary(self) -> Database:
        if self._primary is None:
            raise StorageUnavailable("the regional database is not open yet")
        return self._primary

    @property
    def replica(self) -> Database:
        if self._replica is None:
            raise StorageUnavailable("the regional database is not open yet")
        return self._replica

    async def prepare(self) -> None:
        """Migrate, create the heartbeat table, read the schema. Storage that is down now is
        reported per request (503) and by /health/db, not by refusing to start."""
        try:
            await self._ensure_prepared()
        except StorageUnavailable as exc:
            log.warning("region %s: storage unavailable at start: %s", self.region, exc)

    async def _ensure_prepared(self) -> None:
        if self._prepared:
            return
        await self.primary.migrate()
        await self.primary.execute(
            f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} ("
            "region TEXT PRIMARY KEY, beat_at DOUBLE PRECISION NOT NULL)")
        await self._introspect()
        self._generations.bump((_ALL,))
        self._prepared = True

    async def _introspect(self) -> None:
        primary = self.primary
        if primary.backend == "postgresql":
            tables = {r["name"] for r in await primary.fetch(
                "SELECT table_name AS name FROM information_schema.tables "
                "WHERE table_schema = current_schema()")}
            references = [(r["child"], r["parent"]) for r in await primary.fetch(
                "SELECT tc.table_name AS child, ccu.table_name AS parent "
                "FROM information_schema.table_constraints tc "
                "JOIN information_schema.constraint_column_usage ccu "
                "ON tc.constraint_name = ccu.constraint_name "
                "AND tc.constraint_schema = ccu.constraint_schema "
                "WHERE tc.constraint_type = 'FOREIGN KEY' "
                "AND tc.table_schema = current_schema()")]
            triggers = bool(await primary.fetchval(
                "SELECT count(*) FROM information_schema.triggers "
                "WHERE trigger_schema = current_schema()"))
        else:
            tables = {r["name"] for r in await primary.fetch(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            references = []
            for table in sorted(tables):
                references += [(table, r["parent"]) for r in await primary.fetch(
                    "SELECT \"table\" AS parent FROM pragma_foreign_key_list($1)", table)]
            triggers = bool(await primary.fetchval(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"))
        self._schema.load({t.lower() for t in tables},
                          [(c.lower(), p.lower()) for c, p in references], triggers)

    # -- reads -----------------------------------------------------------------------------

    def _cache_key(self, sql: str, args: tuple[Any, ...]) -> Hashable | None:
        tables = self._schema.read_tables(sql)
        if not tables:
            return None
        get = self._generations.get
        stamp = tuple(get(f"q:{t}") for t in sorted(tables))
        key = (sql, args, stamp, get(_ALL))
        try:
            hash(key)
        except TypeError:  # list arguments (e.g. = ANY($1)): not cacheable
            return None
        return key

    async def _read(self, sql: str, args: tuple[Any, ...]) -> list[Row]:
        cache = self._query_cache
        key = self._cache_key(sql, args) if cache is not None else None
        if key is not None:
            assert cache is not None
            rows = cache.get(key)
            if rows is not None:
                return rows
        try:
            rows = await self.replica.fetch(sql, *args)
        except StorageUnavailable:
            if self._replica is self._primary:
                raise
            rows = await self.primary.fetch(sql, *args)  # the view is down; the primary may not be
        if key is not None:
            assert cache is not None
            cache.put(key, rows)
        return rows

    # -- writes ----------------------------------------------------------------------------

    async def _to_primary(self) -> None:
        """The backbone round trip from this region to the primary's, when the model is on
        (nothing when this region holds the primary)."""
        await self._latency.sleep(
            self._latency.backbone_round_trip_s(self.region, self.primary_region))

    async def _write(self, sql: str, run: Callable[[Database], Any]) -> Any:
        await self._to_primary()
        try:
            return await run(self.primary)
        finally:
            self._generations.bump(self._schema.write_generations(sql))

    # -- the Database protocol -------------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if is_read(sql):
            return await self._read(sql, args)
        result: list[Row] = await self._write(sql, lambda db: db.fetch(sql, *args))
        return result

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if is_read(sql):
            rows = await self._read(sql, args)
            return rows[0] if rows else None
        row: Row | None = await self._write(sql, lambda db: db.fetchrow(sql, *args))
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        if is_read(sql):
            rows = await self._read(sql, args)
            return next(iter(rows[0].values())) if rows and rows[0] else None
        return await self._write(sql, lambda db: db.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        count: int = await self._write(sql, lambda db: db.execute(sql, *args))
        return count

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._write(sql, lambda db: db.executemany(sql, rows))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        await self._to_primary()
        touched: set[str] = set()
        try:
            async with self.primary.transaction() as conn:
                yield _TrackingConnection(conn, self._schema, touched)
        finally:
            if touched:  # after COMMIT (or a failed one, which may still have committed)
                self._generations.bump(touched)

    async def migrate(self) -> int:
        applied = await self.primary.migrate()
        self._generations.bump((_ALL,))
        return applied

    async def ping(self) -> float:
        """Read through the replica view, then write a heartbeat to the primary: a store
        that can be read but not written is not healthy. Concurrent pings share one probe."""
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._probe())
        result = await asyncio.shield(self._ping)
        if self._shutting_down.is_set():
            # Never complete during shutdown. The service's probe loop calls this under
            # asyncio.wait_for, which on Python 3.11 swallows a cancellation that arrives
            # in the same loop turn as the result (gh-86296), and the loop then never ends.
            await asyncio.Event().wait()
        return result

    async def begin_shutdown(self) -> None:
        """The app is stopping (on_shutdown, before its cleanup cancels the probe loop): let
        a ping in flight reach its caller, so the cancellation that follows finds the probe
        loop outside asyncio.wait_for, and make every later ping wait to be cancelled."""
        self._shutting_down.set()
        if self._ping is not None and not self._ping.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._ping)
        for _ in range(5):  # the result travels through a few callbacks inside wait_for
            await asyncio.sleep(0)

    async def _probe(self) -> float:
        started = time.perf_counter()
        await self._ensure_prepared()  # storage that was down at start gets set up here
        await self.replica.fetchval("SELECT 1")
        await self._to_primary()
        await self.primary.execute(
            f"INSERT INTO {HEARTBEAT_TABLE} (region, beat_at) VALUES ($1, $2) "
            "ON CONFLICT (region) DO UPDATE SET beat_at = excluded.beat_at",
            self.region, time.time())
        return (time.perf_counter() - started) * 1000.0

    async def storage_usage(self) -> tuple[int, int]:
        return await self.primary.storage_usage()

    @property
    def pool_in_use(self) -> int:
        return sum(db.pool_in_use for db in self._handles())

    @property
    def pool_size(self) -> int:
        return sum(db.pool_size for db in self._handles())

    def _handles(self) -> list[Database]:
        handles = [db for db in (self._primary, self._replica) if db is not None]
        return handles[:1] if len(handles) == 2 and handles[0] is handles[1] else handles

    async def close(self) -> None:
        if self._ping is not None and not self._ping.done():
            self._ping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ping
        for db in self._handles():
            await db.close()
