"""The breakpoint of a stepped open-model run: each step judged on its hold, the run stopped at
the first step that breaks.

A steps arrival (`open_model: {arrival: steps}`) offers constant rates in turn. Once every
second of a step's hold (the step after its settle) has been merged on the master,
`measure_step` reads the hold: p95 from the merged HDR histograms (corrected or service time),
error rate, the generator's CPU and loop lag, the share of late starts; `judge_step` says
whether the step held, and if not why:

- "generator": a worker's CPU at or above the self-check's limit for half the hold (or the
  self-check's sustain time, if shorter), its loop lag p95 above the limit, or the arrivals
  starting late while the service's own p95 held: the generator, not the platform, was the
  limit (the run is then invalid, as the self-check would say);
- "errors": the error rate above the limit (1 % by default);
- "p95": the p95 above the target (the product's, unless the scenario gives one).

`StepWatch` is the master's bookkeeping around those two pure functions: it takes the merged
seconds, generator samples, loop-lag probes and per-second arrival counts, judges each step
when its data is complete (or a grace time after its end) and says when to stop. Pure: no
Locust, no clocks of its own (callers pass epoch seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from collectors.hdr import Histogram
from collectors.targets import PRODUCT_TARGETS
from loadtests.scenario import OpenModel, SelfCheck
from loadtests.selfcheck import GeneratorSample, longest_run_above
from loadtests.shapes import PlannedStep, step_plan

__all__ = [
    "JUDGE_GRACE_S",
    "SecondSample",
    "StepFigures",
    "StepLimits",
    "StepVerdict",
    "StepWatch",
    "breakpoint_event",
    "breakpoint_line",
    "judge_step",
    "measure_step",
    "step_event",
    "step_line",
]

Reason = Literal["p95", "errors", "generator", "completed"]
# a step is judged with what arrived this long after its end, even if a worker is silent
JUDGE_GRACE_S = 10.0


@dataclass(frozen=True)
class StepLimits:
    p95_ms: float = PRODUCT_TARGETS.p95_ms
    latency: Literal["corrected", "service"] = "corrected"
    error_rate: float = 0.01
    late_fraction: float = 0.05
    cpu_percent: float = 90.0
    cpu_sustain_s: float = 10.0
    lag_p95_ms: float = 50.0

    @classmethod
    def of(cls, model: OpenModel, self_check: SelfCheck) -> StepLimits:
        limits = model.breakpoint
        return cls(
            p95_ms=PRODUCT_TARGETS.p95_ms if limits is None or limits.p95 is None
            else limits.p95,
            latency=limits.latency if limits else "corrected",
            error_rate=limits.errors if limits else 0.01,
            late_fraction=limits.late if limits else 0.05,
            cpu_percent=self_check.cpu_percent,
            cpu_sustain_s=self_check.cpu_sustain,
            lag_p95_ms=self_check.lag_p95,
        )


@dataclass(frozen=True)
class SecondSample:
    """One merged second of the whole load: counts and the service and corrected times."""

    t: int
    requests: int
    failures: int
    service: Histogram
    corrected: Histogram | None = None


@dataclass(frozen=True)
class StepFigures:
    """What one step's hold measured (epoch seconds `start`..`end`)."""

    index: int
    rate: float
    start: float
    end: float
    seconds: int  # whole seconds of the hold with data
    requests: int
    failures: int
    throughput_rps: float
    p95_ms: float  # of the judged latency (corrected or service)
    service_p95_ms: float
    arrivals: int
    late: int
    cpu_busy_s: float  # the longest stretch a worker spent at or above the CPU limit
    lag_p95_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def late_fraction(self) -> float:
        return self.late / self.arrivals if self.arrivals else 0.0

    @property
    def hold_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class StepVerdict:
    figures: StepFigures
    reason: Reason | None  # None: the step held
    detail: str

    @property
    def held(self) -> bool:
        return self.reason is None


def _hold_seconds(start: float, end: float) -> range:
    """Whole seconds [t, t + 1) inside the hold."""
    return range(math.ceil(start), math.floor(end))


def measure_step(
    step: PlannedStep,
    start: float,
    end: float,
    seconds: Iterable[SecondSample],
    generator: Iterable[GeneratorSample],
    lag_ms: Iterable[float],
    arrivals: tuple[int, int],
    *,
    latency: Literal["corrected", "service"] = "corrected",
    cpu_limit: float = 90.0,
) -> StepFigures:
    """The hold from `start` to `end` (epoch): `seconds` and `generator` may hold others (only
    the hold's whole seconds count); `lag_ms` and `arrivals` (started, late) are the hold's."""
    inside = set(_hold_seconds(start, end))
    own = [s for s in seconds if s.t in inside]
    service = Histogram.merge(s.service for s in own)
    corrected = [s.corrected for s in own if s.corrected is not None]
    judged = Histogram.merge(corrected) if latency == "corrected" and corrected else service
    requests = sum(s.requests for s in own)
    by_worker: dict[str, list[GeneratorSample]] = {}
    for sample in generator:
        if int(sample.t) in inside:
            by_worker.setdefault(sample.worker, []).append(sample)
    busy = max((longest_run_above(own_samples, cpu_limit) for own_samples in by_worker.values()),
               default=0.0)
    lag = Histogram.from_values_ms(list(lag_ms))
    span = len(inside)
    return StepFigures(
        index=step.index, rate=step.rate, start=start, end=end, seconds=len(own),
        requests=requests, failures=sum(s.failures for s in own),
        throughput_rps=requests / span if span else 0.0,
        p95_ms=judged.quantile(0.95) if judged.total else 0.0,
        service_p95_ms=service.quantile(0.95) if service.total else 0.0,
        arrivals=arrivals[0], late=arrivals[1], cpu_busy_s=busy,
        lag_p95_ms=lag.quantile(0.95) if lag.total else 0.0,
    )


