"""Recent request statistics for /status and /api/health (rate, error rate, mean, p95).

Kept cheap on the hot path: one deque append per request. The p95 here is exact over the
retained sample of the last minute (up to `max_samples` requests), which is what a person
glancing at /status wants; gates never read it (they use the load generator's HDR histograms).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RuntimeStats", "RecentWindow"]


@dataclass(frozen=True)
class RecentWindow:
    requests: int
    errors: int
    requests_per_second: float
    error_rate: float
    mean_ms: float
    p95_ms: float | None


class RuntimeStats:
    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        window_s: float = 60.0,
        max_samples: int = 8192,
    ) -> None:
        self._clock = clock
        self.started_at = clock()
        self.started_wall = time.time()
        self.window_s = window_s
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=max_samples)
        self.total_requests = 0
        self.total_errors = 0

    def record(self, seconds: float, error: bool) -> None:
        self.record_at(self._clock(), seconds, error)

    def record_at(self, now: float, seconds: float, error: bool) -> None:
        """`record` with the caller's reading of this stats' clock (the request wrapper already
        has one: it saves a clock call per request)."""
        self._samples.append((now, seconds, error))
        self.total_requests += 1
        if error:
            self.total_errors += 1

    def uptime_s(self) -> float:
        return self._clock() - self.started_at

    def recent(self) -> RecentWindow:
        now = self._clock()
        horizon = now - self.window_s
        durations = [d for t, d, _ in self._samples if t >= horizon]
        errors = sum(1 for t, _, e in self._samples if t >= horizon and e)
        count = len(durations)
        # rate over the part of the window the service has been up for
        span = min(self.window_s, max(now - self.started_at, 1e-9))
        if count == 0:
            return RecentWindow(0, 0, 0.0, 0.0, 0.0, None)
        durations.sort()
        index = max(0, min(count - 1, int(round(0.95 * count + 0.5)) - 1))
        return RecentWindow(
            requests=count,
            errors=errors,
            requests_per_second=count / span,
            error_rate=errors / count,
            mean_ms=1000.0 * sum(durations) / count,
            p95_ms=1000.0 * durations[index],
        )
