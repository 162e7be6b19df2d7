"""Choose the backend from the settings: PostgreSQL when DATABASE_URL names it, else SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pitchey.storage import Database

if TYPE_CHECKING:
    from pitchey.metrics import ServiceMetrics
    from pitchey.settings import Settings
    from pitchey.tracing import Tracing

__all__ = ["open_database", "SQLITE_READERS"]

# Read-only SQLite connections beside the single writer; each one is a thread, and on a
# two-core machine more than a few only adds contention.
SQLITE_READERS = 3


async def open_database(
    settings: Settings, metrics: ServiceMetrics | None, *, tracing: Tracing | None = None
) -> Database:
    """The configured database, not yet connected: the first statement (usually the
    `migrate()` at startup) opens it, and raises StorageUnavailable if it cannot."""
    if settings.backend == "postgresql":
        from pitchey.storage.postgres import PostgresDatabase

        assert settings.database_url is not None
        return PostgresDatabase(
            settings.database_url, pool_size=settings.db_pool_size, metrics=metrics,
            tracing=tracing,
        )
    from pitchey.storage.sqlite import SQLiteDatabase

    return SQLiteDatabase(
        settings.sqlite_path,
        readers=min(SQLITE_READERS, max(1, settings.db_pool_size - 1)),
        metrics=metrics,
        tracing=tracing,
    )
