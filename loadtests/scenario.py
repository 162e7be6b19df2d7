"""Scenario files: the schema, the loader, and errors that name the file, line and key.

A scenario says what to load (`target`: `embedded` or a URL, `topology`), how (closed-model
`stages` or an `open_model` arrival rate), who (`users`: portal classes with weights and think
times; `regions` with weights) and what must hold (`thresholds` and `gate:`, read by the gate,
which also holds every run to the product's targets, per region too). `load_scenario(path)`
returns a frozen `Scenario` or raises `ScenarioError`, whose lines read
`scenarios/x.yaml:12: stages[1].users: must be >= 0`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collectors.units import parse_duration_s, parse_fraction, parse_latency_ms

__all__ = [
    "PORTALS",
    "REMOVED_KEYS",
    "ArrivalStage",
    "BreakpointLimits",
    "Embedded",
    "FailoverStep",
    "OpenModel",
    "Scenario",
    "ScenarioError",
    "SelfCheck",
    "Stage",
    "ThinkTime",
    "UserSpec",
    "load_scenario",
    "parse_scenario",
    "scenario_from_json",
    "with_overrides",
]

PORTALS = ("creator", "investor", "production", "browser")
# Keys a scenario may no longer use, and what to do instead.
REMOVED_KEYS = {
    "region_targets_ms": "region_targets_ms was removed: the regional latencies are the round "
    "trips the geo latency model injects (inputs, not targets); every region is held to the "
    "product's p95 target, judged by the gate per region; see docs/targets.md",
}
SEED_REGION_WEIGHTS = {"us-east": 30.0, "us-west": 25.0, "europe": 25.0, "asia": 20.0}


class ScenarioError(ValueError):
    """A scenario file cannot be used. `problems` holds one "file:line: key: reason" per issue."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def _seconds(value: object) -> float:
    return parse_duration_s(value)


def _millis(value: object) -> float:
    return parse_latency_ms(value)


def _fraction(value: object) -> float:
    return parse_fraction(value, at_most_one=True)


