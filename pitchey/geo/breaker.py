"""A circuit breaker per region (seed 003): CLOSED counts outcomes in a rolling window and
opens when at least `volume_threshold` calls saw `error_threshold_pct` failures; OPEN refuses
calls for `sleep_window_s`; HALF_OPEN lets a few trial calls through and closes after
`success_threshold` successes, or opens again on the first failure. The clock is injected.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable

from pitchey.geo.regions import BreakerConfig

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.IntEnum):
    """Values are what `pitchey_region_breaker_state` exports."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._listeners: list[Callable[[BreakerState], None]] = []
        if on_transition is not None:
            self._listeners.append(on_transition)
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        # one bucket per second: [second, calls, failures], with running totals
        self._buckets: deque[list[int]] = deque()
        self._calls = 0
        self._failures = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self.transitions = 0

    @property
    def state(self) -> BreakerState:
        if (self._state is BreakerState.OPEN
                and self._clock() - self._opened_at >= self._config.sleep_window_s):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def closed(self) -> bool:
        """CLOSED (a state time alone never leaves), cheaper than reading `state`."""
        return self._state is BreakerState.CLOSED

    def allow(self) -> bool:
        """Whether a call may go to this region now. In HALF_OPEN this takes a trial slot,
        which the matching `record` gives back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            if self._trials_in_flight < self._config.success_threshold:
                self._trials_in_flight += 1
                return True
        return False

    def would_allow(self) -> bool:
        """`allow` without taking a trial slot (for ranking candidates)."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            return self._trials_in_flight < self._config.success_threshold
        return state is BreakerState.CLOSED

    def record(self, success: bool) -> None:
        """The outcome of a call `allow` let through."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)
            if not success:
                self._open()
                return
            self._trial_successes += 1
            if self._trial_successes >= self._config.success_threshold:
                self._move(BreakerState.CLOSED)
            return
        if state is BreakerState.OPEN:
            return  # a call from before the breaker opened; it changes nothing
        self._count(success)
        calls = self._calls
        if (calls >= self._config.volume_threshold
                and 100.0 * self._failures >= self._config.error_threshold_pct * calls):
            self._open()

    def release(self) -> None:
        """A call `allow` let through that never ran (e.g. it was shed): give the slot back."""
        if self._state is BreakerState.HALF_OPEN:
            self._trials_in_flight = max(0, self._trials_in_flight - 1)

    def window(self) -> tuple[int, int]:
        """(calls, failures) in the rolling window."""
        self._expire(self._clock())
        return self._calls, self._failures

    def _count(self, success: bool) -> None:
        now = self._clock()
        second = math.floor(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
        else:  # a new second: the only time old buckets can have left the window
            self._expire(now)
            bucket = [second, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        self._calls += 1
        if not success:
            bucket[2] += 1
            self._failures += 1

    def _expire(self, now: float) -> None:
        horizon = now - self._config.rolling_window_s
        buckets = self._buckets
        while buckets and buckets[0][0] + 1 <= horizon:
            _, calls, failures = buckets.popleft()
            self._calls -= calls
            self._failures -= failures

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._buckets.clear()
        self._calls = self._failures = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self.transitions += 1
        for listener in self._listeners:
            listener(state)

    def add_listener(self, listener: Callable[[BreakerState], None]) -> None:
        """Also call `listener` with every new state."""
        self._listeners.append(listener)
