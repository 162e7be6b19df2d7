"""Backend-neutral statement helpers: operation classification, placeholder rewriting and
the per-statement instruments (query counters, slow-query counters, child spans).

Statements are written once with PostgreSQL's `$1` placeholders. SQLite understands the
numbered `?1` form with the same meaning (a number may repeat), so the rewrite is a plain
token substitution; both results are memoised because the same few dozen statements run
millions of times.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pitchey.metrics import ServiceMetrics
    from pitchey.tracing import Tracing

__all__ = [
    "OPERATIONS",
    "SLOW_QUERY_SECONDS",
    "QueryInstruments",
    "operation_of",
    "to_sqlite",
    "first_value",
]

OPERATIONS = ("select", "insert", "update", "delete", "other")
SLOW_QUERY_SECONDS = 0.1
_PLACEHOLDER = re.compile(r"\$(\d+)")
_T = TypeVar("_T")


@lru_cache(maxsize=1024)
def operation_of(sql: str) -> str:
    """The bounded `operation` label of a statement: its first keyword, or 'other'."""
    head = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else ""
    if head == "with":
        head = "select"
    return head if head in OPERATIONS else "other"


@lru_cache(maxsize=1024)
def to_sqlite(sql: str) -> str:
    """`$1` -> `?1`: the numbered form keeps repeated parameters pointing at one value."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class QueryInstruments:
    """Counts and times every statement; opens a `db.query` span only for sampled requests.

    Label children are resolved once here, so a statement costs two dictionary lookups and
    a counter increment, not a `labels()` call."""

    def __init__(
        self, system: str, metrics: ServiceMetrics | None, tracing: Tracing | None
    ) -> None:
        self.system = system
        self.metrics = metrics
        self.tracing = tracing
        self._queries = {op: metrics.db_queries.labels(op) for op in OPERATIONS} if metrics else {}
        self._slow = (
            {op: metrics.db_slow_queries.labels(op) for op in OPERATIONS} if metrics else {}
        )

    def record(self, operation: str, seconds: float) -> None:
        counter = self._queries.get(operation)
        if counter is None:
            return
        counter.inc()
        if seconds > SLOW_QUERY_SECONDS:
            self._slow[operation].inc()

    async def run(self, sql: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run one statement through `call`, counted, timed and (when sampled) spanned."""
        operation = operation_of(sql)
        started = time.perf_counter()
        try:
            if self.tracing is not None and self.tracing.recording():
                with self.tracing.span(
                    "db.query", db_system=self.system, db_operation=operation,
                    db_statement=sql[:200],
                ):
                    return await call()
            return await call()
        finally:
            self.record(operation, time.perf_counter() - started)

    def set_pool(self, in_use: int, size: int) -> None:
        if self.metrics is not None:
            self.metrics.db_pool_in_use.set(in_use)
            self.metrics.db_pool_size.set(size)


def first_value(row: dict[str, Any] | None) -> Any:
    """The first column of a row, or None for no row (what `fetchval` returns)."""
    if row is None:
        return None
    for value in row.values():
        return value
    return None