Seconds = Annotated[float, BeforeValidator(_seconds)]
Fraction = Annotated[float, BeforeValidator(_fraction)]
PositiveSeconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]
Millis = Annotated[float, BeforeValidator(_millis)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _think_time(value: object) -> object:
    """A single duration means a constant think time."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return {"min": value, "max": value}
    return value


class ThinkTime(_Model):
    """Seconds a user waits between two tasks, uniformly in [min, max]."""

    min: Seconds = 1.0
    max: Seconds = 3.0

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}s) is above max ({self.max:g}s)")
        return self


ThinkTimeField = Annotated[ThinkTime, BeforeValidator(_think_time)]


class UserSpec(_Model):
    """One portal's share of the users and its think time (the scenario default if absent).
    `pacing` (closed model): a journey starts every `pacing` seconds (constant pacing, as
    Locust's `constant_pacing`: the wait is what is left of the period), instead of a think
    time after each journey."""

    weight: float = Field(ge=0)
    think_time: ThinkTimeField | None = None
    pacing: PositiveSeconds | None = None

    @model_validator(mode="after")
    def _pacing_or_think(self) -> UserSpec:
        if self.pacing is not None and self.think_time is not None:
            raise ValueError("give think_time or pacing, not both")
        return self


class Stage(_Model):
    """One closed-model stage; see loadtests.shapes for what each kind does."""

    kind: Literal["ramp", "hold", "spike", "step"]
    duration: PositiveSeconds
    users: int | None = Field(default=None, ge=0)
    steps: int | None = Field(default=None, ge=1)
    rise: PositiveSeconds = 1.0
    name: str | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Stage:
        if self.kind in ("ramp", "spike", "step") and self.users is None:
            raise ValueError(f"a {self.kind} stage needs users")
        if self.steps is not None and self.kind != "step":
            raise ValueError("steps only applies to a step stage")
        if self.kind == "spike" and 2 * self.rise >= self.duration:
            raise ValueError("a spike's duration must be longer than twice its rise")
        return self


class ArrivalStage(_Model):
    """The arrival rate (per second, whole run) reached linearly at the end of `duration`."""

    duration: PositiveSeconds
    rate: float = Field(ge=0)


class BreakpointLimits(_Model):
    """When a stepped arrival stops itself, judged on each step's hold (after its settle)."""

    p95: Millis | None = None  # None: the product target (collectors.targets)
    # which time the p95 is of: "corrected" (from each arrival's intended start: what users
    # waited, as the gate judges an open model) or "service" (from the actual send)
    latency: Literal["corrected", "service"] = "corrected"
    errors: Fraction = 0.01
    # share of a step's arrivals starting later than late_tolerance past which, while the
    # service's own p95 holds, the generator (its loop or its pool), not the platform, is late
    late: Fraction = 0.05


_STEP_KEYS = ("factor", "rates", "step", "settle", "max_rate", "breakpoint")


class OpenModel(_Model):
    """Open model: arrivals at a rate, served by a pool of users; latency is also recorded
    from each arrival's intended start (coordinated omission corrected).

    `arrival: steps` holds constant rates in turn, each for `step` seconds of which the first
    `settle` are not judged: `rates: [...]`, or geometric ones from `start_rate` times `factor`
    up to `max_rate`; the run stops itself at the first step that breaks `breakpoint`."""

    arrival: Literal["constant", "ramping", "steps"]
    rate: float | None = Field(default=None, ge=0)
    duration: PositiveSeconds | None = None
    start_rate: float = Field(default=0.0, ge=0)
    stages: tuple[ArrivalStage, ...] | None = None
    factor: float | None = Field(default=None, gt=1)
    rates: tuple[Annotated[float, Field(gt=0)], ...] | None = None
    step: PositiveSeconds | None = None
    settle: Seconds | None = None
    max_rate: float | None = Field(default=None, gt=0)
    breakpoint: BreakpointLimits | None = None
    pool_users: int = Field(ge=1)
    pool_spawn_rate: float = Field(default=50.0, gt=0)
    late_tolerance: Millis = 5.0

    @model_validator(mode="after")
    def _fields_fit_arrival(self) -> OpenModel:
        if self.arrival == "steps":
            return self._fit_steps()
        given = [key for key in _STEP_KEYS if getattr(self, key) is not None]
        if given:
            raise ValueError(f"{given[0]} only applies to a steps arrival")
        if self.arrival == "constant" and (self.rate is None or self.duration is None):
            raise ValueError("a constant arrival needs rate and duration")
        if self.arrival == "constant" and self.stages is not None:
            raise ValueError("stages only apply to a ramping arrival")
        if self.arrival == "ramping" and not self.stages:
            raise ValueError("a ramping arrival needs stages: [{duration, rate}, ...]")
        if self.arrival == "ramping" and (self.rate is not None or self.duration is not None):
            raise ValueError("a ramping arrival takes stages, not rate/duration")
        return self

    def _fit_steps(self) -> OpenModel:
        for key in ("rate", "duration", "stages"):
            if getattr(self, key) is not None:
                raise ValueError(f"a steps arrival takes step and rates or factor, not {key}")
        if self.step is None:
            raise ValueError("a steps arrival needs step (each step's duration, e.g. 20s)")
        if self.settle is not None and self.settle >= self.step:
            raise ValueError(f"settle ({self.settle:g}s) must be shorter than step "
                             f"({self.step:g}s): the rest of the step is what is judged")
        if self.rates is not None:
            if self.factor is not None or self.max_rate is not None:
                raise ValueError("give rates, or start_rate with factor and max_rate, not both")
            if not self.rates:
                raise ValueError("rates is empty")
            if any(b <= a for a, b in zip(self.rates, self.rates[1:], strict=False)):
                raise ValueError("rates must rise from step to step")
            return self
        if self.factor is None or self.max_rate is None or self.start_rate <= 0:
            raise ValueError("a steps arrival needs rates: [...], or start_rate (above 0), "
                             "factor and max_rate")
        if self.max_rate < self.start_rate:
            raise ValueError(f"max_rate ({self.max_rate:g}) is below start_rate "
                             f"({self.start_rate:g})")
        return self

    @property
    def settle_s(self) -> float:
        """Seconds at the start of each step that are not judged (steps arrival)."""
        if self.settle is not None:
            return self.settle
        return min(5.0, (self.step or 0.0) / 4)


class SelfCheck(_Model):
    """Limits past which the load generator itself is the bottleneck (the run is invalid)."""

    cpu_percent: float = Field(default=90.0, gt=0, le=100)
    cpu_sustain: PositiveSeconds = 10.0
    lag_p95: Millis = 50.0
    # share of requests that never reached the target (refused, reset, timed out) past which
    # the run says nothing about the service
    unreachable_ratio: float = Field(default=0.5, ge=0, le=1)
    # share of a worker's judged seconds at or above cpu_percent past which it is saturated
    cpu_share: float = Field(default=0.05, ge=0, le=1)
    # open model: share of the arrivals starting later than late_tolerance past which the
    # run did not offer the planned arrivals
    late_share: float = Field(default=0.01, ge=0, le=1)


class FailoverStep(_Model):
    """`pitchey failover REGION` started `at` seconds into the run (geo topology only)."""

    at: Seconds
    region: str
    duration: PositiveSeconds = 20.0


class SeedData(_Model):
    users: int = Field(default=50, ge=0)
    pitches: int = Field(default=200, ge=0)
    seed: int = 42


class Embedded(_Model):
    """How `pitchey run` starts the platform when the target is `embedded`."""

    seed: SeedData = SeedData()
    env: dict[str, str] = Field(default_factory=dict)


class ScopedThreshold(_Model):
    check: str
    scope: dict[str, str] | None = None
    abort_on_fail: bool = False
    grace: Seconds = 0.0


class Scenario(_Model):
    """A validated scenario file. `raw` keeps the mapping as written, for the manifest."""

    name: str = Field(min_length=1)
    description: str = ""
    target: str = "embedded"
    topology: Literal["single", "geo"] = "single"
    stages: tuple[Stage, ...] | None = None
    open_model: OpenModel | None = None
    users: dict[str, UserSpec]
    think_time: ThinkTimeField = ThinkTime()
    pacing: PositiveSeconds | None = None  # closed model: every user class's default pacing
    regions: dict[str, float] = Field(default_factory=lambda: dict(SEED_REGION_WEIGHTS))
    thresholds: tuple[str | ScopedThreshold, ...] = ()
    warmup: Seconds = 0.0
    gate: dict[str, Any] = Field(default_factory=dict)
    self_check: SelfCheck = SelfCheck()
    failover: tuple[FailoverStep, ...] = ()
    embedded: Embedded = Embedded()
    request_timeout: PositiveSeconds = 30.0
    connection_pool: int = Field(default=0, ge=0)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("http://", "https://")):
            raise ValueError("must be 'embedded' or an http(s):// URL")
        return value.rstrip("/")

    @field_validator("users")
    @classmethod
    def _portals(cls, value: dict[str, UserSpec]) -> dict[str, UserSpec]:
        unknown = sorted(set(value) - set(PORTALS))
        if unknown:
            raise ValueError(f"unknown user class {unknown[0]!r} (known: {', '.join(PORTALS)})")
        if not any(spec.weight > 0 for spec in value.values()):
            raise ValueError("at least one user class needs a weight above 0")
        return value

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("name at least one region")
        for name, weight in value.items():
            if weight <= 0:
                raise ValueError(f"region {name!r} needs a weight above 0")
        return value

    @field_validator("failover")
    @classmethod
    def _failover_regions(cls, value: tuple[FailoverStep, ...], info: ValidationInfo
                          ) -> tuple[FailoverStep, ...]:
        regions = info.data.get("regions") or {}
        for step in value:
            if step.region not in regions:
                raise ValueError(f"region {step.region!r} is not one of the regions "
                                 f"({', '.join(regions)})")
        if value and info.data.get("topology") != "geo":
            raise ValueError("failover needs topology: geo")
        return value

    @model_validator(mode="after")
    def _one_model(self) -> Scenario:
        if (self.stages is None) == (self.open_model is None):
            raise ValueError("give either stages (closed model) or open_model, not both")
        if self.stages is not None and not self.stages:
            raise ValueError("stages is empty")
        if self.open_model is not None and (self.pacing is not None or any(
                spec.pacing is not None for spec in self.users.values())):
            raise ValueError("pacing applies to the closed model (stages); the open model's "
                             "arrivals set when requests start")
        return self

    # derived figures ---------------------------------------------------------------------------
    @property
    def max_users(self) -> int:
        if self.open_model is not None:
            return self.open_model.pool_users
        return max((stage.users or 0) for stage in self.stages or ())

    def think_time_for(self, portal: str) -> ThinkTime:
        spec = self.users.get(portal)
        return spec.think_time if spec and spec.think_time else self.think_time

    def pacing_for(self, portal: str) -> float | None:
        """Seconds between journey starts of a `portal` user (constant pacing), or None: its
        own pacing, else the scenario's unless the user class gives a think time."""
        spec = self.users.get(portal)
        if spec is not None and spec.pacing is not None:
            return spec.pacing
        if spec is not None and spec.think_time is not None:
            return None
        return self.pacing

    def to_json(self) -> dict[str, Any]:
        """The scenario as run (defaults filled in), JSON-able, loadable again."""
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (YAML, or the JSON `Scenario.to_json` writes)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    return parse_scenario(text, source=str(source))


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ScenarioError([f"{source}{line}: not valid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{source}: not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{source}:1: expected a mapping of scenario keys at the top"])
    lines = _key_lines(node) if node is not None else {}
    removed = [f"{source}{_line_for((key,), lines)}: {key}: {why}"
               for key, why in REMOVED_KEYS.items() if key in data]
    if removed:
        raise ScenarioError(removed)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, lines, source)) from None
    _check_thresholds(data, lines, source)
    return scenario


