"""The storage backends against the Database protocol: migrations and the Deployment
Architecture document's indexes, placeholders, transactions (no partial rows), failure
translation, instruments."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from pitchey.errors import StorageUnavailable
from pitchey.metrics import ServiceMetrics
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey.storage.errors import UniqueViolation
from pitchey.storage.factory import open_database
from pitchey.storage.migrations import MIGRATIONS
from pitchey.storage.postgres import PostgresDatabase
from pitchey.storage.sql import operation_of, to_sqlite
from pitchey.storage.sqlite import SQLiteDatabase
from pitchey.tracing import Tracing

SEED_000_INDEXES = {
    "idx_users_email", "idx_users_user_type", "idx_pitches_creator", "idx_pitches_status",
    "idx_pitches_created", "idx_ndas_pitch_user", "idx_messages_conversation",
    "idx_analytics_user_event", "idx_pitch_search", "idx_user_dashboard",
    "idx_investor_portfolio",
}
INSERT_USER = (
    "INSERT INTO users (email, password_hash, name, user_type, created_at) "
    "VALUES ($1, 'h', $2, 'creator', $3) RETURNING id"
)


@pytest.fixture(params=["sqlite-file", "sqlite-memory",
                        pytest.param("postgresql", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def dsn(kind: str, request: pytest.FixtureRequest) -> str | None:
    """The module's PostgreSQL DSN, resolved (synchronously) only for the postgresql runs."""
    return str(request.getfixturevalue("pg_dsn")) if kind == "postgresql" else None


@pytest.fixture
async def database(
    kind: str, dsn: str | None, tmp_path: Path, registry: CollectorRegistry
) -> AsyncIterator[Database]:
    metrics = ServiceMetrics(registry, process=False)
    if dsn is not None:
        admin = await asyncpg.connect(dsn)
        try:  # a clean schema per test inside the module's database
            await admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await admin.close()
        db: Database = PostgresDatabase(dsn, pool_size=4, metrics=metrics)
    else:
        path = str(tmp_path / "s.db") if kind == "sqlite-file" else ":memory:"
        db = SQLiteDatabase(path, readers=2, metrics=metrics)
    assert await db.migrate() == len(MIGRATIONS)
    try:
        yield db
    finally:
        await db.close()


async def _index_names(db: Database) -> set[str]:
    if db.backend == "postgresql":
        rows = await db.fetch(
            "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public'"
        )
    else:
        rows = await db.fetch("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {row["name"] for row in rows}


async def test_migrations_apply_once_and_create_seed_000_indexes(database: Database) -> None:
    assert await database.migrate() == 0
    versions = await database.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in versions] == [m.version for m in MIGRATIONS]
    assert SEED_000_INDEXES <= await _index_names(database)


async def test_pitch_search_index_is_partial_on_published(database: Database) -> None:
    if database.backend == "postgresql":
        definition = await database.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_pitch_search'"
        )
    else:
        definition = await database.fetchval(
            "SELECT sql FROM sqlite_master WHERE name = 'idx_pitch_search'"
        )
    assert "WHERE" in definition and "published" in definition


