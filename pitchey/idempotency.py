"""`Idempotency-Key` on writes: a request retried with the key it was first sent with is
executed once, and every later copy gets the first one's answer.

A write (POST, PUT, PATCH, DELETE) may carry `Idempotency-Key: <1-255 printable ASCII>`; any
other value is a 422 naming the header. The key is scoped to the signed-in user (to the client
address for anonymous writes), so one client can never replay another's answer. Its record
lives in the database (`idempotency_keys`, migration 5), not in a process: every region of the
geo topology and every restart sees it, and the table's primary key decides which of two
racing copies executes (the other gets 409 `idempotency_key_in_use`). That is what lets the
HAProxy edge retry a keyed write on the next region when a worker dies with it in flight.

One request's life with a key:

1. Claim: insert (scope, key, fingerprint of method + path + body, owner, lease). An
   existing record answers instead: the same request completed -> its stored status, headers
   that matter and body, with `Idempotent-Replayed: true`; a different request under the same
   key -> 422 `idempotency_key_mismatch`; the same request still running -> 409 with
   Retry-After, unless its owner stopped renewing the lease (the process died), in which case
   this request takes the claim over and executes.
2. Execute the handler, renewing the lease every third of it while it runs.
3. Store a 2xx-4xx outcome for `TTL_S` (24 h). A 5xx is not stored: the claim is released
   and a retry executes again (this service's 503s mean nothing was changed).

What is not covered: the session routes (`/api/auth/...`) accept the header but ignore it.
Their answers carry session tokens, which are never stored anywhere in clear (only their
SHA-256), and signing in twice is harmless. A process killed after the handler committed but
before its outcome was stored leaves a claim that is taken over once its lease runs out, so in
that narrow window a retry executes the write a second time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from pitchey import keys
from pitchey.errors import ApiError, StorageUnavailable, json_error
from pitchey.storage import Database, Row

__all__ = [
    "EXEMPT_PREFIXES",
    "HEADER",
    "IDEMPOTENCY",
    "IdempotencyKeys",
    "LEASE_S",
    "REPLAYED_HEADER",
    "TTL_S",
    "WRITE_METHODS",
    "fingerprint",
    "idempotent",
]

log = logging.getLogger("pitchey.idempotency")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH, hdrs.METH_DELETE})
# Session routes: their answers hold session tokens, which are never stored in clear.
EXEMPT_PREFIXES = ("/api/auth/",)
TTL_S = 24 * 3600.0
# A running claim's owner renews it every LEASE_S / 3; a claim not renewed for LEASE_S
# belongs to a process that died, and the next copy of the request takes it over.
LEASE_S = 3.0
_PURGE_EVERY_S = 60.0
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# The answer headers a replay must repeat; cookies are never stored.
_STORED_HEADERS = ("Content-Type", "Location", "ETag", "Last-Modified", "Allow")
_INVALID = "must be 1-255 printable ASCII characters, sent once"


def fingerprint(method: str, path_qs: str, body: bytes) -> str:
    """What makes two requests "the same request" for one key."""
    digest = hashlib.sha256()
    for part in (method.encode("ascii"), path_qs.encode("utf-8", "surrogateescape"), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyKeys:
    """The records of one app: claim, renew, store, release, replay."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time, *,
                 ttl_s: float = TTL_S, lease_s: float = LEASE_S) -> None:
        self.db = db
        self.clock = clock
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        # unique per process: a region's restarted worker is a new owner
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._purged_at = -math.inf

    async def run(self, request: web.Request, handler: Handler, scope: str, key: str,
                  print_: str) -> web.StreamResponse:
        answer = await self._claim(scope, key, print_)
        if answer is not None:
            return answer
        task = asyncio.ensure_future(handler(request))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self.lease_s / 3)
                if not task.done():
                    await self._renew(scope, key)
        except BaseException:  # cancelled (the client went away), or the renewal failed
            task.cancel()  # the claim runs out with its lease: the write may have happened
            raise
        try:
            response = task.result()
        except ApiError as exc:
            if exc.status >= 500:
                await self._release(scope, key)
                raise
            response = exc.response()
        except BaseException:
            await self._release(scope, key)
            raise
        await self._store(scope, key, response)
        return response

    async def _claim(self, scope: str, key: str, print_: str) -> web.StreamResponse | None:
        """None when this request owns the key now; otherwise the answer to send instead."""
        db = self.db
        for _ in range(3):
            now = self.clock()
            if now - self._purged_at >= _PURGE_EVERY_S:
                self._purged_at = now
                await db.execute("DELETE FROM idempotency_keys WHERE expires_at <= $1", now)
            inserted = await db.execute(
                "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, owner, "
                "lease_until, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (scope, idem_key) DO NOTHING",
                scope, key, print_, self.owner, now + self.lease_s, now, now + self.ttl_s,
            )
            if inserted:
                return None
            row = await db.fetchrow(
                "SELECT fingerprint, owner, lease_until, status, headers, body, expires_at "
                "FROM idempotency_keys WHERE scope = $1 AND idem_key = $2", scope, key,
            )
            if row is None:
                continue  # expired and purged meanwhile: claim it afresh
            if float(row["expires_at"]) <= now:
                await db.execute(
                    "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 "
                    "AND expires_at <= $3", scope, key, now,
                )
                continue
            if row["fingerprint"] != print_:
                return json_error(
                    422, "idempotency_key_mismatch",
                    f"this {HEADER} was first used with a different request (method, path or "
                    "body); use a new key for a new request",
                    fields={HEADER: "was used with a different request"},
                )
            if row["status"] is not None:
                return _replay(row)
            lease_until = float(row["lease_until"])
            if lease_until > now:
                return _in_use(lease_until - now)
            # the owner stopped renewing: it died with the request in flight
            taken = await db.execute(
                "UPDATE idempotency_keys SET owner = $1, lease_until = $2 WHERE scope = $3 "
                "AND idem_key = $4 AND status IS NULL AND owner = $5 AND lease_until <= $6",
                self.owner, now + self.lease_s, scope, key, row["owner"], now,
            )
            if taken:
                log.info("idempotency key taken over from %s (its lease ran out)", row["owner"])
                return None
        return _in_use(self.lease_s)

    async def _renew(self, scope: str, key: str) -> None:
        try:
            await self.db.execute(
                "UPDATE idempotency_keys SET lease_until = $1 WHERE scope = $2 AND idem_key = $3 "
                "AND owner = $4 AND status IS NULL",
                self.clock() + self.lease_s, scope, key, self.owner,
            )
        except StorageUnavailable as exc:  # the handler finds out too; keep waiting for it
            log.warning("could not renew an idempotency lease: %s", exc)

    async def _release(self, scope: str, key: str) -> None:
        try:
            await self.db.execute(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 "
                "AND owner = $3 AND status IS NULL", scope, key, self.owner,
            )
        except StorageUnavailable as exc:  # the lease runs out instead
            log.warning("could not release an idempotency key: %s", exc)

    async def _store(self, scope: str, key: str, response: web.StreamResponse) -> None:
        body = response.body if isinstance(response, web.Response) else None
        if response.status >= 500 or not isinstance(body, bytes | None):
            await self._release(scope, key)  # retried, not replayed (or not storable)
            return
        headers = {name: response.headers[name] for name in _STORED_HEADERS
                   if name in response.headers}
        try:
            await self.db.execute(
                "UPDATE idempotency_keys SET status = $1, headers = $2, body = $3 "
                "WHERE scope = $4 AND idem_key = $5 AND owner = $6",
                response.status, json.dumps(headers),
                base64.b64encode(body or b"").decode("ascii"), scope, key, self.owner,
            )
        except StorageUnavailable as exc:
            # the write itself went through: answer it; the claim runs out with its lease
            log.warning("could not store an idempotent outcome: %s", exc)