def with_overrides(
    scenario: Scenario, *, duration_s: float | None = None, users: int | None = None,
    target: str | None = None,
) -> Scenario:
    """The scenario `pitchey run` actually runs: the timeline (stages, warm-up, failover
    times) stretched to `duration_s`, user levels scaled so the peak is `users`."""
    from loadtests.shapes import plan_for, scale_open_model, scale_stages

    changes: dict[str, Any] = {}
    if target is not None:
        changes["target"] = target.rstrip("/")
    planned = plan_for(scenario)
    arrivals_s = planned.duration_s - planned.lead_in_s
    factor = duration_s / arrivals_s if duration_s and arrivals_s else 1.0
    if scenario.stages is not None:
        changes["stages"] = scale_stages(scenario.stages, duration_s=duration_s, users=users)
    elif scenario.open_model is not None:
        changes["open_model"] = scale_open_model(
            scenario.open_model, duration_s=duration_s, users=users
        )
    if factor != 1.0:
        changes["warmup"] = scenario.warmup * factor
        changes["failover"] = tuple(
            step.model_copy(update={"at": step.at * factor,
                                    "duration": max(1.0, step.duration * factor)})
            for step in scenario.failover
        )
    return scenario.model_copy(update=changes)


def _check_thresholds(data: Mapping[str, Any], lines: Mapping[tuple[Any, ...], int],
                      source: str) -> None:
    """Let the gate's own parser judge thresholds and `gate:`, so both agree on the syntax."""
    from gate.thresholds import ThresholdError, parse_gate_spec

    try:
        parse_gate_spec(data, source=_GATE_SOURCE)
    except ThresholdError as exc:
        where = exc.where.replace(f"{_GATE_SOURCE}: ", "").strip()
        line = _line_for(_path_from_where(where), lines)
        message = str(exc).removeprefix(exc.where).removeprefix(":").strip()
        message = message.replace(f"{_GATE_SOURCE}: ", "")
        raise ScenarioError([f"{source}{line}: {where}: {message}"]) from None


