"""Steady mixed traffic against the edge on behalf of one region's users, recording every
request: when it started and ended, its status, which region answered it, and the id of
every pitch a write created (so a caller can check each acknowledged write afterwards).

Reads carry the session cookie, so the edge cache tier (anonymous only) does not answer
them and they reach a region; writes create pitches, each with its own Idempotency-Key,
sent again with the same key when no answer or a 409/502/503/504 came back (within the
request's 10 s). Without a session only health reads run.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["IDEMPOTENCY_HEADER", "Sample", "TrafficDriver", "login", "REGION_HEADER",
           "SERVED_BY_HEADER"]

REGION_HEADER = "X-Pitchey-Region"
SERVED_BY_HEADER = "X-Pitchey-Served-By"
_REQUEST_TIMEOUT_S = 10.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
# a keyed write is sent again on these (409 idempotency_key_in_use: its first copy is still
# running somewhere)
_RETRIED_STATUSES = frozenset({409, 502, 503, 504})
_RETRY_PAUSE_S = 0.2
_MAX_RETRY_PAUSE_S = 3.0
_GENRES = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Thriller")
_BUDGETS = ("micro", "low", "medium", "high", "blockbuster")


@dataclass(frozen=True)
class Sample:
    started: float
    ended: float
    kind: str  # "read" | "item" (a pitch by id) | "write"
    status: int | None
    served_by: str | None
    error: str | None = None
    pitch_id: int | None = None

    @property
    def ok(self) -> bool:
        if self.status == 404 and self.kind == "item":
            return True  # a pitch someone else deleted meanwhile: a correct answer
        return self.status is not None and 200 <= self.status < 400


async def login(session: aiohttp.ClientSession, base_url: str, region: str,
                email: str = "alex.creator@demo.com", password: str = "Demo123") -> str | None:
    """The session token of the demo creator, or None when it cannot sign in."""
    try:
        async with session.post(f"{base_url}/api/auth/creator/login",
                                json={"email": email, "password": password},
                                headers={REGION_HEADER: region},
                                timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)) as resp:
            if resp.status != 200:
                return None
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    token = body.get("session", {}).get("token") if isinstance(body, dict) else None
    return str(token) if token else None


@dataclass
class TrafficDriver:
    base_url: str
    region: str
    token: str | None
    concurrency: int = 8
    write_ratio: float = 0.2
    seed: int = 7
    tag: str = "failover"
    clock: Callable[[], float] = time.monotonic
    samples: list[Sample] = field(default_factory=list)
    _counter: int = 0

    async def run(self, session: aiohttp.ClientSession, until: float) -> None:
        """Keep `concurrency` clients busy until the clock reaches `until`."""
        pitch_ids = await self._known_pitches(session)
        await asyncio.gather(*(self._client(session, until, random.Random(self.seed + n),
                                            pitch_ids) for n in range(self.concurrency)))

    def _headers(self) -> dict[str, str]:
        headers = {REGION_HEADER: self.region}
        if self.token:
            headers["Cookie"] = f"pitchey_session={self.token}"
        return headers

    async def _known_pitches(self, session: aiohttp.ClientSession) -> list[int]:
        if not self.token:
            return []
        try:
            async with session.get(f"{self.base_url}/api/pitches?per_page=50",
                                   headers=self._headers()) as resp:
                body = await resp.json() if resp.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return []
        return [int(item["id"]) for item in body.get("items", []) if "id" in item]

    async def _client(self, session: aiohttp.ClientSession, until: float, rng: random.Random,
                      pitch_ids: list[int]) -> None:
        while self.clock() < until:
            if self.token and rng.random() < self.write_ratio:
                await self._write(session, rng)
            else:
                await self._read(session, rng, pitch_ids)

    async def _read(self, session: aiohttp.ClientSession, rng: random.Random,
                    pitch_ids: list[int]) -> None:
        kind = "read"
        if not self.token:
            path = "/health/services"
        elif pitch_ids and rng.random() < 0.5:
            path, kind = f"/api/pitches/{rng.choice(pitch_ids)}", "item"
        else:
            path = f"/api/pitches?page={rng.randint(1, 3)}&per_page=10"
        await self._request(session, "GET", path, kind, None)

    async def _write(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        self._counter += 1
        body = {
            "title": f"{self.tag} {self._counter}",
            "logline": "A region goes dark and the traffic finds another way home.",
            "synopsis": "A worker process is killed mid-flight. The edge notices, moves the "
                        "traffic to the nearest healthy region, and nobody loses a write.",
            "genre": rng.choice(_GENRES),
            "budget_range": rng.choice(_BUDGETS),
            "status": "published",
        }
        # one key per logical write, the same on every retry of it: the edge may retry it on
        # another region, and the service executes it once whichever copy arrives first
        key = f"{self.tag}-{uuid.uuid4().hex}"
        await self._request(session, "POST", "/api/pitches", "write", body, key)

    async def _request(self, session: aiohttp.ClientSession, method: str, path: str, kind: str,
                       body: dict[str, Any] | None, key: str | None = None) -> None:
        started = self.clock()
        deadline = started + _REQUEST_TIMEOUT_S
        headers = self._headers()
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        while True:
            status: int | None = None
            served_by = error = None
            pitch_id: int | None = None
            retry_after_s = _RETRY_PAUSE_S
            payload = b""
            try:
                async with session.request(
                    method, self.base_url + path, json=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=max(0.1, deadline - self.clock())),
                ) as resp:
                    status = resp.status
                    served_by = resp.headers.get(SERVED_BY_HEADER)
                    payload = await resp.read()
                    if kind == "write" and 200 <= status < 300:
                        pitch_id = _created_id(payload)
                    retry_after_s = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = type(exc).__name__
            # A keyed write is safe to send again: a copy still running elsewhere answers
            # 409 until it finishes (or its dead owner's lease runs out), a finished one is
            # replayed. Without a key a retry could create the pitch twice.
            again = key is not None and (error is not None or status in _RETRIED_STATUSES)
            if status == 409 and b"idempotency_key_in_use" not in payload:
                again = False  # a conflict of the request itself: the same again would be too
            if not again or self.clock() + retry_after_s >= deadline:
                break
            await asyncio.sleep(retry_after_s)
        self.samples.append(Sample(started, self.clock(), kind, status, served_by, error,
                                   pitch_id))


def _retry_after(value: str | None) -> float:
    try:
        return min(_MAX_RETRY_PAUSE_S, max(_RETRY_PAUSE_S, float(value or "")))
    except ValueError:
        return _RETRY_PAUSE_S


def _created_id(payload: bytes) -> int | None:
    import json

    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if isinstance(body, dict):
        candidate = body.get("id", body.get("pitch", {}).get("id")
                            if isinstance(body.get("pitch"), dict) else None)
        if isinstance(candidate, int):
            return candidate
    return None