@pytest.mark.parametrize(
    "kind", ["sqlite-file", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_concurrent_migrators_apply_each_migration_once(
    kind: str, dsn: str | None, tmp_path: Path
) -> None:
    if dsn is not None:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await admin.close()
        instances: list[Database] = [PostgresDatabase(dsn, pool_size=2) for _ in range(3)]
    else:  # an in-memory database has a single connection: nothing to race
        path = str(tmp_path / "m.db")
        instances = [SQLiteDatabase(path, readers=1) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(db.migrate() for db in instances))
        assert sorted(applied) == [0, 0, len(MIGRATIONS)]
    finally:
        for db in instances:
            await db.close()


async def test_numbered_parameters_may_repeat(database: Database) -> None:
    assert to_sqlite("SELECT $1, $2, $1, $10") == "SELECT ?1, ?2, ?1, ?10"
    row = await database.fetchrow("SELECT $1 AS a, $2 AS b, $1 AS c", "x", "y")
    assert row == {"a": "x", "b": "y", "c": "x"}


async def test_parameters_are_never_interpreted_as_sql(database: Database) -> None:
    hostile = "x'); DROP TABLE users; --"
    await database.fetchval(INSERT_USER, hostile, hostile, 1.0)
    assert await database.fetchval("SELECT name FROM users WHERE email = $1", hostile) == hostile


async def test_a_failed_transaction_leaves_no_partial_rows(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await tx.fetchval(INSERT_USER, "a@x.test", "A", 1.0)
            await tx.fetchval(INSERT_USER, "b@x.test", "B", 1.0)
            raise RuntimeError("the request failed half-way")
    assert await database.fetchval("SELECT COUNT(*) FROM users") == 0
    async with database.transaction() as tx:
        await tx.fetchval(INSERT_USER, "a@x.test", "A", 1.0)
    assert await database.fetchval("SELECT COUNT(*) FROM users") == 1


async def test_unique_violation_is_translated_and_rolls_back(database: Database) -> None:
    await database.fetchval(INSERT_USER, "dup@x.test", "A", 1.0)
    with pytest.raises(UniqueViolation):
        async with database.transaction() as tx:
            await tx.fetchval(INSERT_USER, "new@x.test", "N", 1.0)
            await tx.fetchval(INSERT_USER, "dup@x.test", "B", 1.0)
    emails = await database.fetch("SELECT email FROM users ORDER BY email")
    assert emails == [{"email": "dup@x.test"}]


async def test_execute_reports_rows_changed(database: Database) -> None:
    for index in range(3):
        await database.fetchval(INSERT_USER, f"u{index}@x.test", "U", 1.0)
    assert await database.execute("UPDATE users SET name = $1 WHERE name = $2", "V", "U") == 3
    assert await database.execute("DELETE FROM users WHERE email = $1", "none@x.test") == 0


async def test_executemany_is_atomic(database: Database) -> None:
    rows = [(f"m{i}@x.test", "M", float(i)) for i in range(50)]
    sql = "INSERT INTO users (email, password_hash, name, user_type, created_at) " \
          "VALUES ($1, 'h', $2, 'creator', $3)"
    await database.executemany(sql, rows)
    assert await database.fetchval("SELECT COUNT(*) FROM users") == 50
    with pytest.raises(UniqueViolation):
        await database.executemany(sql, [("fresh@x.test", "F", 1.0), ("m1@x.test", "M", 1.0)])
    assert await database.fetchval("SELECT COUNT(*) FROM users WHERE email = 'fresh@x.test'") == 0


async def test_many_concurrent_writers_all_commit(database: Database) -> None:
    async def write(index: int) -> None:
        async with database.transaction() as tx:
            await tx.fetchval(INSERT_USER, f"c{index}@x.test", "C", float(index))
            await tx.fetchval("SELECT COUNT(*) FROM users")

    await asyncio.gather(*(write(i) for i in range(40)), *(database.ping() for _ in range(40)))
    assert await database.fetchval("SELECT COUNT(*) FROM users") == 40


async def test_queries_are_counted_by_operation(
    database: Database, registry: CollectorRegistry
) -> None:
    def count(operation: str) -> float:
        return registry.get_sample_value(
            "pitchey_db_queries_total", {"operation": operation}
        ) or 0.0

    before = {op: count(op) for op in ("select", "insert", "update", "delete")}
    await database.fetchval(INSERT_USER, "q@x.test", "Q", 1.0)
    await database.fetch("SELECT * FROM users")
    await database.execute("UPDATE users SET name = 'R'")
    await database.execute("DELETE FROM users")
    for op in before:
        assert count(op) == before[op] + 1, op
    assert registry.get_sample_value("pitchey_db_pool_connections_max") == database.pool_size
    assert registry.get_sample_value("pitchey_db_pool_connections_in_use") == 0


async def test_slow_statements_are_counted(database: Database, registry: CollectorRegistry) -> None:
    if database.backend == "postgresql":
        await database.fetchval("SELECT pg_sleep(0.15)")
    else:  # a recursive count slow enough to cross 100 ms on any machine
        await database.fetchval(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) "
            "SELECT COUNT(*) FROM c", 1_500_000,
        )
    assert registry.get_sample_value(
        "pitchey_db_slow_queries_total", {"operation": "select"}
    ) == 1
    await database.ping()
    assert registry.get_sample_value(
        "pitchey_db_slow_queries_total", {"operation": "select"}
    ) == 1


async def test_pool_in_use_is_tracked_while_a_transaction_runs(
    database: Database, registry: CollectorRegistry
) -> None:
    async with database.transaction():
        assert database.pool_in_use == 1
        assert registry.get_sample_value("pitchey_db_pool_connections_in_use") == 1
    assert database.pool_in_use == 0


async def test_ping_and_storage_usage(database: Database) -> None:
    assert await database.ping() > 0
    used, capacity = await database.storage_usage()
    assert used > 0
    if database.backend == "sqlite" and getattr(database, "path", "") == ":memory:":
        assert capacity == 0  # unknown for a private in-memory database
    else:
        assert capacity > used


async def test_closed_database_is_unavailable(database: Database) -> None:
    await database.close()
    with pytest.raises(StorageUnavailable):
        await database.fetchval("SELECT 1")
    with pytest.raises(StorageUnavailable):
        async with database.transaction():
            pass


@pytest.mark.parametrize("where", ["missing-directory", "a-directory"])
async def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path, where: str) -> None:
    path = tmp_path / "missing" / "x.db" if where == "missing-directory" else tmp_path
    db = SQLiteDatabase(str(path))
    try:
        with pytest.raises(StorageUnavailable):
            await db.migrate()
        with pytest.raises(StorageUnavailable):
            await db.ping()
    finally:
        await db.close()


async def test_corrupt_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(os.urandom(8192))
    db = SQLiteDatabase(str(path))
    try:
        with pytest.raises(StorageUnavailable):
            await db.migrate()
    finally:
        await db.close()


@pytest.mark.postgres
async def test_unreachable_postgresql_is_unavailable() -> None:
    db = PostgresDatabase("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1.0)
    try:
        with pytest.raises(StorageUnavailable):
            await db.ping()
    finally:
        await db.close()


@pytest.mark.postgres
async def test_postgresql_killed_mid_transaction_leaves_nothing(pg_dsn: str) -> None:
    admin = await asyncpg.connect(pg_dsn)
    db = PostgresDatabase(pg_dsn, pool_size=2)
    try:
        await admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await db.migrate()
        with pytest.raises(StorageUnavailable):
            async with db.transaction() as tx:
                await tx.fetchval(INSERT_USER, "half@x.test", "H", 1.0)
                pid = await tx.fetchval("SELECT pg_backend_pid()")
                # the timeout form waits until the backend has really gone
                await admin.execute("SELECT pg_terminate_backend($1, 5000)", pid)
                await tx.fetchval(INSERT_USER, "other@x.test", "O", 1.0)
        # the pool replaces the dead connection; nothing of the transaction survived
        assert await db.fetchval("SELECT COUNT(*) FROM users") == 0
    finally:
        await db.close()
        await admin.close()


async def test_storage_spans_are_children_of_the_sampled_request(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(Settings(otel_traces_sampler="always_on"), exporter=exporter)
    db = SQLiteDatabase(str(tmp_path / "t.db"), tracing=tracing)
    try:
        await db.migrate()
        exporter.clear()
        await db.ping()  # no request span: nothing is recorded
        assert exporter.get_finished_spans() == ()
        with tracing.start_server_span("GET /api/pitches", None, {}) as parent:
            await db.fetch("SELECT id FROM users WHERE email = $1", "x")
        spans = {span.name: span for span in exporter.get_finished_spans()}
        child = spans["db.query"]
        assert child.parent is not None
        assert child.parent.span_id == parent.get_span_context().span_id
        assert child.attributes is not None
        assert child.attributes["db_system"] == "sqlite"
        assert child.attributes["db_operation"] == "select"
    finally:
        await db.close()
        tracing.shutdown()


@pytest.mark.parametrize(
    ("sql", "operation"),
    [("SELECT 1", "select"), ("  with x as (select 1) select * from x", "select"),
     ("INSERT INTO t VALUES (1) RETURNING id", "insert"), ("update t set a = 1", "update"),
     ("DELETE FROM t", "delete"), ("CREATE TABLE t (a INT)", "other"), ("BEGIN", "other")],
)
def test_operation_labels_are_bounded(sql: str, operation: str) -> None:
    assert operation_of(sql) == operation


@pytest.mark.postgres
async def test_factory_picks_the_backend_from_settings(tmp_path: Path, pg_dsn: str) -> None:
    sqlite = await open_database(Settings(sqlite_path=str(tmp_path / "f.db")), None)
    postgres = await open_database(Settings(database_url=pg_dsn), None)
    try:
        assert sqlite.backend == "sqlite" and postgres.backend == "postgresql"
        assert await sqlite.ping() > 0 and await postgres.ping() > 0
    finally:
        await sqlite.close()
        await postgres.close()

