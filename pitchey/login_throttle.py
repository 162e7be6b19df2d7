"""Login throttling: a temporary lockout per account and per client address.

A key (an account, or a client address) may fail `free_failures` times; after that it is
locked for `base_delay_s`, and each further failure doubles the lock up to `max_delay_s`. A
counter is forgotten `window_s` after its last failure, and a successful login resets its
account's counter, so a lock always ends: a victim can sign in once it passes. Attempts
refused while locked are not counted (hammering a locked account does not extend its lock).

Order of a login (`pitchey.auth.Auth.login`):

1. `wait()` on both keys: when either is locked the answer is 429 with `Retry-After`,
   before the password is looked at (no argon2 CPU spent, no hint whether it was right);
2. the password is verified;
3. a wrong password is recorded by `fail()`, which checks and counts in one atomic step: an
   attempt already in flight when parallel failures locked the key is answered 429, not 401,
   so a burst of parallel guesses gets no more verdicts than a sequence would;
4. a right one checks `wait()` again (the same rule, so a right guess late in a burst is a
   429 too) and then `reset()`s the account's counter.

The client address's counter is never reset by a success (an attacker holding one valid account
could otherwise clear it between guesses); it counts failures only, so a shared address whose
users sign in correctly is not slowed.

State lives in the process (`MemoryAttemptStore`), or in Redis when the service's cache is
Redis (`RedisAttemptStore`, same connection and key prefix), so every instance sharing that
Redis sees one counter. Times come from the injected clock, never Redis' own, so tests move
time instead of sleeping. Redis failing makes the throttle fail open, like the rate limiter:
argon2's cost still bounds guessing, and an outage of the counter must not become one of login.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pitchey.cache import RedisCache, ThrottledWarning, redis_failures

if TYPE_CHECKING:
    from pitchey.cache import Cache

__all__ = [
    "ACCOUNT_POLICY",
    "CLIENT_POLICY",
    "AttemptStore",
    "LoginThrottle",
    "MemoryAttemptStore",
    "Policy",
    "RedisAttemptStore",
    "open_attempt_store",
]

log = logging.getLogger("pitchey.auth")


@dataclass(frozen=True)
class Policy:
    free_failures: int
    base_delay_s: float
    max_delay_s: float
    window_s: float  # a counter is forgotten this long after its last failure

    def lock_s(self, failures: int) -> float:
        """How long the key is locked after its `failures`-th failure."""
        if failures < self.free_failures:
            return 0.0
        exponent = min(failures - self.free_failures, 60)  # 2**60 s is far past any cap
        return float(min(self.max_delay_s, self.base_delay_s * 2.0**exponent))


# 5 wrong passwords, then 1 s, 2 s, 4 s, ... at most 15 min between guesses for one account,
# until an hour passes without a failure. The window must outlast the cap, or a counter would
# be forgotten as its longest lock ends and the doubling would start over.
ACCOUNT_POLICY = Policy(free_failures=5, base_delay_s=1.0, max_delay_s=900.0, window_s=3600.0)
# One address guessing across many accounts (credential stuffing); looser, since offices and
# carrier NATs share an address.
CLIENT_POLICY = Policy(free_failures=20, base_delay_s=1.0, max_delay_s=900.0, window_s=3600.0)


class AttemptStore(Protocol):
    async def wait(self, key: str, policy: Policy, now: float) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        ...

    async def fail(self, key: str, policy: Policy, now: float) -> float:
        """Count a failure of `key` at `now` and answer 0, in one atomic step with the check:
        when `key` is locked meanwhile (by parallel attempts) nothing is counted and the
        answer is the seconds left, as from `wait`."""
        ...

    async def reset(self, key: str) -> None: ...


def _wait(count: int, last: float, policy: Policy, now: float) -> float:
    if count == 0 or now - last >= policy.window_s:
        return 0.0
    return max(0.0, last + policy.lock_s(count) - now)


class MemoryAttemptStore:
    """Counters of this process: no awaits inside, so each call is atomic on the event loop."""

    def __init__(self, max_keys: int = 100_000) -> None:
        # key -> (failures, time of the last one), least recently failed first
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._max_keys = max_keys

    async def wait(self, key: str, policy: Policy, now: float) -> float:
        count, last = self._entries.get(key, (0, 0.0))
        return _wait(count, last, policy, now)

    async def fail(self, key: str, policy: Policy, now: float) -> float:
        wait = await self.wait(key, policy, now)
        if wait > 0:
            return wait
        count, last = self._entries.pop(key, (0, 0.0))
        count = 1 if now - last >= policy.window_s else count + 1
        self._entries[key] = (count, now)
        # bounded memory: the oldest counters go first (spraying addresses costs the sprayer
        # the oldest, least relevant state, never the recent locks)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
        return 0.0

    async def reset(self, key: str) -> None:
        self._entries.pop(key, None)


# `MemoryAttemptStore.fail` as one atomic step, on the caller's clock (ARGV[1]); the answer is
# a string because Redis truncates a Lua number to an integer.
_FAIL_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local free = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if count == 0 or now - last >= window then count = 0 end
if count >= free then
  local wait = last + math.min(cap, base * 2 ^ math.min(count - free, 60)) - now
  if wait > 0 then return tostring(wait) end
end
redis.call('HSET', KEYS[1], 'count', count + 1, 'last', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return '0'
"""


