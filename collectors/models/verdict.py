"""The headline verdict: does the run show 100,000 users at p95 < 100 ms, within budget?

Six checks, each with its measured number and the target: users reached, p95 overall, p95 of
the worst region, error rate, projected monthly cost and run validity. A check whose data the
run lacks is `ok=None` (unknown), which keeps the verdict from passing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REGION_TARGETS_MS",
    "Check",
    "Measured",
    "Targets",
    "Verdict",
    "evaluate",
    "measured_from_summary",
]

# Seed 003 "Performance Benchmarks - Regional Latencies": what each region claims to achieve.
REGION_TARGETS_MS: Mapping[str, float] = {
    "us-east": 35.0, "us-west": 42.0, "europe": 48.0, "asia": 65.0,
}


@dataclass(frozen=True)
class Targets:
    users: float = 100_000
    p95_ms: float = 100.0
    error_rate: float = 0.001  # seed 003 "Error Rate: <0.1%"
    budget_usd: float = 5000.0  # seed 003 KPIs cost.budget


@dataclass(frozen=True)
class Measured:
    """What the verdict needs from a run, each None when the run lacks it."""

    users_max: float | None = None
    p95_ms: float | None = None
    region_p95_ms: Mapping[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    requests: float | None = None
    monthly_cost_usd: float | None = None
    valid: bool | None = None
    invalid_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    key: str
    label: str
    value: str
    target: str
    ok: bool | None
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passes(self) -> bool:
        return all(c.ok is True for c in self.checks)

    @property
    def status(self) -> str:
        if self.passes:
            return "PASS"
        if any(c.ok is False for c in self.checks):
            return "FAIL"
        return "INCOMPLETE"

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.ok is not True)

    def check(self, key: str) -> Check:
        return next(c for c in self.checks if c.key == key)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _p95(entry: Any) -> float | None:
    if not isinstance(entry, Mapping):
        return None
    latency = entry.get("latency_ms")
    if isinstance(latency, Mapping):
        return _number(latency.get("p95"))
    return _number(entry.get("p95_ms"))


def measured_from_summary(
    summary: Mapping[str, Any], *, monthly_cost_usd: float | None = None,
) -> Measured:
    """Read the verdict's inputs from a summary.json mapping (missing keys become None)."""
    regions = summary.get("by_region")
    region_p95: dict[str, float] = {}
    if isinstance(regions, Mapping):
        for name, entry in regions.items():
            value = _p95(entry)
            if value is not None:
                region_p95[str(name)] = value
    validity = summary.get("validity")
    valid = validity.get("valid") if isinstance(validity, Mapping) else None
    reasons = validity.get("reasons", []) if isinstance(validity, Mapping) else []
    return Measured(
        users_max=_number(summary.get("users_max")),
        p95_ms=_p95(summary),
        region_p95_ms=region_p95,
        error_rate=_number(summary.get("error_rate")),
        requests=_number(summary.get("requests")),
        monthly_cost_usd=monthly_cost_usd,
        valid=valid if isinstance(valid, bool) else None,
        invalid_reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
    )


def _below(value: float | None, limit: float) -> bool | None:
    return None if value is None else value < limit


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:,.1f} ms"


def _users(m: Measured, t: Targets) -> Check:
    ok = None if m.users_max is None else m.users_max >= t.users
    value = "no data" if m.users_max is None else f"{m.users_max:,.0f}"
    share = "" if m.users_max is None else f"{m.users_max / t.users:.2%} of the target"
    return Check("users", "Users reached", value, f">= {t.users:,.0f}", ok, share)


def _p95_overall(m: Measured, t: Targets) -> Check:
    return Check("p95", "p95 overall", _ms(m.p95_ms), f"< {t.p95_ms:g} ms",
                 _below(m.p95_ms, t.p95_ms))


def _p95_worst(m: Measured, t: Targets) -> Check:
    if not m.region_p95_ms:
        return Check("p95_region", "p95 worst region", "no data", f"< {t.p95_ms:g} ms", None,
                     "the run has no per-region latency")
    region, value = max(m.region_p95_ms.items(), key=lambda kv: kv[1])
    return Check("p95_region", "p95 worst region", f"{value:,.1f} ms ({region})",
                 f"< {t.p95_ms:g} ms", value < t.p95_ms)


def _errors(m: Measured, t: Targets) -> Check:
    value = "no data" if m.error_rate is None else f"{m.error_rate:.3%}"
    ok = None if m.error_rate is None or not m.requests else m.error_rate < t.error_rate
    detail = "no requests were made" if m.requests == 0 else ""
    return Check("error_rate", "Error rate", value, f"< {t.error_rate:.1%}", ok, detail)


def _cost(m: Measured, t: Targets) -> Check:
    cost = m.monthly_cost_usd
    value = "no data" if cost is None else f"${cost:,.0f}/month"
    ok = None if cost is None else cost <= t.budget_usd
    return Check("cost", f"Projected cost at {t.users:,.0f} users", value,
                 f"<= ${t.budget_usd:,.0f}/month", ok)


def _validity(m: Measured) -> Check:
    if m.valid is None:
        return Check("validity", "Run validity", "unknown", "valid", None,
                     "the run records no validity (still running, or aborted)")
    detail = "; ".join(m.invalid_reasons)
    return Check("validity", "Run validity", "valid" if m.valid else "invalid", "valid",
                 m.valid, detail)


def evaluate(measured: Measured, targets: Targets | None = None) -> Verdict:
    """The six headline checks for `measured` against `targets`."""
    t = targets or Targets()
    return Verdict((
        _users(measured, t), _p95_overall(measured, t), _p95_worst(measured, t),
        _errors(measured, t), _cost(measured, t), _validity(measured),
    ))
