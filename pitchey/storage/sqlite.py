"""SQLite backend (aiosqlite, WAL): one writer connection behind an asyncio.Lock for
every write and transaction, plus a few read-only connections for plain reads.

WAL lets the readers see the last committed state while the writer works, so the hot read
path never waits for a write. The writer runs in autocommit mode and each transaction is an
explicit `BEGIN IMMEDIATE ... COMMIT`, rolled back on any exception: no partial rows.
The connection is opened lazily on first use, so a missing or unwritable file answers 503
per request (StorageUnavailable) instead of stopping the service at start.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

from pitchey.errors import StorageUnavailable
from pitchey.storage import Connection, Row
from pitchey.storage.errors import UniqueViolation
from pitchey.storage.migrations import apply_migrations
from pitchey.storage.sql import QueryInstruments, first_value, operation_of, to_sqlite

if TYPE_CHECKING:
    from pitchey.metrics import ServiceMetrics
    from pitchey.tracing import Tracing

__all__ = ["SQLiteDatabase"]

_T = TypeVar("_T")

# Primary result codes that mean "the storage itself is unusable", not "your SQL is wrong".
_UNAVAILABLE_CODES = {
    3,  # SQLITE_PERM
    5,  # SQLITE_BUSY (busy_timeout already waited)
    6,  # SQLITE_LOCKED
    8,  # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    26,  # SQLITE_NOTADB
}


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _translate(exc: BaseException) -> BaseException:
    """Driver exception -> the project's: unusable storage, unique violation, or unchanged."""
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return UniqueViolation(str(exc))
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in _UNAVAILABLE_CODES:
            return StorageUnavailable(f"sqlite: {exc}")
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc).lower():
            return StorageUnavailable(f"sqlite: {exc}")
    if isinstance(exc, ValueError) and "connection" in str(exc).lower():
        # aiosqlite: "Connection closed" / "no active connection"
        return StorageUnavailable(f"sqlite: {exc}")
    return exc


async def _guard(call: Callable[[], Awaitable[_T]]) -> _T:
    """Run `call()` translating driver errors; the call itself is made inside the try, since
    a pooled connection may refuse even to hand out a method once the server dropped it."""
    try:
        return await call()
    except (sqlite3.Error, ValueError) as exc:
        translated = _translate(exc)
        if translated is exc:
            raise
        raise translated from exc


def _guarded(call: Callable[[], Awaitable[_T]]) -> Callable[[], Awaitable[_T]]:
    return lambda: _guard(call)


class _Statements:
    """fetch/fetchrow/fetchval/execute on one aiosqlite connection, instrumented."""

    def __init__(self, conn: aiosqlite.Connection, instruments: QueryInstruments) -> None:
        self._conn = conn
        self._inst = instruments

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        conn = self._conn
        rows = await self._inst.run(
            sql, _guarded(lambda: conn.execute_fetchall(to_sqlite(sql), args))
        )
        return list(rows)  # type: ignore[arg-type]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return first_value(await self.fetchrow(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        conn = self._conn

        async def run() -> int:
            cursor = await _guard(lambda: conn.execute(to_sqlite(sql), args))
            return max(cursor.rowcount, 0)

        return await self._inst.run(sql, run)


