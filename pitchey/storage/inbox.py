"""Messages between users and the notifications the platform sends them."""

from __future__ import annotations

import json
from typing import Any

from pitchey.storage import Connection, Row

__all__ = [
    "conversation_id",
    "insert_message",
    "list_conversation",
    "list_messages",
    "list_notifications",
    "mark_read",
    "notify",
    "user_exists",
]

_MESSAGE_COLUMNS = (
    "m.id, m.conversation_id, m.sender_id, s.name AS sender_name, m.recipient_id, "
    "r.name AS recipient_name, m.pitch_id, m.body, m.created_at"
)
_MESSAGE_FROM = (
    " FROM messages m JOIN users s ON s.id = m.sender_id JOIN users r ON r.id = m.recipient_id"
)
_NOTIFICATION_COLUMNS = "id, kind, title, body, data, created_at, read_at"


def conversation_id(a: int, b: int) -> str:
    """One id per pair of users, whoever writes first."""
    low, high = sorted((a, b))
    return f"{low}:{high}"


async def user_exists(conn: Connection, user_id: int) -> bool:
    return await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is not None


async def insert_message(
    conn: Connection, sender_id: int, recipient_id: int, body: str, pitch_id: int | None,
    now: float,
) -> Row:
    new_id = await conn.fetchval(
        "INSERT INTO messages (conversation_id, sender_id, recipient_id, pitch_id, body, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        conversation_id(sender_id, recipient_id), sender_id, recipient_id, pitch_id, body, now,
    )
    row = await conn.fetchrow(f"SELECT {_MESSAGE_COLUMNS}{_MESSAGE_FROM} WHERE m.id = $1", new_id)
    assert row is not None
    return row


async def list_messages(conn: Connection, user_id: int, limit: int, offset: int) -> list[Row]:
    """Every message this user sent or received, newest first."""
    return await conn.fetch(
        f"SELECT {_MESSAGE_COLUMNS}{_MESSAGE_FROM} "
        "WHERE m.sender_id = $1 OR m.recipient_id = $1 "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )


async def list_conversation(
    conn: Connection, user_id: int, other_id: int, limit: int, offset: int
) -> list[Row]:
    return await conn.fetch(
        f"SELECT {_MESSAGE_COLUMNS}{_MESSAGE_FROM} WHERE m.conversation_id = $1 "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT $2 OFFSET $3",
        conversation_id(user_id, other_id), limit, offset,
    )


async def notify(
    conn: Connection, user_id: int, kind: str, title: str, body: str,
    data: dict[str, Any], now: float,
) -> None:
    await conn.execute(
        "INSERT INTO notifications (user_id, kind, title, body, data, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        user_id, kind, title, body, json.dumps(data, sort_keys=True), now,
    )


async def list_notifications(
    conn: Connection, user_id: int, unread_only: bool, limit: int, offset: int
) -> list[Row]:
    unread = " AND read_at IS NULL" if unread_only else ""
    return await conn.fetch(
        f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE user_id = $1{unread} "
        "ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )


async def mark_read(conn: Connection, notification_id: int, user_id: int, now: float) -> Row | None:
    """Mark one of this user's notifications read (idempotent); None if it is not theirs."""
    return await conn.fetchrow(
        "UPDATE notifications SET read_at = COALESCE(read_at, $3) "
        f"WHERE id = $1 AND user_id = $2 RETURNING {_NOTIFICATION_COLUMNS}",
        notification_id, user_id, now,
    )
