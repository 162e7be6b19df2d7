"""The verdict a run recorded, as the views read it (the dashboard header, the HTML report).

The gate (`gate.evaluation`) is the only judge of a run: it writes its verdict into the run
directory's summary.json under "verdict" (the "pitchey-verdict" format, version 1). This module
only reads that JSON back into typed records for display; it never judges, and it imports
nothing but the standard library, so `collectors` stays below `gate` and `dashboards`.

`read_verdict(summary)` is None when the run has no verdict yet (an older run, or one still
being written) and raises `VerdictFormatError` when the key is there but cannot be read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "FORMAT",
    "HEADLINES",
    "NO_VERDICT",
    "VERSION",
    "CheckRecord",
    "ComparisonRecord",
    "JudgedWindow",
    "ProjectionRecord",
    "RecordedVerdict",
    "VerdictFormatError",
    "number_text",
    "read_verdict",
    "unique_slugs",
]

FORMAT = "pitchey-verdict"
VERSION = 1
# status -> headline, in the contract's order of precedence (invalid > breach > regression).
HEADLINES: Mapping[str, str] = {
    "invalid": "INVALID", "breach": "FAIL", "regression": "REGRESSION", "pass": "PASS",
}
NO_VERDICT = "no verdict yet: the gate judges a run when it ends (pitchey gate RUN_DIR)"


class VerdictFormatError(ValueError):
    """summary.json has a "verdict" that is not a readable pitchey-verdict."""


@dataclass(frozen=True)
class _Scoped:
    name: str
    scope_label: str

    @property
    def key(self) -> str:
        """The name and scope, e.g. "p95 < 100ms region=asia" (unique in a verdict)."""
        return f"{self.name} {self.scope_label}".strip()


@dataclass(frozen=True)
class CheckRecord(_Scoped):
    """One measured check: what was measured, the limit, where the limit comes from."""

    metric: str
    measured: float | None
    measured_text: str
    limit_text: str
    ok: bool
    samples: int | None
    source: str
    message: str
    note: str = ""  # why there is no measurement, or what stopped the run


@dataclass(frozen=True)
class ComparisonRecord(_Scoped):
    """One comparison with the baseline."""

    current_text: str
    baseline_text: str
    margin_text: str
    ok: bool
    verdict: str
    message: str


@dataclass(frozen=True)
class ProjectionRecord:
    """A model's answer (capacity, cost) for the product targets: never a measurement."""

    name: str
    text: str
    value: float | None
    low: float | None
    high: float | None
    unit: str
    limit: float | None
    ok: bool | None
    assumptions: tuple[str, ...]
    available: bool
    reason: str

    @property
    def range_text(self) -> str:
        """"10-15 instances", or "" when the model gives no interval."""
        if self.low is None or self.high is None:
            return ""
        return f"{number_text(self.low)}-{number_text(self.high)} {self.unit}".strip()

    @property
    def shown_text(self) -> str:
        """The projection, or why the run cannot support one."""
        return self.text if self.available else f"not available: {self.reason}"


@dataclass(frozen=True)
class JudgedWindow:
    """The part of the run the gate judged (epoch seconds)."""

    start: float | None
    end: float | None
    warmup_s: float | None
    duration_s: float | None

    @property
    def text(self) -> str:
        """"120 s judged, 12:00:30-12:02:30 UTC (after a 30 s warm-up)"."""
        parts = []
        if self.duration_s is not None:
            parts.append(f"{number_text(self.duration_s)} s judged")
        if self.start is not None and self.end is not None:
            parts.append(f"{_utc(self.start)} to {_utc(self.end)} UTC")
        if self.warmup_s is not None:
            parts.append(f"after a {number_text(self.warmup_s)} s warm-up")
        return ", ".join(parts) if parts else "window not recorded"


@dataclass(frozen=True)
class RecordedVerdict:
    """The gate's verdict of one run, exactly as summary.json records it."""

    status: str
    exit_code: int
    headline: str
    line: str
    evaluated_at: str
    window: JudgedWindow
    valid: bool
    invalid_reasons: tuple[str, ...]
    checks: tuple[CheckRecord, ...]
    comparisons: tuple[ComparisonRecord, ...]
    baseline_source: str | None
    projections: tuple[ProjectionRecord, ...]
    capacity_line: str = ""  # what the run measured of one instance's capacity, if anything

    @property
    def failed_checks(self) -> tuple[CheckRecord, ...]:
        return tuple(c for c in self.checks if not c.ok)


