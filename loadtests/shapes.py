"""Load shapes as pure functions of time: scenario stages in, (users, spawn rate) out.

Closed model (`stages`), each stage starting from the level the previous one left:
- ramp:  linear from the current level to `users` over `duration`;
- hold:  keep the current level (or jump to `users` within `rise`, then keep it);
- spike: jump to `users` within `rise`, stay, and fall back to the level before the spike
         within `rise`, all inside `duration`;
- step:  from the current level to `users` in `steps` equal steps across `duration`, each
         reached within `rise`.

Open model (`open_model`): a pool of users is spawned first (the lead-in), then arrivals follow
a constant or piecewise-linear rate, or constant rates in geometric steps (`step_plan`: each
step's settle and hold, for the breakpoint scenario); `ArrivalSchedule` gives each arrival's
intended start.

`LoadPlan.at(t)` is what the Locust `LoadTestShape` returns each tick; nothing here imports
Locust, so every shape is tested as a plain function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.scenario import ArrivalStage, OpenModel, Scenario, Stage

__all__ = [
    "ArrivalSchedule",
    "LoadPlan",
    "PlannedStep",
    "RateSegment",
    "Segment",
    "closed_plan",
    "open_plan",
    "plan_for",
    "rate_segments",
    "scale_open_model",
    "scale_stages",
    "step_plan",
    "step_rates",
]

_MIN_RATE = 1.0  # Locust requires a spawn rate > 0 even when nothing changes


@dataclass(frozen=True)
class Segment:
    """From `start` to `end` seconds the target is `users`, approached at `spawn_rate`/s."""

    start: float
    end: float
    users: int
    spawn_rate: float
    stage: int
    label: str


@dataclass(frozen=True)
class LoadPlan:
    segments: tuple[Segment, ...]
    lead_in_s: float = 0.0  # open model: seconds spent spawning the pool before arrivals

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end if self.segments else 0.0

    @property
    def max_users(self) -> int:
        return max((s.users for s in self.segments), default=0)

    def at(self, t: float) -> Segment | None:
        """The segment in force at `t` seconds into the run; None once the plan is over."""
        for segment in self.segments:
            if segment.start <= t < segment.end:
                return segment
        return None

    def users_at(self, t: float) -> float:
        """Users expected at `t` if every ramp proceeds at its spawn rate (for tests, docs)."""
        level = 0.0
        for segment in self.segments:
            if t < segment.start:
                break
            elapsed = min(t, segment.end) - segment.start
            step = segment.spawn_rate * elapsed
            level = min(segment.users, level + step) if segment.users >= level else max(
                segment.users, level - step
            )
        return level


def closed_plan(stages: Sequence[Stage]) -> LoadPlan:
    segments: list[Segment] = []
    level, clock = 0, 0.0
    for index, stage in enumerate(stages):
        label = stage.name or f"{index + 1}:{stage.kind}"
        parts, level = _stage_segments(stage, level)
        for duration, users, rate in parts:
            segments.append(Segment(clock, clock + duration, users, rate, index, label))
            clock += duration
    return LoadPlan(tuple(segments))


def _stage_segments(stage: Stage, level: int) -> tuple[list[tuple[float, int, float]], int]:
    """(duration, users, spawn_rate) parts of one stage, and the level it leaves."""
    target = level if stage.users is None else stage.users
    if stage.kind == "ramp":
        return [(stage.duration, target, _rate(target - level, stage.duration))], target
    if stage.kind == "hold":
        return [(stage.duration, target, _rate(target - level, stage.rise))], target
    if stage.kind == "spike":
        rate = _rate(target - level, stage.rise)
        return [(stage.duration - stage.rise, target, rate), (stage.rise, level, rate)], level
    steps = stage.steps or 1
    parts = []
    for number in range(1, steps + 1):
        users = level + round((target - level) * number / steps)
        previous = level + round((target - level) * (number - 1) / steps)
        parts.append((stage.duration / steps, users, _rate(users - previous, stage.rise)))
    return parts, target


def _rate(change: float, seconds: float) -> float:
    return max(_MIN_RATE, abs(change) / seconds) if seconds > 0 else _MIN_RATE


# --- open model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateSegment:
    """Arrival rate going linearly from `rate_start` to `rate_end` per second over the span."""

    start: float
    end: float
    rate_start: float
    rate_end: float

    @property
    def arrivals(self) -> float:
        return (self.rate_start + self.rate_end) / 2 * (self.end - self.start)


@dataclass(frozen=True)
class PlannedStep:
    """One step of a steps arrival, in seconds from the start of arrivals: the rate holds
    from `start` to `end`; only `hold_start` to `end` (after the settle) is judged."""

    index: int
    rate: float
    start: float
    hold_start: float
    end: float

    @property
    def hold_s(self) -> float:
        return self.end - self.hold_start


# geometric rates are rounded to this many significant figures, so a plan reads well
# (20, 28, 39.2, 54.9, ...) and each rate is within 0.5 % of the exact geometric one
_RATE_FIGURES = 3
_MAX_STEPS = 200


def step_rates(model: OpenModel) -> tuple[float, ...]:
    """The rates of a steps arrival: as listed, or start_rate x factor^i up to max_rate."""
    if model.rates is not None:
        return tuple(model.rates)
    if model.factor is None or model.max_rate is None or model.start_rate <= 0:
        return ()
    rates: list[float] = []
    rate = model.start_rate
    while rate <= model.max_rate * (1 + 1e-9) and len(rates) < _MAX_STEPS:
        rates.append(_significant(rate, _RATE_FIGURES))
        rate *= model.factor
    return tuple(rates)


def _significant(value: float, figures: int) -> float:
    if value <= 0:
        return value
    return round(value, figures - 1 - math.floor(math.log10(value)))


def step_plan(model: OpenModel) -> tuple[PlannedStep, ...]:
    """Each step of a steps arrival (empty for the other arrivals)."""
    if model.arrival != "steps" or model.step is None:
        return ()
    span, settle = model.step, model.settle_s
    return tuple(PlannedStep(i, rate, i * span, i * span + settle, (i + 1) * span)
                 for i, rate in enumerate(step_rates(model)))


def rate_segments(model: OpenModel) -> tuple[RateSegment, ...]:
    """Arrival-rate segments from t=0 (the start of arrivals, after the lead-in)."""
    if model.arrival == "steps":
        return tuple(RateSegment(s.start, s.end, s.rate, s.rate) for s in step_plan(model))
    if model.arrival == "constant":
        assert model.rate is not None and model.duration is not None
        return (RateSegment(0.0, model.duration, model.rate, model.rate),)
    segments, clock, rate = [], 0.0, model.start_rate
    for stage in model.stages or ():
        segments.append(RateSegment(clock, clock + stage.duration, rate, stage.rate))
        clock, rate = clock + stage.duration, stage.rate
    return tuple(segments)


def open_plan(model: OpenModel) -> LoadPlan:
    """Spawn the pool, keep it through the arrivals, then stop."""
    lead_in = math.ceil(model.pool_users / model.pool_spawn_rate) + 1.0
    total = lead_in + sum(s.end - s.start for s in rate_segments(model))
    segment = Segment(0.0, total, model.pool_users, model.pool_spawn_rate, 0, "open-model")
    return LoadPlan((segment,), lead_in_s=lead_in)


def plan_for(scenario: Scenario) -> LoadPlan:
    if scenario.open_model is not None:
        return open_plan(scenario.open_model)
    return closed_plan(scenario.stages or ())


class ArrivalSchedule:
    """Intended start times of one worker's share of the arrivals, in order.

    Arrival k (from 0) is intended when the worker's cumulative expected arrivals reach
    k + 1/2, so a constant rate R gives (k + 1/2) / R: evenly spaced, as wrk2 schedules them.
    """

    def __init__(self, segments: Sequence[RateSegment], share: float = 1.0) -> None:
        if share <= 0:
            raise ValueError("share must be above 0")
        self._segments = tuple(segments)
        self._share = share
        self._before = []  # cumulative arrivals (this worker) at each segment's start
        total = 0.0
        for segment in self._segments:
            self._before.append(total)
            total += segment.arrivals * share
        self.total = int(math.floor(total + 0.5))
        self._index = 0

    def time_of(self, k: int) -> float | None:
        """Seconds after the start of arrivals at which arrival `k` is intended."""
        if k < 0 or k >= self.total:
            return None
        goal = k + 0.5
        for segment, before in zip(self._segments, self._before, strict=True):
            inside = goal - before
            if inside <= segment.arrivals * self._share + 1e-9:
                return segment.start + _solve(segment, inside / self._share)
        return self._segments[-1].end if self._segments else None

    def next(self) -> float | None:
        """The next arrival's intended offset, or None when the schedule is used up."""
        offset = self.time_of(self._index)
        if offset is not None:
            self._index += 1
        return offset

    @property
    def taken(self) -> int:
        return self._index


