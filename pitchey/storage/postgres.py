"""PostgreSQL backend over an asyncpg pool.

asyncpg already speaks `$1` placeholders and caches prepared statements per connection, so
statements pass through unchanged. Connection-level failures (server gone, pool closed,
backend terminated, too many connections, acquire timeout) become StorageUnavailable, and a
transaction that fails anywhere is rolled back by asyncpg before the error leaves it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from pitchey.errors import StorageUnavailable
from pitchey.storage import Connection, Row
from pitchey.storage.errors import UniqueViolation
from pitchey.storage.migrations import apply_migrations
from pitchey.storage.sql import QueryInstruments

if TYPE_CHECKING:
    from pitchey.metrics import ServiceMetrics
    from pitchey.tracing import Tracing

__all__ = ["PostgresDatabase"]

_T = TypeVar("_T")
# Any number: it only has to be the same for every instance migrating this database.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7291846)"
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ConnectionFailureError,
)


async def _guard(call: Callable[[], Awaitable[_T]]) -> _T:
    """Run `call()` translating driver errors; the call itself is made inside the try, since
    a pooled connection may refuse even to hand out a method once the server dropped it."""
    try:
        return await call()
    except asyncpg.UniqueViolationError as exc:
        raise UniqueViolation(str(exc)) from exc
    except _UNAVAILABLE as exc:
        raise StorageUnavailable(f"postgresql: {type(exc).__name__}: {exc}") from exc


def _guarded(call: Callable[[], Awaitable[_T]]) -> Callable[[], Awaitable[_T]]:
    return lambda: _guard(call)


def _status_count(status: str) -> int:
    """'UPDATE 3' / 'INSERT 0 1' -> 3 / 1; statements without a count -> 0."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Statements:
    """The Connection protocol on one checked-out asyncpg connection."""

    def __init__(self, conn: asyncpg.Connection, instruments: QueryInstruments) -> None:
        self._conn = conn
        self._inst = instruments

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        conn = self._conn
        records = await self._inst.run(sql, _guarded(lambda: conn.fetch(sql, *args)))
        return [dict(record) for record in records]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        conn = self._conn
        record = await self._inst.run(sql, _guarded(lambda: conn.fetchrow(sql, *args)))
        return None if record is None else dict(record)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        conn = self._conn
        return await self._inst.run(sql, _guarded(lambda: conn.fetchval(sql, *args)))

    async def execute(self, sql: str, *args: Any) -> int:
        conn = self._conn
        status = await self._inst.run(sql, _guarded(lambda: conn.execute(sql, *args)))
        return _status_count(status)


class PostgresDatabase:
    """The `Database` protocol over an asyncpg pool, created lazily on first use."""

    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        acquire_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        metrics: ServiceMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._dsn = dsn
        self._pool_size = max(1, pool_size)
        self._acquire_timeout_s = acquire_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._inst = QueryInstruments("postgresql", metrics, tracing)
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._in_use = 0
        self._inst.set_pool(0, self._pool_size)

    async def _ensure_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None:
            return pool
        if self._closed:
            raise StorageUnavailable("database is closed")
        async with self._open_lock:
            if self._pool is None:
                self._pool = await _guard(
                    lambda: asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        timeout=self._connect_timeout_s,
                    )
                )
            return self._pool

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[_Statements]:
        pool = await self._ensure_pool()
        conn = await _guard(lambda: pool.acquire(timeout=self._acquire_timeout_s))
        self._track(1)
        try:
            yield _Statements(conn, self._inst)
        finally:
            self._track(-1)
            try:
                # bounded: resetting a connection whose query was cancelled must not hang
                await pool.release(conn, timeout=self._acquire_timeout_s)
            except (asyncpg.InterfaceError, OSError, TimeoutError):
                pass  # the pool is closing or the connection died; asyncpg discards it

    def _track(self, delta: int) -> None:
        self._in_use += delta
        self._inst.set_pool(self._in_use, self._pool_size)

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def pool_in_use(self) -> int:
        return self._in_use

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, asyncpg.InterfaceError, OSError):
                pool.terminate()

    async def migrate(self) -> int:
        return await apply_migrations(self, lock_sql=_MIGRATION_LOCK)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._acquire() as conn:
            raw = conn._conn
            await self._inst.run(sql, _guarded(lambda: raw.executemany(sql, rows)))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._acquire() as conn:
            tx = conn._conn.transaction()
            await _guard(lambda: tx.start())
            try:
                yield conn
            except BaseException:
                try:
                    await tx.rollback()
                except Exception:  # noqa: BLE001 - never mask the error that caused the rollback
                    pass  # a dead connection: the server already dropped the transaction
                raise
            await _guard(lambda: tx.commit())

    async def ping(self) -> float:
        started = time.perf_counter()
        await self.fetchval("SELECT 1")
        return (time.perf_counter() - started) * 1000.0

    async def storage_usage(self) -> tuple[int, int]:
        """Database size; capacity is that plus the free space of the data directory when the
        server runs on this machine and the role may read it, else 0 (unknown)."""
        used = int(await self.fetchval("SELECT pg_database_size(current_database())") or 0)
        directory = await self.fetchval(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        )
        free = await asyncio.to_thread(_free_bytes, directory) if directory else None
        return used, (used + free) if free is not None else 0


def _free_bytes(directory: str) -> int | None:
    path = Path(directory)
    try:
        return shutil.disk_usage(path).free if path.is_dir() else None
    except OSError:
        return None