def number_text(value: float) -> str:
    """12 -> "12", 12.5 -> "12.5", 12345.6 -> "12,346"."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


# reading -------------------------------------------------------------------------------------
def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value)


def _number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _flag(raw: Mapping[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    return value if isinstance(value, bool) else None


def _records(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(
            isinstance(item, Mapping) for item in value):
        raise VerdictFormatError(f'"{key}" is not a list of objects')
    return list(value)


def _scope_label(raw: Mapping[str, Any]) -> str:
    label = raw.get("scope_label")
    if isinstance(label, str):
        return label
    scope = raw.get("scope")
    if isinstance(scope, Mapping):
        return " ".join(f"{k}={v}" for k, v in scope.items())
    return ""


def _check(raw: Mapping[str, Any]) -> CheckRecord:
    samples = _number(raw, "samples")
    return CheckRecord(
        name=_text(raw, "name"), scope_label=_scope_label(raw), metric=_text(raw, "metric"),
        measured=_number(raw, "measured"), measured_text=_text(raw, "measured_text"),
        limit_text=_text(raw, "limit_text"), ok=_flag(raw, "ok") is True,
        samples=None if samples is None else int(samples), source=_text(raw, "source"),
        message=_text(raw, "message"), note=_text(raw, "note"))


def _comparison(raw: Mapping[str, Any]) -> ComparisonRecord:
    return ComparisonRecord(
        name=_text(raw, "name"), scope_label=_scope_label(raw),
        current_text=_text(raw, "current_text"), baseline_text=_text(raw, "baseline_text"),
        margin_text=_text(raw, "margin_text"), ok=_flag(raw, "ok") is True,
        verdict=_text(raw, "verdict"), message=_text(raw, "message"))


def _projection(raw: Mapping[str, Any]) -> ProjectionRecord:
    assumptions = raw.get("assumptions") or []
    if isinstance(assumptions, str) or not isinstance(assumptions, Sequence):
        raise VerdictFormatError('a projection\'s "assumptions" is not a list')
    return ProjectionRecord(
        name=_text(raw, "name"), text=_text(raw, "text"), value=_number(raw, "value"),
        low=_number(raw, "low"), high=_number(raw, "high"), unit=_text(raw, "unit"),
        limit=_number(raw, "limit"), ok=_flag(raw, "ok"),
        assumptions=tuple(str(a) for a in assumptions),
        available=_flag(raw, "available") is not False, reason=_text(raw, "reason"))


def _window(raw: Any) -> JudgedWindow:
    if not isinstance(raw, Mapping):
        return JudgedWindow(None, None, None, None)
    return JudgedWindow(_number(raw, "start"), _number(raw, "end"), _number(raw, "warmup_s"),
                        _number(raw, "duration_s"))


def _validity(raw: Any) -> tuple[bool, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        return True, ()
    reasons = raw.get("reasons") or []
    return raw.get("valid") is not False, tuple(str(r) for r in reasons)


def read_verdict(summary: Mapping[str, Any] | None) -> RecordedVerdict | None:
    """The verdict recorded in a summary.json mapping; None when there is none."""
    if summary is None or summary.get("verdict") is None:
        return None
    raw = summary["verdict"]
    if not isinstance(raw, Mapping):
        raise VerdictFormatError('"verdict" is not an object')
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise VerdictFormatError(f'"verdict" is {raw.get("format")!r} version '
                                 f"{raw.get('version')!r}, not {FORMAT} version {VERSION}")
    status = raw.get("status")
    if status not in HEADLINES:
        raise VerdictFormatError(f"unknown verdict status {status!r}")
    code = _number(raw, "exit_code")
    valid, reasons = _validity(raw.get("validity"))
    baseline = raw.get("baseline")
    return RecordedVerdict(
        status=str(status), exit_code=int(code) if code is not None else -1,
        headline=_text(raw, "headline") or HEADLINES[str(status)], line=_text(raw, "line"),
        evaluated_at=_text(raw, "evaluated_at"), window=_window(raw.get("window")),
        valid=valid, invalid_reasons=reasons,
        checks=tuple(_check(c) for c in _records(raw, "checks")),
        comparisons=tuple(_comparison(c) for c in _records(raw, "comparisons")),
        baseline_source=(str(baseline.get("source")) if isinstance(baseline, Mapping)
                         else None),
        projections=tuple(_projection(p) for p in _records(raw, "projections")),
        capacity_line=(_text(raw["capacity"], "line")
                       if isinstance(raw.get("capacity"), Mapping) else ""),
    )


_SLUG = re.compile(r"[^a-z0-9]+")


def unique_slugs(keys: Sequence[str]) -> list[str]:
    """Id-safe, distinct forms of keys, in order: "p95 < 100ms region=asia" ->
    "p95-100ms-region-asia"; a second key with the same form gets "-2", and so on."""
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        base = _SLUG.sub("-", key.lower()).strip("-") or "x"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out
