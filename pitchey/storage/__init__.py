"""Storage: a SQLite file by default (aiosqlite, WAL), PostgreSQL when DATABASE_URL is set
(asyncpg). Statements are written once with `$1`-style parameters; the SQLite backend
rewrites them to its numbered `?1` form. Only parameterized queries, never string-built SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ["Database", "Connection", "Row"]

Row = dict[str, Any]


class Connection(Protocol):
    """One connection inside a transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> int: ...


class Database(Connection, Protocol):
    """The pool. Plain calls run on any connection; `transaction()` holds one for a unit of
    work that commits on success and rolls back on any exception, so no partial rows."""

    backend: str

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def migrate(self) -> int: ...
    async def ping(self) -> float: ...
    async def storage_usage(self) -> tuple[int, int]: ...
    @property
    def pool_in_use(self) -> int: ...
    @property
    def pool_size(self) -> int: ...
    async def close(self) -> None: ...


