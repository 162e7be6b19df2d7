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
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import argon2
from aiohttp import web
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pitchey.cache import ThrottledWarning
from pitchey.errors import ApiError
from pitchey.login_throttle import LoginThrottle, open_attempt_store

if TYPE_CHECKING:
    from pitchey.cache import Cache
    from pitchey.metrics import ServiceMetrics
    from pitchey.settings import Settings
    from pitchey.storage import Database

__all__ = [
    "AUTH",
    "FAILURE_REASONS",
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
# Counted in pitchey_auth_failures_total{portal,reason}: a fixed set, so the series stay bounded.
FAILURE_REASONS = ("unknown_account", "wrong_password", "wrong_portal", "throttled")
log = logging.getLogger("pitchey.auth")
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
        self._failures = metrics.auth_failures if metrics else None
        self.throttle = LoginThrottle(open_attempt_store(cache), clock)
        self._throttled_log = ThrottledWarning(log, clock=clock)

    async def _check_password(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # same work for an unknown email as for a wrong password: no account probing
            if self._dummy_hash is None:
                self._dummy_hash = await hash_password(self.hasher, secrets.token_hex(16))
            stored = self._dummy_hash
            await asyncio.to_thread(_verify, self.hasher, stored, password)
            return False
        return await asyncio.to_thread(_verify, self.hasher, stored, password)

    def _failed(self, portal: str, reason: str, client: str) -> None:
        """Log and count one refused login (never the password; the email neither: failed
        logins are mostly someone else's address). Refusals by the throttle cost an attacker
        nothing, so their log lines are rate limited (each is still counted) lest a flood of
        them fill the disk; every verdict on a password is logged."""
        if reason == "throttled":
            self._throttled_log.warn(
                f"failed login: portal={portal} reason={reason} client={client}"
            )
        else:
            log.warning("failed login: portal=%s reason=%s client=%s", portal, reason, client)
        if self._failures is not None:
            self._failures.labels(portal, reason).inc()

    def _throttled(self, portal: str, client: str, retry_after_s: int) -> ApiError:
        self._failed(portal, "throttled", client)
        return ApiError(
            429, "too_many_attempts",
            f"too many failed sign-in attempts; try again in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )

    async def login(
        self, email: str, password: str, portal: str, client: str = "unknown"
    ) -> Session:
        """A new session, or 401/403; 429 while the account or `client` (the caller's
        address) is locked out by failed attempts (pitchey.login_throttle), before any
        password is verified."""
        retry_after_s = await self.throttle.retry_after(email, client)
        if retry_after_s:
            raise self._throttled(portal, client, retry_after_s)
        row = await self.db.fetchrow(
            "SELECT u.id, u.email, u.name, u.user_type, u.company, u.password_hash "
            "FROM users u WHERE u.email = $1",
            email,
        )
        verified = await self._check_password(row["password_hash"] if row else None, password)
        # failures recorded by parallel attempts while this one was verified count too: a
        # burst of guesses gets no more verdicts than the same guesses one after another
        if not verified:
            retry_after_s = await self.throttle.failed(email, client)
            if retry_after_s:
                raise self._throttled(portal, client, retry_after_s)
            self._failed(portal, "wrong_password" if row else "unknown_account", client)
            raise ApiError(401, "invalid_credentials", "wrong email or password")
        retry_after_s = await self.throttle.retry_after(email, client)
        if retry_after_s:
            raise self._throttled(portal, client, retry_after_s)
        assert row is not None
        await self.throttle.succeeded(email)
        user = User.from_row(row)
        if user.portal != portal:
            self._failed(portal, "wrong_portal", client)
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
        expires_at = now + min(self.settings.session_ttl_s, self.settings.session_max_lifetime_s)
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
        """A new token with a fresh expiry; the old token stops working at once. The session
        keeps its sign-in time (`created_at`), and no expiry goes past that plus
        `session_max_lifetime_s`: once that has passed, refresh ends the session (401)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        ended = False
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "DELETE FROM sessions WHERE token_hash = $1 RETURNING created_at",
                _digest(session.token),
            )
            if row is None:  # logged out (or refreshed) concurrently
                raise ApiError(401, "unauthenticated", "the session has ended; sign in again")
            created_at = float(row["created_at"])
            ends_at = created_at + self.settings.session_max_lifetime_s
            expires_at = min(now + self.settings.session_ttl_s, ends_at)
            if expires_at <= now:
                ended = True  # the delete commits: the session is gone, not just refused
            else:
                await tx.execute(
                    "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
                    "VALUES ($1, $2, $3, $4)",
                    _digest(token), session.user.id, created_at, expires_at,
                )
        await self.cache.delete("session:" + _digest(session.token))
        if ended:
            raise ApiError(
                401, "unauthenticated",
                "the session reached its maximum lifetime; sign in again",
            )
        return Session(token, expires_at, session.user)

    async def logout(self, token: str) -> None:
        await self.db.execute("DELETE FROM sessions WHERE token_hash = $1", _digest(token))
        await self.cache.delete("session:" + _digest(token))

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            # no longer than the session itself (less after a late refresh: max lifetime)
            SESSION_COOKIE, session.token, path="/",
            max_age=max(0, round(session.expires_at - self.clock())),
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