def judge_step(figures: StepFigures, limits: StepLimits) -> StepVerdict:
    """Whether the step held; if not, the reason and a sentence for the console."""
    at = f"at {_rate(figures.rate)}/s"
    busy_limit = min(limits.cpu_sustain_s, max(1.0, figures.hold_s / 2))
    if figures.cpu_busy_s >= busy_limit:
        return StepVerdict(figures, "generator", (
            f"load generator CPU at or above {limits.cpu_percent:g}% for "
            f"{figures.cpu_busy_s:.0f} s {at}: the generator, not the platform, was the limit"))
    if figures.lag_p95_ms > limits.lag_p95_ms:
        return StepVerdict(figures, "generator", (
            f"load generator loop lag p95 {figures.lag_p95_ms:.0f} ms > "
            f"{limits.lag_p95_ms:g} ms {at}: the generator, not the platform, was the limit"))
    if figures.requests == 0:
        return StepVerdict(figures, "errors", f"no request completed {at}")
    if figures.error_rate > limits.error_rate:
        return StepVerdict(figures, "errors", (
            f"errors {figures.error_rate:.1%} > {limits.error_rate:.1%} {at} "
            f"({figures.failures} of {figures.requests})"))
    late = figures.late_fraction > limits.late_fraction
    service_holds = figures.service_p95_ms <= limits.p95_ms
    if late and service_holds and (figures.p95_ms > limits.p95_ms
                                   or limits.latency == "service"):
        return StepVerdict(figures, "generator", (
            f"{figures.late_fraction:.0%} of arrivals started late {at} while the service's "
            f"p95 held ({figures.service_p95_ms:.0f} ms): the generator (its loop or its pool "
            f"of users), not the platform, was the limit"))
    if figures.p95_ms > limits.p95_ms:
        kind = "" if limits.latency == "corrected" else " (service time)"
        return StepVerdict(figures, "p95", (
            f"p95{kind} {figures.p95_ms:.0f} ms > {limits.p95_ms:g} ms {at}"))
    return StepVerdict(figures, None, (
        f"held {at}: {figures.throughput_rps:.1f} req/s, p95 {figures.p95_ms:.0f} ms, "
        f"errors {figures.error_rate:.2%}"))


def _rate(rate: float) -> str:
    return f"{rate:g}"


def step_event(verdict: StepVerdict) -> dict[str, Any]:
    """The `step` event's fields (besides t and type): contract of collectors/models."""
    f = verdict.figures
    return {
        "index": f.index, "rate": f.rate, "start": f.start, "end": f.end,
        "held": verdict.held, "reason": verdict.reason, "seconds": f.seconds,
        "requests": f.requests, "failures": f.failures,
        "throughput_rps": round(f.throughput_rps, 3), "error_rate": round(f.error_rate, 6),
        "p95_ms": round(f.p95_ms, 3), "service_p95_ms": round(f.service_p95_ms, 3),
        "arrivals": f.arrivals, "late": f.late, "cpu_busy_s": f.cpu_busy_s,
        "lag_p95_ms": round(f.lag_p95_ms, 3),
    }


def breakpoint_event(reason: Reason, step: int, rate: float, detail: str) -> dict[str, Any]:
    return {"reason": reason, "step": step, "rate": rate, "detail": detail}


