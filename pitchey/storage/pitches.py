"""Pitch statements. Column lists and filters come from fixed fragments chosen by validated
values; every value travels as a parameter.

The public list's status filter is written as a literal (`p.status = 'published'`) rather
than a parameter so PostgreSQL can use the partial index `idx_pitch_search` (its predicate
must be provable at plan time, which a generic prepared plan with `$1` cannot do).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pitchey.storage import Connection, Row
from pitchey.validation import ListQuery

__all__ = [
    "EDITABLE",
    "accessible_ids",
    "delete",
    "get",
    "insert",
    "list_public",
    "nda_requesters",
    "owned_ids",
    "owner_of",
    "update",
]

EDITABLE = (
    "title", "logline", "synopsis", "genre", "budget_range", "status", "budget_details",
    "script_url",
)
_SUMMARY_COLUMNS = (
    "p.id, p.creator_id, u.name AS creator_name, p.title, p.logline, p.genre, p.budget_range, "
    "p.status, p.created_at, p.updated_at"
)
_FULL_COLUMNS = _SUMMARY_COLUMNS + ", p.synopsis, p.budget_details, p.script_url, p.version"
_FROM = " FROM pitches p JOIN users u ON u.id = p.creator_id"
_STATUS_FILTER = {
    "published": "p.status = 'published'",
    "archived": "p.status = 'archived'",
}


def _where(query: ListQuery) -> tuple[str, list[Any]]:
    clauses = [_STATUS_FILTER[query.status]]
    args: list[Any] = []
    if query.genre is not None:
        args.append(query.genre)
        clauses.append(f"p.genre = ${len(args)}")
    if query.budget_range is not None:
        args.append(query.budget_range)
        clauses.append(f"p.budget_range = ${len(args)}")
    return " WHERE " + " AND ".join(clauses), args


async def list_public(conn: Connection, query: ListQuery) -> tuple[list[Row], int]:
    """One page of published (or archived) pitches, newest first, and the total count."""
    where, args = _where(query)
    limit, offset = len(args) + 1, len(args) + 2
    rows = await conn.fetch(
        f"SELECT {_SUMMARY_COLUMNS}{_FROM}{where} "
        f"ORDER BY p.created_at DESC, p.id DESC LIMIT ${limit} OFFSET ${offset}",
        *args, query.page.per_page, query.page.offset,
    )
    total = await conn.fetchval(f"SELECT COUNT(*) FROM pitches p{where}", *args)
    return rows, int(total or 0)


async def get(conn: Connection, pitch_id: int) -> Row | None:
    return await conn.fetchrow(f"SELECT {_FULL_COLUMNS}{_FROM} WHERE p.id = $1", pitch_id)


async def owner_of(conn: Connection, pitch_id: int) -> Row | None:
    """`creator_id`, `status`, `title` and `version` of a pitch, or None."""
    return await conn.fetchrow(
        "SELECT creator_id, status, title, version FROM pitches WHERE id = $1", pitch_id
    )


async def insert(conn: Connection, creator_id: int, values: dict[str, Any], now: float) -> int:
    new_id = await conn.fetchval(
        "INSERT INTO pitches (creator_id, title, logline, synopsis, genre, budget_range, "
        "status, budget_details, script_url, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        creator_id, values["title"], values["logline"], values["synopsis"], values["genre"],
        values["budget_range"], values.get("status", "published"),
        values.get("budget_details"), values.get("script_url"), now,
    )
    return int(new_id)


def _version_filter(versions: Collection[int] | None, first: int) -> tuple[str, list[int]]:
    """` AND version IN (...)` for an If-Match, numbered from `$first`; nothing without one."""
    if versions is None:
        return "", []
    listed = sorted(versions)
    if not listed:
        return " AND FALSE", []
    marks = ", ".join(f"${index}" for index in range(first, first + len(listed)))
    return f" AND version IN ({marks})", listed


async def update(
    conn: Connection, pitch_id: int, creator_id: int, values: dict[str, Any], now: float,
    versions: Collection[int] | None = None,
) -> int | None:
    """Write `values` to the pitch if `creator_id` owns it (and, given `versions`, its version
    is one of them), bumping its version; the new version, or None when no row qualified.

    Check and write are one statement, so a concurrent DELETE or update cannot slip between
    them: on PostgreSQL the row lock makes the WHERE be re-checked against the winner's row."""
    columns = [column for column in EDITABLE if column in values]
    assignments = [f"{column} = ${index}" for index, column in enumerate(columns, start=4)]
    condition, listed = _version_filter(versions, 4 + len(columns))
    version = await conn.fetchval(
        f"UPDATE pitches SET updated_at = $3, version = version + 1, {', '.join(assignments)} "
        f"WHERE id = $1 AND creator_id = $2{condition} RETURNING version",
        pitch_id, creator_id, now, *(values[column] for column in columns), *listed,
    )
    return None if version is None else int(version)


async def delete(
    conn: Connection, pitch_id: int, creator_id: int, versions: Collection[int] | None = None
) -> bool:
    """Delete the pitch if `creator_id` owns it (and its version is one of `versions`, when
    given), in one statement: of concurrent deletes exactly one finds the row."""
    condition, listed = _version_filter(versions, 3)
    deleted = await conn.fetchval(
        f"DELETE FROM pitches WHERE id = $1 AND creator_id = $2{condition} RETURNING id",
        pitch_id, creator_id, *listed,
    )
    return deleted is not None


async def nda_requesters(conn: Connection, pitch_id: int) -> list[int]:
    """Everyone with an NDA request on the pitch, whatever its status: the users whose cached
    access and dashboards a delete of the pitch changes."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM info_requests WHERE pitch_id = $1", pitch_id
    )
    return sorted(int(row["user_id"]) for row in rows)


async def owned_ids(conn: Connection, user_id: int) -> list[int]:
    rows = await conn.fetch("SELECT id FROM pitches WHERE creator_id = $1", user_id)
    return sorted(int(row["id"]) for row in rows)


async def accessible_ids(conn: Connection, user_id: int) -> list[int]:
    """Pitches this user holds an approved NDA for."""
    rows = await conn.fetch(
        "SELECT pitch_id FROM info_requests WHERE user_id = $1 AND status = 'approved'",
        user_id,
    )
    return sorted(int(row["pitch_id"]) for row in rows)
