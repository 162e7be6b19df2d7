"""Analytics events and the aggregate reads behind the per-portal dashboards.

Every aggregate is a GROUP BY on an indexed prefix: idx_user_dashboard for a creator's
pitches, idx_investor_portfolio for an investor's positions, idx_analytics_user_event and
idx_analytics_pitch_event for event counts.
"""

from __future__ import annotations

import json
from typing import Any

from pitchey.storage import Connection, Row

__all__ = [
    "catalog_by_genre",
    "creator_event_counts",
    "info_request_counts",
    "pitch_status_counts",
    "portfolio",
    "record_event",
    "recent_pitches",
    "unread_notifications",
    "user_event_counts",
]


def _counts(rows: list[Row], key: str, keys: tuple[str, ...] = ()) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for row in rows:
        counts[str(row[key])] = int(row["n"])
    return counts


async def record_event(
    conn: Connection, user_id: int | None, event_type: str, pitch_id: int | None,
    properties: dict[str, Any], now: float,
) -> int:
    # ensure_ascii: any text the client sent is stored as plain ASCII escapes
    new_id = await conn.fetchval(
        "INSERT INTO analytics_events (user_id, event_type, pitch_id, properties, created_at) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        user_id, event_type, pitch_id, json.dumps(properties, ensure_ascii=True), now,
    )
    return int(new_id)


async def user_event_counts(conn: Connection, user_id: int, since: float) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT event_type, COUNT(*) AS n FROM analytics_events "
        "WHERE user_id = $1 AND created_at >= $2 GROUP BY event_type",
        user_id, since,
    )
    return _counts(rows, "event_type")


async def creator_event_counts(conn: Connection, creator_id: int, since: float) -> dict[str, int]:
    """Events on this creator's pitches, by type."""
    rows = await conn.fetch(
        "SELECT e.event_type, COUNT(*) AS n FROM analytics_events e "
        "JOIN pitches p ON p.id = e.pitch_id "
        "WHERE p.creator_id = $1 AND e.created_at >= $2 GROUP BY e.event_type",
        creator_id, since,
    )
    return _counts(rows, "event_type")


async def pitch_status_counts(conn: Connection, creator_id: int) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, COUNT(*) AS n FROM pitches WHERE creator_id = $1 GROUP BY status",
        creator_id,
    )
    return _counts(rows, "status", ("draft", "published", "archived"))


async def recent_pitches(conn: Connection, creator_id: int, limit: int) -> list[Row]:
    return await conn.fetch(
        "SELECT id, title, status, created_at FROM pitches WHERE creator_id = $1 "
        "ORDER BY created_at DESC, id DESC LIMIT $2",
        creator_id, limit,
    )


async def info_request_counts(conn: Connection, user_id: int, as_creator: bool) -> dict[str, int]:
    """NDA requests by status: received on own pitches (creator) or sent (others)."""
    if as_creator:
        rows = await conn.fetch(
            "SELECT r.status, COUNT(*) AS n FROM info_requests r "
            "JOIN pitches p ON p.id = r.pitch_id WHERE p.creator_id = $1 GROUP BY r.status",
            user_id,
        )
    else:
        rows = await conn.fetch(
            "SELECT status, COUNT(*) AS n FROM info_requests WHERE user_id = $1 "
            "GROUP BY status",
            user_id,
        )
    return _counts(rows, "status", ("pending", "approved", "rejected"))


async def unread_notifications(conn: Connection, user_id: int) -> int:
    value = await conn.fetchval(
        "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user_id
    )
    return int(value or 0)


async def portfolio(conn: Connection, investor_id: int) -> dict[str, Any]:
    rows = await conn.fetch(
        "SELECT status, COUNT(*) AS n, SUM(amount_cents) AS cents FROM investments "
        "WHERE investor_id = $1 GROUP BY status",
        investor_id,
    )
    by_status = _counts(rows, "status", ("pending", "committed", "withdrawn"))
    committed = sum(int(row["cents"] or 0) for row in rows if row["status"] == "committed")
    return {"positions": sum(by_status.values()), "by_status": by_status,
            "committed_cents": committed}


async def catalog_by_genre(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT genre, COUNT(*) AS n FROM pitches WHERE status = 'published' GROUP BY genre"
    )
    return _counts(rows, "genre")