class StepWatch:
    """The master's view of a stepped run: data in, verdicts out, one step at a time."""

    def __init__(self, steps: Sequence[PlannedStep], limits: StepLimits) -> None:
        self.steps = tuple(steps)
        self.limits = limits
        self.origin: float | None = None  # epoch of the start of arrivals
        self.verdicts: list[StepVerdict] = []
        self.stop: StepVerdict | None = None
        self._seconds: dict[int, SecondSample] = {}
        self._generator: list[GeneratorSample] = []
        self._lag: list[tuple[float, list[float]]] = []
        self._arrivals: dict[int, list[int]] = {}
        self._upto: int | None = None

    @classmethod
    def for_model(cls, model: OpenModel, self_check: SelfCheck) -> StepWatch:
        return cls(step_plan(model), StepLimits.of(model, self_check))

    def begin(self, origin: float) -> None:
        if self.origin is None:
            self.origin = origin

    @property
    def done(self) -> bool:
        return self.stop is not None or len(self.verdicts) == len(self.steps)

    # data --------------------------------------------------------------------------------------
    def add_second(self, second: SecondSample) -> None:
        if self._wanted(second.t):
            self._seconds[second.t] = second
        self._upto = second.t if self._upto is None else max(self._upto, second.t)

    def add_generator(self, sample: GeneratorSample) -> None:
        if self._wanted(int(sample.t)):
            self._generator.append(sample)

    def add_lag(self, t: float, values_ms: Sequence[float]) -> None:
        if values_ms and self._wanted(int(t)):
            self._lag.append((t, list(values_ms)))

    def add_arrivals(self, t: int, started: int, late: int) -> None:
        """Arrivals intended in second `t`: how many started, how many of them late."""
        if self._wanted(t):
            counts = self._arrivals.setdefault(t, [0, 0])
            counts[0] += started
            counts[1] += late

    def _wanted(self, t: int) -> bool:
        """Whether second `t` may still be judged (not before the step being judged)."""
        if self.origin is None or self.done:
            return False
        return t >= math.floor(self.origin + self.steps[len(self.verdicts)].hold_start)

    # judging -----------------------------------------------------------------------------------
    def window(self, step: PlannedStep) -> tuple[float, float]:
        assert self.origin is not None
        return (self.origin + step.hold_start, self.origin + step.end)

    def poll(self, now: float, *, final: bool = False) -> list[StepVerdict]:
        """Judge every step whose hold is complete (all its seconds merged, or the grace time
        passed; at the end of the run, `final`, every step whose hold is over). Returns the new
        verdicts; the first that breaks is `stop`, and no step is judged after it."""
        judged: list[StepVerdict] = []
        while self.origin is not None and not self.done:
            step = self.steps[len(self.verdicts)]
            start, end = self.window(step)
            last = math.floor(end) - 1
            merged = self._upto is not None and self._upto >= last
            if not (merged or now >= end + JUDGE_GRACE_S or (final and now >= end)):
                break
            verdict = judge_step(self._measure(step, start, end), self.limits)
            self.verdicts.append(verdict)
            judged.append(verdict)
            if not verdict.held:
                self.stop = verdict
            self._forget_before(math.floor(end))
        return judged

    def _measure(self, step: PlannedStep, start: float, end: float) -> StepFigures:
        inside = _hold_seconds(start, end)
        lag = [v for t, values in self._lag if int(t) in inside for v in values]
        started = sum(self._arrivals.get(t, [0, 0])[0] for t in inside)
        late = sum(self._arrivals.get(t, [0, 0])[1] for t in inside)
        return measure_step(step, start, end, self._seconds.values(), self._generator, lag,
                            (started, late), latency=self.limits.latency,
                            cpu_limit=self.limits.cpu_percent)

    def _forget_before(self, t: int) -> None:
        self._seconds = {k: v for k, v in self._seconds.items() if k >= t}
        self._generator = [s for s in self._generator if s.t >= t]
        self._lag = [(at, v) for at, v in self._lag if at >= t]
        self._arrivals = {k: v for k, v in self._arrivals.items() if k >= t}

    def breakpoint(self) -> dict[str, Any] | None:
        """The `breakpoint` event's fields once the run's outcome is known: the first step
        that broke, or "completed" when every step held; None while steps remain."""
        if self.stop is not None:
            f = self.stop.figures
            assert self.stop.reason is not None
            return breakpoint_event(self.stop.reason, f.index, f.rate, self.stop.detail)
        if self.steps and len(self.verdicts) == len(self.steps):
            last = self.verdicts[-1].figures
            return breakpoint_event("completed", last.index, last.rate, (
                f"every step held, up to {_rate(last.rate)}/s "
                f"({last.throughput_rps:.1f} req/s, p95 {last.p95_ms:.0f} ms)"))
        return None



def step_line(step: dict[str, Any]) -> str:
    """One judged step (a `step` event's fields) for the console."""
    verdict = "held" if step.get("held") else f"broke ({step.get('reason')})"
    return (f"step {int(step.get('index', 0)) + 1} at {float(step.get('rate', 0)):g}/s "
            f"{verdict}: {float(step.get('throughput_rps', 0)):.1f} req/s, "
            f"p95 {float(step.get('p95_ms', 0)):.0f} ms "
            f"(service {float(step.get('service_p95_ms', 0)):.0f} ms), "
            f"errors {float(step.get('error_rate', 0)):.2%}, "
            f"late starts {int(step.get('late', 0))}/{int(step.get('arrivals', 0))}")


def breakpoint_line(outcome: dict[str, Any]) -> str:
    """Which step broke and why, or that every step held (a `breakpoint` event's fields)."""
    if outcome.get("reason") == "completed":
        return f"breakpoint not reached: {outcome.get('detail')}"
    return (f"breakpoint at step {int(outcome.get('step', 0)) + 1} "
            f"({float(outcome.get('rate', 0)):g}/s), {outcome.get('reason')}: "
            f"{outcome.get('detail')}")
