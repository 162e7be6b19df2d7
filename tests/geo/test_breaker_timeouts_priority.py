"""The breaker, the adaptive timeout and the priority shedding, driven by an injected clock."""

from __future__ import annotations

import pytest

from pitchey.geo.breaker import BreakerState, CircuitBreaker
from pitchey.geo.priority import PriorityClassifier, admits
from pitchey.geo.regions import BreakerConfig, PriorityConfig, TimeoutConfig
from pitchey.geo.timeouts import AdaptiveTimeout


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(breaker: CircuitBreaker, successes: int, failures: int) -> None:
    for _ in range(successes):
        assert breaker.allow()
        breaker.record(True)
    for _ in range(failures):
        assert breaker.allow()
        breaker.record(False)


def test_opens_at_half_failures_over_the_volume_threshold() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(), clock)
    record(breaker, successes=10, failures=9)  # 19 calls: below the volume threshold
    assert breaker.state is BreakerState.CLOSED
    record(breaker, successes=0, failures=1)  # 20 calls, 10 failed: 50%
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_stays_closed_below_the_error_threshold() -> None:
    breaker = CircuitBreaker(BreakerConfig(), Clock())
    record(breaker, successes=60, failures=59)
    assert breaker.state is BreakerState.CLOSED


def test_rolling_window_forgets_old_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(rolling_window_s=10), clock)
    record(breaker, successes=0, failures=15)
    clock.now += 11
    record(breaker, successes=10, failures=5)  # only these 15 count now
    assert breaker.state is BreakerState.CLOSED
    assert breaker.window() == (15, 5)


def test_half_open_after_the_sleep_window_then_closes_after_five_successes() -> None:
    clock = Clock()
    transitions: list[BreakerState] = []
    breaker = CircuitBreaker(BreakerConfig(), clock, transitions.append)
    record(breaker, successes=0, failures=20)
    clock.now += 29.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(5):
        assert breaker.allow()
    assert not breaker.allow()  # trial slots are limited to the success threshold
    for _ in range(4):
        breaker.record(True)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED
    assert transitions == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failure_while_half_open_opens_again_for_a_new_sleep_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(sleep_window_s=5), clock)
    record(breaker, successes=0, failures=20)
    clock.now += 5
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    assert breaker.state is BreakerState.OPEN


def test_released_trial_slots_are_given_back() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(sleep_window_s=1, success_threshold=1), clock)
    record(breaker, successes=0, failures=20)
    clock.now += 1
    assert breaker.allow()
    assert not breaker.would_allow()
    breaker.release()
    assert breaker.would_allow()


def test_adaptive_timeout_is_twice_p95_within_bounds() -> None:
    clock = Clock()
    config = TimeoutConfig(initial_s=30, min_s=5, max_s=60, min_samples=20)
    timeout = AdaptiveTimeout(config, clock)
    assert timeout.current_s() == 30  # too few samples: the initial value
    for n in range(100):
        timeout.observe(4.0 if n < 95 else 20.0)
    clock.now += 1
    assert timeout.percentile_s() == 4.0
    assert timeout.current_s() == 8.0
    for _ in range(100):
        timeout.observe(50.0)
    clock.now += 1
    assert timeout.current_s() == 60  # 2 x 50 s, capped
    clock.now += 61  # every sample is older than the window
    assert timeout.current_s() == 30


def test_adaptive_timeout_never_goes_below_the_minimum() -> None:
    clock = Clock()
    timeout = AdaptiveTimeout(TimeoutConfig(), clock)
    for _ in range(50):
        timeout.observe(0.002)
    clock.now += 1
    assert timeout.current_s() == 5


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/api/auth/creator/login", {}, "authentication"),
        ("/api/pitches", {}, "api"),
        ("/api/analytics/events", {}, "analytics"),
        ("/static/app.js", {}, "static"),
        ("/ws/notifications", {}, "websocket"),
        ("/anything", {"Upgrade": "websocket"}, "websocket"),
        ("/health", {}, "api"),
    ],
)
def test_priority_classes(path: str, headers: dict[str, str], expected: str) -> None:
    assert PriorityClassifier(PriorityConfig()).classify(path, headers).name == expected


def test_the_lowest_priority_is_shed_first() -> None:
    classes = {c.name: c.priority for c in PriorityConfig().classes}
    order = []
    for in_flight in range(101):
        for name, priority in classes.items():
            if not admits(priority, in_flight, 100) and name not in order:
                order.append(name)
    assert order == ["analytics", "static", "websocket", "api", "authentication"]
    assert admits(classes["authentication"], 99, 100)
    assert not admits(classes["authentication"], 100, 100)
