"""The Locust LoadTestShape that plays a scenario's plan and ends the run without losing data.

While the plan runs, `tick()` returns the plan's (users, spawn rate). When the plan is over
(or a stop was requested: Ctrl-C, abort-on-fail) it first stops every user, then asks the
workers for their last measurements and waits for them (bounded), and only then returns
None, which ends a headless Locust run. Locust's own end of run would kill the master before
the workers' final reports arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from locust import LoadTestShape

from loadtests.shapes import LoadPlan, Segment

__all__ = ["ScenarioShape"]

FINAL_REPORT_TIMEOUT_S = 10.0


class ScenarioShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.plan: LoadPlan | None = None
        self.stop_reason: str | None = None
        self.stopped_at: float | None = None  # epoch when the users were told to stop
        self._label: str | None = None
        self._phase = "run"
        self._flush_sent_at = 0.0
        self._on_stage: Callable[[Segment], None] = lambda segment: None
        self._request_finals: Callable[[], None] = lambda: None
        self._finals_done: Callable[[], bool] = lambda: True
        self._clock: Callable[[], float] = time.monotonic

    def configure(self, plan: LoadPlan, *, on_stage: Callable[[Segment], None],
                  request_finals: Callable[[], None], finals_done: Callable[[], bool]) -> None:
        self.plan = plan
        self._on_stage = on_stage
        self._request_finals = request_finals
        self._finals_done = finals_done

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def elapsed_s(self) -> float:
        return float(self.get_run_time())  # type: ignore[no-untyped-call]

    @property
    def ending(self) -> bool:
        return self._phase != "run"

    def tick(self) -> tuple[int, float] | None:
        if self.plan is None:
            return None
        if self._phase == "run":
            segment = self.plan.at(self.elapsed_s) if self.stop_reason is None else None
            if segment is not None:
                if segment.label != self._label:
                    self._label = segment.label
                    self._on_stage(segment)
                return (segment.users, segment.spawn_rate)
            self.request_stop("completed")
            self.stopped_at = time.time()  # the end of the load (the run's span ends here)
            self._phase = "stopping"
            return (0, float(max(1000, self.plan.max_users)))
        if self._phase == "stopping":
            self._phase = "flushing"
            self._flush_sent_at = self._clock()
            self._request_finals()
            return (0, float(max(1000, self.plan.max_users)))
        waited = self._clock() - self._flush_sent_at
        if self._finals_done() or waited > FINAL_REPORT_TIMEOUT_S:
            return None
        return (0, float(max(1000, self.plan.max_users)))
