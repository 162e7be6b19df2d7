"""Storage failures the domain layer can act on, independent of the backend driver."""

from __future__ import annotations

__all__ = ["UniqueViolation"]


class UniqueViolation(Exception):
    """An INSERT or UPDATE hit a unique index (e.g. a second account with the same email).

    Raised instead of the driver's own exception so the API can answer 409 without knowing
    whether SQLite or PostgreSQL is underneath."""
