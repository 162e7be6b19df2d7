"""The verdict of a run: what every view shows, as data and as the JSON summary.json records.

Pure data: frozen dataclasses, their JSON form (``"format": "pitchey-verdict"``, version 1)
and the texts built from them (headline, the one-line verdict, measured and limit texts).
:func:`gate.evaluation.evaluate_run` is the only producer; the console, ``pitchey gate``'s
outputs, ``pitchey capacity``, the dashboard header and the HTML report read it.

Measured checks decide the status; projections (capacity, cost) are model outputs shown
beside them and never change the status or the exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collectors.validity import Validity
from gate.thresholds import MetricKind
from pitchey_cli.exitcodes import ExitCode

__all__ = [
    "FORMAT",
    "HEADLINES",
    "VERSION",
    "Check",
    "ComparisonOutcome",
    "Projection",
    "RunVerdict",
    "VerdictError",
    "VerdictWindow",
    "format_measure",
    "status_of",
    "verdict_line",
]

FORMAT = "pitchey-verdict"
VERSION = 1
HEADLINES = {"pass": "PASS", "breach": "FAIL", "regression": "REGRESSION", "invalid": "INVALID"}
_CODES = {"pass": ExitCode.OK, "breach": ExitCode.BREACH, "regression": ExitCode.REGRESSION,
          "invalid": ExitCode.INVALID}


class VerdictError(ValueError):
    """A recorded verdict that is not in the expected format (names the key)."""


def format_measure(kind: str, value: float) -> str:
    """A measured value or limit as people read it: ``131.2 ms``, ``1.25 s``, ``0.1%``."""
    if kind == MetricKind.LATENCY.value:
        return f"{value:.4g} ms" if value < 1000 else f"{value / 1000:.4g} s"
    if kind == MetricKind.RATE.value:
        return f"{value * 100:.4g}%"
    if kind == MetricKind.THROUGHPUT.value:
        return f"{value:.4g} req/s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


@dataclass(frozen=True)
class VerdictWindow:
    """Epoch seconds ``[start, end)`` the gate judged, after ``warmup_s`` of load."""

    start: float
    end: float
    warmup_s: float
    duration_s: float

    def to_json(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end, "warmup_s": self.warmup_s,
                "duration_s": self.duration_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerdictWindow:
        return cls(float(data["start"]), float(data["end"]), float(data["warmup_s"]),
                   float(data["duration_s"]))


@dataclass(frozen=True)
class Check:
    """One measured check: what was measured, the limit, where the limit comes from."""

    name: str  # "p95 < 100ms": the check as written, without its scope
    metric: str
    kind: str  # latency | rate | count | throughput | users | abort
    scope: tuple[tuple[str, str], ...]
    measured: float | None
    op: str
    limit: float
    ok: bool
    samples: int
    source: str  # "product target: ..." or "scenario smoke: thresholds[0]"
    measured_text: str
    limit_text: str
    latency_kind: str | None = None  # service | corrected (latency checks)
    note: str = ""  # why there is no measurement, or what stopped the run
    # the generator's own hiccup at the check's percentile when the breach is within it
    # (the check cannot be judged: the run is invalid), else None
    generator_hiccup_ms: float | None = None

    @property
    def scope_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.scope) or "global"

    @property
    def key(self) -> str:
        """Unique within a verdict: the name plus the scope (JUnit testcase names, ids)."""
        return self.name if not self.scope else f"{self.name} [{self.scope_label}]"

    @property
    def subject(self) -> str:
        """``p95 region=asia`` — the metric and its scope, for messages."""
        return self.metric if not self.scope else f"{self.metric} {self.scope_label}"

    @property
    def short_source(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def summary(self) -> str:
        """``p95 region=asia 131.2 ms, limit < 100 ms`` (the measured value and the limit)."""
        return f"{self.subject} {self.measured_text}, limit {self.limit_text}"

    @property
    def message(self) -> str:
        text = f"{self.subject} = {self.measured_text}, limit {self.limit_text} ({self.source})"
        return f"{text}; {self.note}" if self.note else text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "metric": self.metric, "kind": self.kind,
            "scope": dict(self.scope), "scope_label": self.scope_label,
            "measured": self.measured, "measured_text": self.measured_text, "op": self.op,
            "limit": self.limit, "limit_text": self.limit_text, "ok": self.ok,
            "samples": self.samples, "source": self.source, "message": self.message,
            "latency_kind": self.latency_kind, "note": self.note,
            "generator_hiccup_ms": self.generator_hiccup_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        measured = data["measured"]
        return cls(
            name=str(data["name"]), metric=str(data["metric"]), kind=str(data["kind"]),
            scope=tuple((str(k), str(v)) for k, v in dict(data["scope"]).items()),
            measured=None if measured is None else float(measured), op=str(data["op"]),
            limit=float(data["limit"]), ok=bool(data["ok"]), samples=int(data["samples"]),
            source=str(data["source"]), measured_text=str(data["measured_text"]),
            limit_text=str(data["limit_text"]), latency_kind=data.get("latency_kind"),
            note=str(data.get("note", "")),
            generator_hiccup_ms=_float_or_none(data.get("generator_hiccup_ms")),
        )


@dataclass(frozen=True)
class ComparisonOutcome:
    """p95 or the error rate of one scope against the baseline's."""

    metric: str
    scope: tuple[tuple[str, str], ...]
    current: float | None
    baseline: float | None
    tolerated: float | None
    current_interval: tuple[float, float] | None
    baseline_interval: tuple[float, float] | None
    ok: bool  # False: a regression (worse beyond the margin, and not noise)
    verdict: str  # regression | within margin | worse, not significant | improved | no data
    current_text: str
    baseline_text: str
    tolerated_text: str
    margin_text: str

    @property
    def name(self) -> str:
        return f"{self.metric} vs baseline"

    @property
    def scope_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.scope) or "global"

    @property
    def key(self) -> str:
        return f"{self.name} [{self.scope_label}]"

    @property
    def change_text(self) -> str:
        if self.baseline and self.current is not None:
            return f" ({(self.current / self.baseline - 1) * 100:+.1f}%)"
        return ""

    @property
    def message(self) -> str:
        return (f"{self.metric} [{self.scope_label}]: {self.current_text} vs baseline "
                f"{self.baseline_text}{self.change_text}, tolerated {self.tolerated_text} "
                f"({self.margin_text}): {self.verdict}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "metric": self.metric, "scope": dict(self.scope),
            "scope_label": self.scope_label, "current": self.current,
            "baseline": self.baseline, "tolerated": self.tolerated,
            "current_interval": _pair_json(self.current_interval),
            "baseline_interval": _pair_json(self.baseline_interval),
            "current_text": self.current_text, "baseline_text": self.baseline_text,
            "tolerated_text": self.tolerated_text, "margin_text": self.margin_text,
            "ok": self.ok, "verdict": self.verdict, "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComparisonOutcome:
        return cls(
            metric=str(data["metric"]),
            scope=tuple((str(k), str(v)) for k, v in dict(data["scope"]).items()),
            current=_float_or_none(data["current"]), baseline=_float_or_none(data["baseline"]),
            tolerated=_float_or_none(data["tolerated"]),
            current_interval=_pair(data["current_interval"]),
            baseline_interval=_pair(data["baseline_interval"]), ok=bool(data["ok"]),
            verdict=str(data["verdict"]), current_text=str(data["current_text"]),
            baseline_text=str(data["baseline_text"]),
            tolerated_text=str(data["tolerated_text"]), margin_text=str(data["margin_text"]),
        )


@dataclass(frozen=True)
class Projection:
    """A model's answer (capacity, cost) for the product's targets: labelled, never judged."""

    name: str
    value: float | None
    low: float | None
    high: float | None
    unit: str
    limit: float | None
    ok: bool | None  # compared with `limit` when there is one; information only
    text: str
    assumptions: tuple[str, ...]
    available: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": "projection", "value": self.value, "low": self.low,
            "high": self.high, "unit": self.unit, "limit": self.limit, "ok": self.ok,
            "text": self.text, "assumptions": list(self.assumptions),
            "available": self.available, "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Projection:
        ok = data["ok"]
        return cls(
            name=str(data["name"]), value=_float_or_none(data["value"]),
            low=_float_or_none(data["low"]), high=_float_or_none(data["high"]),
            unit=str(data["unit"]), limit=_float_or_none(data["limit"]),
            ok=None if ok is None else bool(ok), text=str(data["text"]),
            assumptions=tuple(str(a) for a in data["assumptions"]),
            available=bool(data["available"]), reason=str(data["reason"]),
        )


@dataclass(frozen=True)
class RunVerdict:
    """THE judgement of one run (see the module docstring and docs/gate.md)."""

    status: str  # pass | breach | regression | invalid
    line: str
    evaluated_at: str  # ISO 8601 UTC, "...Z"
    window: VerdictWindow
    validity: Validity
    checks: tuple[Check, ...]
    comparisons: tuple[ComparisonOutcome, ...]
    baseline: str | None  # where the baseline came from (run directory or file)
    projections: tuple[Projection, ...]
    run_id: str = ""
    scenario: str = ""
    # what the run measured of one instance's capacity (knee, X_max, USL; `line` to show):
    # measured figures, shown beside the projections built on them, never judged
    capacity: Mapping[str, Any] | None = None

    @property
    def exit_code(self) -> ExitCode:
        return _CODES[self.status]

    @property
    def headline(self) -> str:
        return HEADLINES[self.status]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @property
    def regressions(self) -> tuple[ComparisonOutcome, ...]:
        return tuple(c for c in self.comparisons if not c.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "status": self.status,
            "exit_code": int(self.exit_code), "headline": self.headline, "line": self.line,
            "evaluated_at": self.evaluated_at, "run_id": self.run_id,
            "scenario": self.scenario, "window": self.window.to_json(),
            "validity": self.validity.to_json(),
            "checks": [c.to_json() for c in self.checks],
            "comparisons": [c.to_json() for c in self.comparisons],
            "baseline": None if self.baseline is None else {"source": self.baseline},
            "projections": [p.to_json() for p in self.projections],
            "capacity": None if self.capacity is None else dict(self.capacity),
        }

    @classmethod
    def from_json(cls, data: object) -> RunVerdict:
        """Read a recorded verdict back; VerdictError names what is wrong."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise VerdictError(f"not a verdict (expected format '{FORMAT}')")
        if data.get("version") != VERSION:
            raise VerdictError(f"verdict version {data.get('version')!r} is not {VERSION}")
        try:
            return _verdict_from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise VerdictError(f"malformed verdict ({type(exc).__name__}: {exc})") from None


def _verdict_from_json(data: Mapping[str, Any]) -> RunVerdict:
    status = str(data["status"])
    if status not in _CODES:
        raise ValueError(f"unknown status {status!r}")
    baseline = data["baseline"]
    return RunVerdict(
        status=status, line=str(data["line"]), evaluated_at=str(data["evaluated_at"]),
        window=VerdictWindow.from_json(data["window"]),
        validity=Validity.from_json(data["validity"]),
        checks=tuple(Check.from_json(c) for c in data["checks"]),
        comparisons=tuple(ComparisonOutcome.from_json(c) for c in data["comparisons"]),
        baseline=None if baseline is None else str(baseline["source"]),
        projections=tuple(Projection.from_json(p) for p in data["projections"]),
        run_id=str(data.get("run_id", "")), scenario=str(data.get("scenario", "")),
        capacity=_capacity_json(data.get("capacity")),
    )


def _capacity_json(raw: object) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("line"), str):
        raise ValueError("capacity must be an object with a 'line'")
    return dict(raw)


def status_of(validity: Validity, checks: Sequence[Check],
              comparisons: Sequence[ComparisonOutcome]) -> str:
    """Invalid beats breach beats regression beats pass; projections have no say."""
    if not validity.valid:
        return "invalid"
    if any(not c.ok for c in checks):
        return "breach"
    if any(not c.ok for c in comparisons):
        return "regression"
    return "pass"


def verdict_line(status: str, validity: Validity, checks: Sequence[Check],
                 comparisons: Sequence[ComparisonOutcome], baseline: str | None) -> str:
    """``gate: FAIL (exit 1): 1 of 6 checks failed: p95 region=asia 131.2 ms, limit ...``."""
    head = f"gate: {HEADLINES[status]} (exit {int(_CODES[status])})"
    if status == "invalid":
        return f"{head}: the run cannot be judged: {'; '.join(validity.reasons)}"
    if status == "breach":
        failed = [c for c in checks if not c.ok]
        check = failed[0]
        return (f"{head}: {len(failed)} of {len(checks)} checks failed: {check.summary} "
                f"({check.short_source}){_more(failed)}")
    if status == "regression":
        regressed = [c for c in comparisons if not c.ok]
        worst = regressed[0]
        return (f"{head}: {len(regressed)} of {len(comparisons)} comparisons regressed "
                f"against {baseline}: {worst.metric} {worst.scope_label} {worst.current_text} "
                f"vs {worst.baseline_text}{worst.change_text}, tolerated "
                f"{worst.tolerated_text}{_more(regressed)}")
    against = f"; no regression against {baseline}" if comparisons else ""
    return f"{head}: {len(checks)} of {len(checks)} checks passed{against}"


def _more(items: Sequence[object]) -> str:
    return f"; and {len(items) - 1} more" if len(items) > 1 else ""


def _float_or_none(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _pair(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"expected an interval [low, high], got {value!r}")
    return float(value[0]), float(value[1])


def _pair_json(value: tuple[float, float] | None) -> list[float] | None:
    return None if value is None else [value[0], value[1]]
