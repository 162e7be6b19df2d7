"""Adaptive upstream timeouts (seed 003): `multiplier` x the observed percentile of recent
call durations, bounded by [min_s, max_s]; `initial_s` until enough calls were seen."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from pitchey.geo.regions import TimeoutConfig

__all__ = ["AdaptiveTimeout"]

# Recomputing the percentile sorts the window; doing it at most this often keeps the hot
# path at one deque append per call.
_RECOMPUTE_EVERY_S = 0.5
_MAX_SAMPLES = 4096


class AdaptiveTimeout:
    def __init__(
        self, config: TimeoutConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=_MAX_SAMPLES)
        self._percentile_s: float | None = None
        self._computed_at = -math.inf

    def observe(self, seconds: float) -> None:
        self._samples.append((self._clock(), seconds))

    def percentile_s(self) -> float | None:
        """The configured percentile of the durations seen within `window_s`, or None."""
        now = self._clock()
        if now - self._computed_at >= _RECOMPUTE_EVERY_S:
            self._computed_at = now
            self._percentile_s = self._compute(now)
        return self._percentile_s

    def current_s(self) -> float:
        """The timeout the next call gets."""
        observed = self.percentile_s()
        config = self._config
        if observed is None:
            return min(config.max_s, max(config.min_s, config.initial_s))
        return min(config.max_s, max(config.min_s, config.multiplier * observed))

    def _compute(self, now: float) -> float | None:
        horizon = now - self._config.window_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        if len(self._samples) < self._config.min_samples:
            return None
        durations = sorted(d for _, d in self._samples)
        rank = math.ceil(self._config.percentile / 100.0 * len(durations))
        return durations[max(0, min(len(durations) - 1, rank - 1))]
