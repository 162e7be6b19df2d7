"""What one load-generator process knows during a run (no Locust import: testable alone).

`WorkerRuntime` holds the worker's region, the scenario, the latency recorder, the
open-model arrivals and the generator probes; `loadtests.hooks` creates it, the user classes
read it through `runtime_of(environment)`, and each report to the master is built by
`report()`.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable
from typing import Any

from loadtests.recording import WorkerRecorder
from loadtests.scenario import Scenario
from loadtests.selfcheck import LagProbe, p95
from loadtests.shapes import ArrivalSchedule, rate_segments

__all__ = [
    "REGION_ENV",
    "OpenArrivals",
    "WorkerRuntime",
    "generator_rows",
    "runtime_of",
    "seeded_accounts",
    "worker_region",
]

REGION_ENV = "PITCHEY_LOAD_REGION"
SEED_EMAIL_DOMAIN = "seed.pitchey.test"
_ATTRIBUTE = "pitchey_runtime"


def worker_region(environ: dict[str, str] | None = None) -> str:
    """The region a worker loads from: set per worker Deployment / process."""
    env = os.environ if environ is None else environ
    return env.get(REGION_ENV, "").strip() or "local"


class OpenArrivals:
    """One worker's arrival tickets: intended epoch start times, and how late they began."""

    def __init__(self, schedule: ArrivalSchedule, start_epoch: float, tolerance_ms: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.schedule = schedule
        self.clock = clock
        self.start_epoch = start_epoch
        self.tolerance_ms = tolerance_ms
        self._started = 0
        self._late = 0
        self._max_late_ms = 0.0
        self._no_free_user = 0  # arrivals already late when a user was free to take them
        # second of the intended start -> [started, late] (a stepped run judges each step's)
        self._seconds: dict[int, list[int]] = {}

    def take(self) -> float | None:
        offset = self.schedule.next()
        if offset is None:
            return None
        intended = self.start_epoch + offset
        if (self.clock() - intended) * 1000.0 > self.tolerance_ms:
            self._no_free_user += 1  # it was due while every user of the pool was busy
        return intended

    def started(self, lateness_ms: float) -> None:
        self._started += 1
        late = lateness_ms > self.tolerance_ms
        self._late += late
        self._max_late_ms = max(self._max_late_ms, lateness_ms)
        intended = int(self.clock() - lateness_ms / 1000.0)
        counts = self._seconds.get(intended)
        if counts is None:
            counts = self._seconds[intended] = [0, 0]
        counts[0] += 1
        counts[1] += late

    def counters(self) -> dict[str, Any]:
        """Counts since the previous call (the master adds them up), plus the plan."""
        counters: dict[str, Any] = {
            "started": self._started, "late": self._late, "max_late_ms": self._max_late_ms,
            "planned": self.schedule.total, "no_free_user": self._no_free_user,
            "seconds": [[t, started, late] for t, (started, late) in
                        sorted(self._seconds.items())],
        }
        self._started = self._late = self._no_free_user = 0
        self._seconds = {}
        return counters


class WorkerRuntime:
    def __init__(self, region: str, clock: Callable[[], float] = time.time) -> None:
        self.region = region
        self.clock = clock
        self.scenario: Scenario | None = None
        self.recorder = WorkerRecorder(region)
        self.arrivals: OpenArrivals | None = None
        self._plan: tuple[float, float] | None = None
        self.samplers_started = False
        self.probe = LagProbe()
        self._generator: list[dict[str, float]] = []
        self._last_sample_t: int | None = None  # the second of the last generator row
        # requests begun (PortalUser.context(), which Locust calls as each request starts);
        # those not completed when the users stop were cut by the end of the run
        self.requests_started = 0
        self._lag_values: list[tuple[float, list[float]]] = []
        self._unreachable_reported = 0
        self._accounts: dict[str, itertools.cycle[str]] = {}

    # configuration -----------------------------------------------------------------------------
    def configure(self, scenario: Scenario) -> None:
        self.scenario = scenario
        if self._plan is not None:
            self.plan_arrivals(*self._plan)

    def plan_arrivals(self, share: float, start_epoch: float) -> None:
        """Open model: this worker's `share` of the arrivals, starting at `start_epoch`.
        The master's plan may arrive before the scenario does; it is applied then."""
        self._plan = (share, start_epoch)
        model = self.scenario.open_model if self.scenario else None
        if model is None or share <= 0:
            self.arrivals = None
            return
        schedule = ArrivalSchedule(rate_segments(model), share)
        self.arrivals = OpenArrivals(schedule, start_epoch, model.late_tolerance, self.clock)

    def think_time(self, portal: str) -> tuple[float, float]:
        if self.scenario is None:
            return (1.0, 1.0)
        think = self.scenario.think_time_for(portal)
        return (think.min, think.max)

    def account(self, portal: str) -> str:
        """The login a new user of `portal` uses: the portal's demo account and the users
        `pitchey seed --users N` generated (<portal><n>@seed.pitchey.test), in turn."""
        accounts = self._accounts.get(portal)
        if accounts is None:
            generated = self.scenario.embedded.seed.users if self.scenario else 0
            emails = seeded_accounts(portal, generated)
            random.shuffle(emails)  # each worker its own order, so logins spread
            accounts = self._accounts[portal] = itertools.cycle(emails)
        return next(accounts)

    # recording -------------------------------------------------------------------------------
    def on_request(self, request_type: str, name: str, response_time: float,
                   response: Any = None, context: dict[str, Any] | None = None,
                   exception: BaseException | None = None, **_: Any) -> None:
        """Locust's `request` event (registered as the listener itself: no wrapper frame on
        the request path): one latency into this second's cell."""
        if context:
            user_class = context.get("user_class") or "unknown"
            lateness = context.get("lateness_ms")
            interval = context.get("interval_ms")  # closed model, constant pacing
        else:
            user_class, lateness, interval = "unknown", None, None
        failed = exception is not None
        if failed and not getattr(response, "status_code", 0):
            self.recorder.unreachable += 1
        self.recorder.record(self.clock(), f"{request_type} {name}", user_class,
                             response_time, failed,
                             None if lateness is None else response_time + lateness,
                             interval)

    def sample_generator(self, cpu_percent: float) -> None:
        """Once a second: CPU since the last sample and this second's loop-lag probes.

        Every second gets a row: when the sampler itself was held up (a stalled event loop),
        the seconds it missed get this sample's figures (the CPU rate and lag it measured
        over them), and a second sampled twice keeps one row (the higher lag)."""
        lags = self.probe.take()
        t = int(self.clock())
        self._lag_values.append((float(t), lags))
        rows = generator_rows(self._last_sample_t, t, cpu_percent, p95(lags))
        if not rows and self._generator and self._generator[-1]["t"] == float(t):
            last = self._generator[-1]
            last["cpu_percent"] = (last["cpu_percent"] + cpu_percent) / 2.0
            last["lag_ms"] = max(last["lag_ms"], p95(lags))
        self._generator.extend(rows)
        self._last_sample_t = t if self._last_sample_t is None else max(self._last_sample_t, t)

    @property
    def in_flight(self) -> int:
        """Requests begun and not completed (cut, once the users were stopped)."""
        return max(0, self.requests_started - self.recorder.requests)

    def report(self, final: bool = False) -> dict[str, Any]:
        """Everything new since the previous report (for the master)."""
        drained = self.recorder.drain(None if final else self.clock())
        unreachable = self.recorder.unreachable - self._unreachable_reported
        self._unreachable_reported = self.recorder.unreachable
        data: dict[str, Any] = {
            "region": self.region, **drained, "gen": self._generator,
            "lag": self._lag_values, "unreachable": unreachable, "final": final,
            "requests_started": self.requests_started,
            "requests_completed": self.recorder.requests, "in_flight": self.in_flight,
        }
        self._generator, self._lag_values = [], []
        if self.arrivals is not None:
            data["open"] = self.arrivals.counters()
        return data


def generator_rows(previous: int | None, t: int, cpu_percent: float,
                   lag_ms: float) -> list[dict[str, float]]:
    """The generator rows one sample taken in second `t` stands for: every second after the
    previous sample's (`previous`) up to `t`, each with the sample's figures; none when `t` was
    sampled already (or is older)."""
    first = t if previous is None else previous + 1
    return [{"t": float(second), "cpu_percent": cpu_percent, "lag_ms": lag_ms}
            for second in range(first, t + 1)]


def seeded_accounts(portal: str, generated_users: int) -> list[str]:
    """Emails `pitchey seed` creates for `portal` (demo account first); the seed deals its
    generated users out to creator, investor, production in turn."""
    demo = {"creator": "alex.creator@demo.com", "investor": "sarah.investor@demo.com",
            "production": "stellar.production@demo.com"}
    order = ("creator", "investor", "production")
    count = len(range(order.index(portal), generated_users, len(order)))
    return [demo[portal]] + [f"{portal}{n}@{SEED_EMAIL_DOMAIN}" for n in range(1, count + 1)]


def runtime_of(environment: Any) -> WorkerRuntime:
    runtime = getattr(environment, _ATTRIBUTE, None)
    if runtime is None:
        runtime = WorkerRuntime(worker_region())
        setattr(environment, _ATTRIBUTE, runtime)
    assert isinstance(runtime, WorkerRuntime)
    return runtime