_GATE_SOURCE = "scenario"


def _path_from_where(where: str) -> tuple[Any, ...]:
    """'thresholds[2].grace' -> ('thresholds', 2, 'grace')."""
    head = where.split(' "', 1)[0]
    path: list[Any] = []
    for part in head.replace("]", "").split("."):
        name, _, index = part.partition("[")
        if name:
            path.append(name.strip())
        if index.isdigit():
            path.append(int(index))
    return tuple(path)


def _key_lines(node: yaml.Node) -> dict[tuple[Any, ...], int]:
    """Line (1-based) of every key path in the YAML document, e.g. ('stages', 1, 'users')."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(current: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = path + (key_node.value,)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, path + (index,))

    walk(node, ())
    return lines


def _line_for(path: Sequence[Any], lines: Mapping[tuple[Any, ...], int]) -> str:
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return f":{line}"
    return ""


def _problems(exc: ValidationError, lines: Mapping[tuple[Any, ...], int],
              source: str) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        reason = _reason(error)
        path = _named_child(_data_path(error["loc"], lines), reason, lines)
        key = _key_text(path) or "(top level)"
        problems.append(f"{source}{_line_for(path, lines)}: {key}: {reason}")
    return list(dict.fromkeys(problems))


def _data_path(loc: Sequence[Any], lines: Mapping[tuple[Any, ...], int]) -> tuple[Any, ...]:
    """Drop pydantic's union tags (e.g. 'str', 'ScopedThreshold') that are not document keys,
    keeping keys that exist in the file or are the last (missing) key asked for."""
    path: list[Any] = []
    for index, part in enumerate(loc):
        candidate = tuple(path) + (part,)
        if candidate in lines or index == len(loc) - 1 and isinstance(part, str | int):
            if not _is_tag(part) or candidate in lines:
                path.append(part)
    return tuple(path)


def _named_child(path: tuple[Any, ...], reason: str, lines: Mapping[tuple[Any, ...], int]
                 ) -> tuple[Any, ...]:
    """A message naming one of the path's own keys ('banker') points at that key's line."""
    for quoted in re.findall(r"'([^']+)'", reason):
        if path + (quoted,) in lines:
            return path + (quoted,)
    return path


def _is_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part[:1].isupper() or "[" in part or part in ("str", "int", "float", "dict")
    )


def _key_text(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _reason(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing (required)"
    message = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def scenario_from_json(text: str, *, source: str = "<scenario json>") -> Scenario:
    """Parse the JSON a master hands its workers (`Scenario.to_json`)."""
    try:
        return Scenario.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ScenarioError([f"{source}: {exc}"]) from None