class RedisAttemptStore:
    """Counters in the cache's Redis, under its key prefix: shared by every instance."""

    def __init__(self, cache: RedisCache) -> None:
        # The cache's own connection and prefix: no second pool to open and close, and
        # deployments (and tests) that separate their caches by prefix separate these too.
        self._redis: Any = cache._redis
        self._prefix = cache._prefix + "login:"
        self._fail = self._redis.register_script(_FAIL_SCRIPT)
        self._errors = redis_failures()
        self._warning = ThrottledWarning(log)

    def _degraded(self, exc: BaseException) -> None:
        self._warning.warn(f"redis login throttle unavailable, login allowed: "
                           f"{type(exc).__name__}: {exc}")

    async def wait(self, key: str, policy: Policy, now: float) -> float:
        try:
            count, last = await self._redis.hmget(self._prefix + key, "count", "last")
        except self._errors as exc:
            self._degraded(exc)
            return 0.0
        if count is None or last is None:
            return 0.0
        return _wait(int(count), float(last), policy, now)

    async def fail(self, key: str, policy: Policy, now: float) -> float:
        # kept until its lock and its window have both passed (Redis' clock, as a bound only)
        ttl_ms = math.ceil((policy.window_s + policy.max_delay_s) * 1000)
        args: list[str | int] = [
            repr(now), repr(policy.window_s), policy.free_failures,
            repr(policy.base_delay_s), repr(policy.max_delay_s), ttl_ms,
        ]
        try:
            wait = await self._fail(keys=[self._prefix + key], args=args)
        except self._errors as exc:
            self._degraded(exc)
            return 0.0
        return float(wait)

    async def reset(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except self._errors as exc:
            self._degraded(exc)


def _redis_beneath(cache: object) -> RedisCache | None:
    """The RedisCache `cache` is or wraps: the geo worker's RegionalCache keeps the cache it
    adds regional generations to as `_inner`, and its workers must share one counter too."""
    for _ in range(4):  # wrappers do not nest deeper; a cycle must not hang startup
        if isinstance(cache, RedisCache):
            return cache
        cache = getattr(cache, "_inner", None)
        if cache is None:
            return None
    return None


def open_attempt_store(cache: Cache) -> AttemptStore:
    redis_cache = _redis_beneath(cache)
    return RedisAttemptStore(redis_cache) if redis_cache is not None else MemoryAttemptStore()


def _account_key(email: str) -> str:
    # hashed: a dump of the counters does not list who was targeted
    return "acct:" + hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]


def _client_key(client: str) -> str:
    return "ip:" + client


class LoginThrottle:
    """The per-account and per-address lockouts of login (see the module docstring)."""

    def __init__(
        self,
        store: AttemptStore,
        clock: Callable[[], float],
        account: Policy = ACCOUNT_POLICY,
        client: Policy = CLIENT_POLICY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.account = account
        self.client = client

    async def retry_after(self, email: str, client: str) -> int:
        """Whole seconds the attempt must wait (the Retry-After value); 0 to go ahead."""
        now = self.clock()
        wait = max(await self.store.wait(_account_key(email), self.account, now),
                   await self.store.wait(_client_key(client), self.client, now))
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, email: str, client: str) -> int:
        """Count a wrong password: 0, or the Retry-After when parallel attempts locked the
        account or the address while this one was verified (then it is not counted)."""
        now = self.clock()
        wait = await self.store.fail(_account_key(email), self.account, now)
        if wait <= 0:
            wait = await self.store.fail(_client_key(client), self.client, now)
        return math.ceil(wait) if wait > 0 else 0

    async def succeeded(self, email: str) -> None:
        await self.store.reset(_account_key(email))