def _replay(row: Row) -> web.Response:
    headers = json.loads(row["headers"] or "{}")
    headers[REPLAYED_HEADER] = "true"
    return web.Response(status=int(row["status"]), headers=headers,
                        body=base64.b64decode(row["body"] or ""))


def _in_use(remaining_s: float) -> web.Response:
    return json_error(
        409, "idempotency_key_in_use",
        f"a request with this {HEADER} is still being processed; retry after it finishes",
        headers={"Retry-After": str(max(1, math.ceil(remaining_s)))},
    )


IDEMPOTENCY: web.AppKey[IdempotencyKeys] = web.AppKey("pitchey.idempotency", IdempotencyKeys)


async def _start(app: web.Application) -> None:
    """Open the records once the database is (the cleanup context runs before this)."""
    from pitchey.api.common import CLOCK  # the API's clock, as for session expiry

    app[IDEMPOTENCY] = IdempotencyKeys(app[keys.DATABASE], app.get(CLOCK, time.time))


def _registered(app: web.Application) -> None:
    if _start not in app.on_startup:
        app.on_startup.append(_start)


def _valid_key(request: web.Request) -> str:
    values = request.headers.getall(HEADER)
    if len(values) != 1 or not _KEY.fullmatch(values[0]):
        raise ApiError(422, "validation_failed", f"the {HEADER} header {_INVALID}",
                       fields={HEADER: _INVALID})
    return values[0]


async def _scope(request: web.Request, client_of: Callable[[web.Request], str]) -> str:
    """Whose keys these are: the signed-in user's, else the client address's."""
    from pitchey.auth import AUTH, current_session

    if AUTH in request.app:
        session = await current_session(request)
        if session is not None:
            return f"user:{session.user.id}"
    return f"client:{client_of(request)}"


def idempotent(app: web.Application, handler: Handler, route: str,
               client_of: Callable[[web.Request], str]) -> Handler:
    """`handler` (a write route's) honouring Idempotency-Key; requests without one pay a
    single header lookup."""
    exempt = route.startswith(EXEMPT_PREFIXES)
    _registered(app)

    async def with_key(request: web.Request) -> web.StreamResponse:
        if HEADER not in request.headers:
            return await handler(request)
        key = _valid_key(request)
        if exempt:
            return await handler(request)
        body = await request.read()  # kept by aiohttp: the handler reads it again
        print_ = fingerprint(request.method, request.raw_path, body)
        scope = await _scope(request, client_of)
        return await request.app[IDEMPOTENCY].run(request, handler, scope, key, print_)

    with_key.__name__ = getattr(handler, "__name__", "handler")
    with_key.__doc__ = handler.__doc__
    return with_key
