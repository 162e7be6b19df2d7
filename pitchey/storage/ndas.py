"""Info-request (NDA) statements: an investor or production company asks for a pitch's
protected fields; the pitch's creator approves or rejects."""

from __future__ import annotations

from pitchey.storage import Connection, Row

__all__ = ["decide", "find", "get", "list_for_creator", "list_for_requester", "open_request"]

_COLUMNS = (
    "r.id, r.pitch_id, p.title AS pitch_title, p.creator_id, r.user_id, u.name AS user_name, "
    "u.user_type AS user_portal, r.status, r.message, r.created_at, r.decided_at"
)
_FROM = (
    " FROM info_requests r JOIN pitches p ON p.id = r.pitch_id JOIN users u ON u.id = r.user_id"
)


async def get(conn: Connection, request_id: int) -> Row | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS}{_FROM} WHERE r.id = $1", request_id)


async def find(conn: Connection, pitch_id: int, user_id: int) -> Row | None:
    return await conn.fetchrow(
        "SELECT id, status FROM info_requests WHERE pitch_id = $1 AND user_id = $2",
        pitch_id, user_id,
    )


async def open_request(
    conn: Connection, pitch_id: int, user_id: int, message: str | None, now: float,
    reopen_id: int | None,
) -> int:
    """A new pending request, or a rejected one reopened as pending (same id)."""
    if reopen_id is not None:
        await conn.execute(
            "UPDATE info_requests SET status = 'pending', message = $2, created_at = $3, "
            "decided_at = NULL WHERE id = $1",
            reopen_id, message, now,
        )
        return reopen_id
    new_id = await conn.fetchval(
        "INSERT INTO info_requests (pitch_id, user_id, status, message, created_at) "
        "VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
        pitch_id, user_id, message, now,
    )
    return int(new_id)


async def decide(conn: Connection, request_id: int, status: str, now: float) -> bool:
    """Pending -> approved/rejected; False when it was no longer pending (a race)."""
    changed = await conn.execute(
        "UPDATE info_requests SET status = $2, decided_at = $3 "
        "WHERE id = $1 AND status = 'pending'",
        request_id, status, now,
    )
    return changed == 1


async def list_for_creator(
    conn: Connection, creator_id: int, status: str | None, limit: int, offset: int
) -> list[Row]:
    """Requests on this creator's pitches, newest first."""
    return await _list_where(conn, "p.creator_id", creator_id, status, limit, offset)


async def list_for_requester(
    conn: Connection, user_id: int, status: str | None, limit: int, offset: int
) -> list[Row]:
    """Requests this investor/production user made, newest first."""
    return await _list_where(conn, "r.user_id", user_id, status, limit, offset)


async def _list_where(
    conn: Connection, column: str, owner_id: int, status: str | None, limit: int, offset: int
) -> list[Row]:
    """Requests where `column` (one of the two fixed names above, never input) is `owner_id`,
    optionally of one status, newest first; every value is a bound parameter."""
    if status is None:
        return await conn.fetch(
            f"SELECT {_COLUMNS}{_FROM} WHERE {column} = $1 "
            "ORDER BY r.created_at DESC, r.id DESC LIMIT $2 OFFSET $3",
            owner_id, limit, offset,
        )
    return await conn.fetch(
        f"SELECT {_COLUMNS}{_FROM} WHERE {column} = $1 AND r.status = $2 "
        "ORDER BY r.created_at DESC, r.id DESC LIMIT $3 OFFSET $4",
        owner_id, status, limit, offset,
    )