def _solve(segment: RateSegment, arrivals: float) -> float:
    """Seconds into `segment` at which `arrivals` (whole-run units) have been reached."""
    span = segment.end - segment.start
    slope = (segment.rate_end - segment.rate_start) / span if span else 0.0
    r0 = segment.rate_start
    if abs(slope) < 1e-12:
        return min(span, arrivals / r0) if r0 > 0 else span
    root = r0 * r0 + 2 * slope * arrivals
    return min(span, max(0.0, (-r0 + math.sqrt(max(root, 0.0))) / slope))


# --- overrides (pitchey run --duration/--users) -------------------------------------------------


def scale_stages(stages: Sequence[Stage], *, duration_s: float | None = None,
                 users: int | None = None) -> tuple[Stage, ...]:
    """Stretch or squeeze the stages to `duration_s` and scale user levels to peak at `users`."""
    total = sum(stage.duration for stage in stages)
    peak = max((stage.users or 0) for stage in stages)
    time_factor = duration_s / total if duration_s and total else 1.0
    user_factor = users / peak if users and peak else 1.0
    scaled = []
    for stage in stages:
        duration = stage.duration * time_factor
        changes: dict[str, object] = {"duration": duration}
        if stage.kind == "spike":
            changes["rise"] = min(stage.rise, duration / 3)
        if stage.users is not None and user_factor != 1.0:
            changes["users"] = max(1 if stage.users else 0, round(stage.users * user_factor))
        scaled.append(stage.model_copy(update=changes))
    return tuple(scaled)


def scale_open_model(model: OpenModel, *, duration_s: float | None = None,
                     users: int | None = None) -> OpenModel:
    """Stretch the arrival timeline to `duration_s`; `users` sizes the pool."""
    changes: dict[str, object] = {}
    if users:
        changes["pool_users"] = users
    if duration_s:
        if model.duration is not None:
            changes["duration"] = duration_s
        if model.arrival == "steps" and model.step is not None:
            # the same steps, each shorter or longer; the settle keeps its share of a step
            factor = duration_s / (model.step * max(1, len(step_rates(model))))
            changes["step"] = model.step * factor
            changes["settle"] = model.settle_s * factor
        if model.stages:
            total = sum(stage.duration for stage in model.stages)
            changes["stages"] = tuple(
                ArrivalStage(duration=s.duration * duration_s / total, rate=s.rate)
                for s in model.stages
            )
    return model.model_copy(update=changes)
