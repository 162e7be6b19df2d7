"""Active health checks of every region (seed 003's HEALTH_CONFIG) plus passive ejection.

Every `interval_s` the edge probes each region's endpoints; a failed probe is retried
`retries` times at once (each attempt bounded by `timeout_s`) before it counts. The first
endpoint (/health) is liveness: when it fails the region is DOWN. When it answers but another
endpoint (/health/db, /health/services) fails, the region is DEGRADED: it is only used when
no fully healthy region is left. A refused connection on live traffic marks the region DOWN
at once (passive ejection); the next successful check brings it back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from pitchey.geo.regions import HealthConfig
from pitchey.geo.routing import Health

__all__ = ["ProbeResult", "RegionHealth", "HealthChecker", "WORKER_PID_HEADER"]

log = logging.getLogger("pitchey.geo.health")

WORKER_PID_HEADER = "X-Pitchey-Worker-Pid"


@dataclass(frozen=True)
class ProbeResult:
    endpoint: str
    ok: bool
    status: int | None
    latency_ms: float | None
    error: str | None = None
    attempts: int = 1


@dataclass
class RegionHealth:
    """What the edge knows about one region's health."""

    name: str
    health: Health = Health.UP
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    last_check_at: float | None = None
    last_change_at: float | None = None
    reason: str = "not checked yet"
    pid: int | None = None
    checks: int = 0
    ejections: int = 0
    # called after every change of `health` (the edge's routing caches listen)
    listeners: list[Callable[[RegionHealth], None]] = field(default_factory=list)

    def apply(self, results: Sequence[ProbeResult], now: float, pid: int | None) -> bool:
        """Take one round of probe results; returns whether the health changed."""
        self.probes = {r.endpoint: r for r in results}
        self.last_check_at = now
        self.checks += 1
        if pid is not None:
            self.pid = pid
        failed = [r for r in results if not r.ok]
        if results and not results[0].ok:
            return self._set(Health.DOWN, f"{results[0].endpoint}: {_why(results[0])}", now)
        if failed:
            return self._set(Health.DEGRADED,
                             "; ".join(f"{r.endpoint}: {_why(r)}" for r in failed), now)
        return self._set(Health.UP, "all checks pass", now)

    def eject(self, reason: str, now: float) -> bool:
        """Passive: live traffic could not connect."""
        if self.health is Health.DOWN:
            return False
        self.ejections += 1
        return self._set(Health.DOWN, reason, now)

    def _set(self, health: Health, reason: str, now: float) -> bool:
        self.reason = reason
        if health is self.health:
            return False
        self.health = health
        self.last_change_at = now
        for listener in self.listeners:
            listener(self)
        return True


def _why(result: ProbeResult) -> str:
    return result.error or f"HTTP {result.status}"


class HealthChecker:
    """The active check loop. `urls` maps region name to its base URL."""

    def __init__(
        self,
        config: HealthConfig,
        urls: Mapping[str, str],
        states: Mapping[str, RegionHealth],
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[RegionHealth], None] | None = None,
    ) -> None:
        self._config = config
        self._urls = dict(urls)
        self._states = states
        self._session = session
        self._clock = clock
        self._on_change = on_change
        self.rounds = 0

    async def run_forever(self) -> None:
        while True:
            started = self._clock()
            await self.check_all()
            elapsed = self._clock() - started
            await asyncio.sleep(max(0.0, self._config.interval_s - elapsed))

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(name) for name in self._urls))
        self.rounds += 1

    async def check(self, name: str) -> None:
        pid_seen: list[int] = []
        results = await asyncio.gather(
            *(self._probe(self._urls[name], endpoint, pid_seen)
              for endpoint in self._config.endpoints)
        )
        state = self._states[name]
        before = state.health
        if state.apply(results, self._clock(), pid_seen[0] if pid_seen else None):
            log.warning("region %s: %s -> %s (%s)", name, before.value, state.health.value,
                        state.reason)
            if self._on_change is not None:
                self._on_change(state)

    async def _probe(self, base: str, endpoint: str, pid_seen: list[int]) -> ProbeResult:
        attempts = 0
        result: ProbeResult | None = None
        while attempts <= self._config.retries:
            attempts += 1
            result = await self._attempt(base, endpoint, pid_seen, attempts)
            if result.ok:
                break
        assert result is not None
        return result

    async def _attempt(
        self, base: str, endpoint: str, pid_seen: list[int], attempts: int
    ) -> ProbeResult:
        timeout = aiohttp.ClientTimeout(total=self._config.timeout_s)
        started = time.perf_counter()
        try:
            async with self._session.get(base + endpoint, timeout=timeout) as response:
                await response.read()
                pid = response.headers.get(WORKER_PID_HEADER)
                if pid and pid.isdigit():
                    pid_seen.append(int(pid))
                latency_ms = (time.perf_counter() - started) * 1000.0
                return ProbeResult(endpoint, 200 <= response.status < 300, response.status,
                                   round(latency_ms, 2), attempts=attempts)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
            return ProbeResult(endpoint, False, None, None, error=error, attempts=attempts)
