"""A durable outbox of webhook notifications in SQLite.

A notification is committed here before any attempt to send it, and leaves the pending state
only when the receiver accepted it (2xx), refused it for good (4xx), or it grew too old. So a
receiver outage, or the sender being killed and restarted, loses nothing: the next sender
opening the same file carries on. Per (url, group key) notifications go out in order — a
"resolved" never overtakes its "firing" — while different groups do not wait for each other.

The database is opened in WAL mode with synchronous=NORMAL: a committed row survives the
process crashing (not a power cut); one short transaction per change, behind a lock, so the
outbox can be shared by the evaluation and delivery threads.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxItem"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    group_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | rejected | expired
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, url, group_key, id);
"""
_HEADS = """
SELECT o.id, o.url, o.group_key, o.body, o.created_at, o.attempts, o.next_attempt_at
FROM outbox AS o
JOIN (SELECT MIN(id) AS id FROM outbox WHERE state = 'pending' GROUP BY url, group_key) AS h
  ON h.id = o.id
"""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    url: str
    group_key: str
    body: bytes
    created_at: float
    attempts: int
    next_attempt_at: float


class Outbox:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enqueue(self, url: str, group_key: str, body: bytes, now: float) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (url, group_key, body, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?)", (url, group_key, body, now, now))
            return int(cursor.lastrowid or 0)

    def due(self, now: float, limit: int = 32) -> list[OutboxItem]:
        """The oldest pending notification of each (url, group) whose attempt time came."""
        with self._lock:
            rows = self._db.execute(_HEADS + " WHERE o.next_attempt_at <= ? ORDER BY o.id "
                                    "LIMIT ?", (now, limit)).fetchall()
        return [OutboxItem(*row) for row in rows]

    def next_attempt_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(o.next_attempt_at) FROM (" + _HEADS + ") AS o"
                                   ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def delivered(self, item_id: int, now: float) -> None:
        self._finish(item_id, "delivered", None, now)

    def failed(self, item_id: int, state: str, error: str, now: float) -> None:
        """Give up on a notification: `rejected` (4xx) or `expired` (too old)."""
        self._finish(item_id, state, error, now)

    def retry_at(self, item_id: int, when: float, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                             "last_error = ? WHERE id = ?", (when, error, item_id))

    def _finish(self, item_id: int, state: str, error: str | None, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET state = ?, attempts = attempts + 1, "
                             "last_error = ?, finished_at = ? WHERE id = ?",
                             (state, error, now, item_id))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            return {str(state): int(n) for state, n in rows}

    def pending(self) -> int:
        return self.counts().get("pending", 0)

    def purge_finished(self, before: float) -> int:
        """Forget delivered/rejected/expired rows finished before `before`."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM outbox WHERE state != 'pending' AND "
                                      "finished_at < ?", (before,))
            return cursor.rowcount
