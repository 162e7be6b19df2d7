"""Accounts and sessions: argon2id passwords, server-side sessions with a 24 h expiry.

A session is a random token handed to the client (cookie `pitchey_session`, or an
`Authorization: Bearer` header for API clients such as the load tests). Only its SHA-256 is
stored, in the `sessions` table and in the cache under `session:<sha256>`, so neither a
database dump nor a Redis dump holds a usable token. The cache entry lives at most
`session_cache_ttl_s` and never past the session's own expiry; logout and refresh delete it.

Password hashing is CPU-heavy by design, so it runs in a worker thread (argon2 releases the
GIL) instead of stalling every other request on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import argon2
from aiohttp import web
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pitchey.errors import ApiError

if TYPE_CHECKING:
    from pitchey.cache import Cache
    from pitchey.metrics import ServiceMetrics
    from pitchey.settings import Settings
    from pitchey.storage import Database

__all__ = [
    "AUTH",
    "SESSION_COOKIE",
    "Auth",
    "Session",
    "User",
    "hash_password",
    "make_hasher",
    "require_user",
    "session_token",
]

SESSION_COOKIE = "pitchey_session"
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,128}")
_USER_COLUMNS = "u.id, u.email, u.name, u.user_type, u.company"


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    portal: str
    company: str | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name,
                "portal": self.portal, "company": self.company}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(int(row["id"]), row["email"], row["name"], row["user_type"], row["company"])


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: float
    user: User


def make_hasher(settings: Settings) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=argon2.Type.ID,
    )


async def hash_password(hasher: argon2.PasswordHasher, password: str) -> str:
    return await asyncio.to_thread(hasher.hash, password)


def _verify(hasher: argon2.PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def session_token(request: web.Request) -> str | None:
    """The token the client sent (Bearer header first, then the cookie), if well-formed."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    if not token:
        token = request.cookies.get(SESSION_COOKIE)
    return token if token and _TOKEN.fullmatch(token) else None


class Auth:
    """Login, lookup, refresh and logout against the database and the cache."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        cache: Cache,
        clock: Callable[[], float],
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.cache = cache
        self.clock = clock
        self.hasher = make_hasher(settings)
        self._dummy_hash: str | None = None
        self._lookups = metrics.cache_lookups.labels("session") if metrics else None
        self._hits = metrics.cache_hits.labels("session") if metrics else None

    async def _check_password(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # same work for an unknown email as for a wrong password: no account probing
            if self._dummy_hash is None:
                self._dummy_hash = await hash_password(self.hasher, secrets.token_hex(16))
            stored = self._dummy_hash
            await asyncio.to_thread(_verify, self.hasher, stored, password)
            return False
        return await asyncio.to_thread(_verify, self.hasher, stored, password)

    async def login(self, email: str, password: str, portal: str) -> Session:
        row = await self.db.fetchrow(
            "SELECT u.id, u.email, u.name, u.user_type, u.company, u.password_hash "
            "FROM users u WHERE u.email = $1",
            email,
        )
        if not await self._check_password(row["password_hash"] if row else None, password):
            raise ApiError(401, "invalid_credentials", "wrong email or password")
        assert row is not None
        user = User.from_row(row)
        if user.portal != portal:
            raise ApiError(
                403, "wrong_portal",
                f"this account belongs to the {user.portal} portal, not the {portal} portal",
            )
        if self.hasher.check_needs_rehash(row["password_hash"]):
            new_hash = await hash_password(self.hasher, password)
            await self.db.execute(
                "UPDATE users SET password_hash = $1 WHERE id = $2", new_hash, user.id
            )
        return await self._open_session(user)

    async def _open_session(self, user: User) -> Session:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + self.settings.session_ttl_s
        await self.db.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4)",
            _digest(token), user.id, now, expires_at,
        )
        return Session(token, expires_at, user)

    async def lookup(self, token: str) -> Session | None:
        """The live session for `token`, from the cache when it holds it."""
        key = "session:" + _digest(token)
        cached = await self.cache.get(key)
        if self._lookups is not None and self._hits is not None:
            self._lookups.inc()
            if cached is not None:
                self._hits.inc()
        now = self.clock()
        if cached is not None:
            data = json.loads(cached)
            if data["expires_at"] > now:
                return Session(token, data["expires_at"], User(**data["user"]))
            return None
        row = await self.db.fetchrow(
            f"SELECT s.expires_at, {_USER_COLUMNS} FROM sessions s "
            "JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
            _digest(token),
        )
        if row is None or row["expires_at"] <= now:
            return None
        session = Session(token, float(row["expires_at"]), User.from_row(row))
        ttl = min(self.settings.session_cache_ttl_s, session.expires_at - now)
        if ttl > 0:
            blob = {"expires_at": session.expires_at, "user": asdict(session.user)}
            await self.cache.set(key, json.dumps(blob).encode(), ttl)
        return session

    async def refresh(self, session: Session) -> Session:
        """A new token with a fresh expiry; the old token stops working at once."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + self.settings.session_ttl_s
        async with self.db.transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM sessions WHERE token_hash = $1", _digest(session.token)
            )
            if removed == 0:  # logged out (or refreshed) concurrently
                raise ApiError(401, "unauthenticated", "the session has ended; sign in again")
            await tx.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4)",
                _digest(token), session.user.id, now, expires_at,
            )
        await self.cache.delete("session:" + _digest(session.token))
        return Session(token, expires_at, session.user)

    async def logout(self, token: str) -> None:
        await self.db.execute("DELETE FROM sessions WHERE token_hash = $1", _digest(token))
        await self.cache.delete("session:" + _digest(token))

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE, session.token, max_age=self.settings.session_ttl_s, path="/",
            httponly=True, samesite="Lax", secure=self.settings.cookie_secure,
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="Lax",
            secure=self.settings.cookie_secure,
        )


AUTH: web.AppKey[Auth] = web.AppKey("pitchey.auth", Auth)
_SESSION: web.RequestKey[Session | None] = web.RequestKey("pitchey.session")


async def current_session(request: web.Request) -> Session | None:
    """The request's live session, looked up once per request."""
    if _SESSION in request:
        return request[_SESSION]
    token = session_token(request)
    session = await request.app[AUTH].lookup(token) if token else None
    request[_SESSION] = session
    return session


async def require_user(request: web.Request, portal: str | tuple[str, ...] | None) -> User:
    """The signed-in user: 401 without a live session, 403 when the route belongs to
    another portal (`portal` may name several)."""
    session = await current_session(request)
    if session is None:
        raise ApiError(401, "unauthenticated", "sign in first: no valid session")
    allowed = (portal,) if isinstance(portal, str) else portal
    if allowed is not None and session.user.portal not in allowed:
        raise ApiError(
            403, "wrong_portal",
            f"this route is for the {' or '.join(allowed)} portal; "
            f"you are signed in to the {session.user.portal} portal",
        )
    return session.user