class SQLiteDatabase:
    """The `Database` protocol over a SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        readers: int = 2,
        busy_timeout_ms: int = 5000,
        metrics: ServiceMetrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.path = path
        self._memory = path == ":memory:" or path.startswith("file::memory:")
        # an in-memory database is private to its connection: everything goes via the writer
        self._reader_count = 0 if self._memory else max(0, readers)
        self._busy_timeout_ms = busy_timeout_ms
        self._inst = QueryInstruments("sqlite", metrics, tracing)
        self._writer: _Statements | None = None
        self._connections: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[_Statements | None] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._in_use = 0
        self._inst.set_pool(0, self.pool_size)

    # -- lifecycle -------------------------------------------------------------------------

    async def _connect(self, *, read_only: bool) -> aiosqlite.Connection:
        uri = self.path.startswith("file:")
        if not uri and not self._memory and not Path(self.path).resolve().parent.is_dir():
            raise StorageUnavailable(f"sqlite: the directory of {self.path} does not exist")
        pending = aiosqlite.connect(self.path, isolation_level=None, uri=uri)
        try:
            conn = await _guard(lambda: pending)
        except BaseException:
            # aiosqlite stops its worker thread on a failed connect but does not wait for it;
            # wait here, so the thread never calls back into an event loop that has closed
            thread = getattr(pending, "_thread", None)
            if thread is not None and thread.is_alive():
                await asyncio.to_thread(thread.join, 5.0)
            raise
        self._connections.append(conn)
        conn.row_factory = _dict_row  # type: ignore[assignment]
        pragmas = [
            f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}",
            "PRAGMA foreign_keys = ON",
        ]
        if read_only:
            pragmas.append("PRAGMA query_only = ON")
        else:
            if not self._memory:
                pragmas.append("PRAGMA journal_mode = WAL")
            pragmas.append("PRAGMA synchronous = NORMAL")
        for pragma in pragmas:
            if pragma.startswith("PRAGMA journal_mode"):
                await self._switch_journal_mode(conn, pragma)
            else:
                await _guard(partial(conn.execute_fetchall, pragma))
        return conn

    async def _switch_journal_mode(self, conn: aiosqlite.Connection, pragma: str) -> None:
        """Switching to WAL needs the database to itself for a moment, and SQLite answers
        SQLITE_BUSY at once, without its busy handler, when another connection is doing
        the same (several instances opening one new file together): retry within the
        busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_ms / 1000.0
        while True:
            try:
                await _guard(partial(conn.execute_fetchall, pragma))
                return
            except StorageUnavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.005)

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        if self._closed:
            raise StorageUnavailable("database is closed")
        async with self._open_lock:
            if self._opened:
                return
            try:
                writer = await self._connect(read_only=False)
                readers = [await self._connect(read_only=True) for _ in range(self._reader_count)]
            except BaseException:
                await self._close_connections()
                raise
            self._writer = _Statements(writer, self._inst)
            for conn in readers:
                self._idle.put_nowait(_Statements(conn, self._inst))
            self._opened = True

    async def _close_connections(self) -> None:
        connections, self._connections = self._connections, []
        for conn in connections:
            try:
                await conn.close()
            except (sqlite3.Error, ValueError):
                pass  # already broken; nothing more to release

    async def close(self) -> None:
        self._closed = True
        self._opened = False
        self._writer = None
        # wake any task waiting for a reader: it finds the sentinel, passes it on, and fails
        self._idle.put_nowait(None)
        self._idle = asyncio.Queue()
        await self._close_connections()

    async def migrate(self) -> int:
        """Migrations run with foreign keys off: a table rebuild (migration 4) drops the old
        table, which with them on would cascade into its children. The pragma is a no-op
        inside a transaction, so it is switched around one, on the writer and under the
        write lock, so no other write runs without foreign keys; the rebuild checks them
        (`PRAGMA foreign_key_check`) before it commits."""
        async with self._writer_locked() as conn:
            await conn.execute("PRAGMA foreign_keys = OFF")
            try:
                return await apply_migrations(_LockedWriter(self, conn))
            finally:
                await conn.execute("PRAGMA foreign_keys = ON")

    # -- pool accounting -------------------------------------------------------------------

    @property
    def pool_size(self) -> int:
        return 1 + self._reader_count

    @property
    def pool_in_use(self) -> int:
        return self._in_use

    def _track(self, delta: int) -> None:
        self._in_use += delta
        self._inst.set_pool(self._in_use, self.pool_size)

    def _live_writer(self) -> _Statements:
        if self._writer is None:
            raise StorageUnavailable("database is closed")
        return self._writer

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[_Statements]:
        await self._ensure_open()
        if self._reader_count == 0:
            async with self._write_lock:
                self._track(1)
                try:
                    yield self._live_writer()
                finally:
                    self._track(-1)
            return
        idle = self._idle
        conn = await idle.get()
        if conn is None:
            idle.put_nowait(None)
            raise StorageUnavailable("database is closed")
        self._track(1)
        try:
            yield conn
        finally:
            self._track(-1)
            idle.put_nowait(conn)

    @asynccontextmanager
    async def _writer_locked(self) -> AsyncIterator[_Statements]:
        await self._ensure_open()
        async with self._write_lock:
            self._track(1)
            try:
                yield self._live_writer()
            finally:
                self._track(-1)

    def _route(self, sql: str) -> AbstractAsyncContextManager[_Statements]:
        return self._reader() if operation_of(sql) == "select" else self._writer_locked()

    # -- the Connection protocol on the pool -----------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._route(sql) as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return first_value(await self.fetchrow(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._writer_locked() as conn:
            return await conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            assert isinstance(tx, _Statements)
            conn = tx._conn
            params = [tuple(row) for row in rows]
            await self._inst.run(
                sql, _guarded(lambda: conn.executemany(to_sqlite(sql), params))
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._writer_locked() as conn, self._begin(conn) as tx:
            yield tx

    @asynccontextmanager
    async def _begin(self, conn: _Statements) -> AsyncIterator[Connection]:
        """One transaction on the writer, which the caller holds locked."""
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            await self._rollback(conn)
            raise
        try:
            await conn.execute("COMMIT")
        except BaseException:
            await self._rollback(conn)
            raise

    @staticmethod
    async def _rollback(conn: _Statements) -> None:
        try:
            await conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - never mask the error that caused the rollback
            pass  # the connection is gone; SQLite discards the uncommitted work itself

    # -- health ----------------------------------------------------------------------------

    async def ping(self) -> float:
        started = time.perf_counter()
        await self.fetchval("SELECT 1")
        return (time.perf_counter() - started) * 1000.0

    async def storage_usage(self) -> tuple[int, int]:
        if self._memory:
            pages = await self.fetchval(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size"
            )
            return int(pages or 0), 0
        await self._ensure_open()
        base = Path(self.path)
        used = sum(
            candidate.stat().st_size
            for candidate in (base, Path(f"{base}-wal"), Path(f"{base}-shm"))
            if candidate.exists()
        )
        free = await asyncio.to_thread(_free_bytes, base.resolve().parent)
        return used, used + free


class _LockedWriter:
    """`apply_migrations`' view of the database while `migrate` holds the writer: its
    transactions run on that connection instead of taking the write lock again."""

    backend = "sqlite"

    def __init__(self, db: SQLiteDatabase, conn: _Statements) -> None:
        self._db = db
        self._conn = conn

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        return self._db._begin(self._conn)


def _free_bytes(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0

