"""The alert spec as typed objects: what `alerts/rules.yaml` says once it has been checked.

A `Rule` is one alert, whatever its origin in the file (a threshold rule, a burn-rate alert
of an SLO, or an SLO's absent-metric alert): everything downstream (PromQL rendering, the
embedded evaluator, promtool test vectors) works on rules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from alerts.selectors import Selector
from collectors.units import format_prometheus_duration

__all__ = [
    "AbsentMeasure",
    "ErrorRatioMeasure",
    "GaugeMeasure",
    "GaugeRatioMeasure",
    "Measure",
    "ProjectedCostMeasure",
    "QuantileMeasure",
    "RateMeasure",
    "RatioMeasure",
    "Route",
    "Rule",
    "SECONDS_PER_MONTH",
    "SEVERITIES",
    "Spec",
]

SEVERITIES = ("critical", "high", "medium")
SECONDS_PER_MONTH = 30 * 86_400  # the cost projection's month, as in the pricing reference


@dataclass(frozen=True)
class GaugeMeasure:
    """An aggregate of a gauge's latest values, e.g. max(pitchey_db_up)."""

    selector: Selector
    aggregate: str  # max | min | sum
    by: tuple[str, ...] = ()
    kind: str = "gauge"


@dataclass(frozen=True)
class GaugeRatioMeasure:
    """sum(numerator) / sum(denominator) of two gauges, e.g. pool in use / pool size."""

    numerator: Selector
    denominator: Selector
    by: tuple[str, ...] = ()
    kind: str = "gauge_ratio"


@dataclass(frozen=True)
class RateMeasure:
    """sum of per-second rates of a counter over the window, e.g. CPU seconds per second."""

    selector: Selector
    by: tuple[str, ...] = ()
    kind: str = "rate"


@dataclass(frozen=True)
class RatioMeasure:
    """rate(numerator) / rate(denominator) over the window, e.g. 5xx / all requests."""

    numerator: Selector
    denominator: Selector
    by: tuple[str, ...] = ()
    kind: str = "ratio"


@dataclass(frozen=True)
class QuantileMeasure:
    """histogram_quantile over the window's bucket rates; `histogram` names the base metric."""

    histogram: Selector
    quantile: float
    by: tuple[str, ...] = ()
    kind: str = "quantile"

    @property
    def buckets(self) -> Selector:
        return self.histogram.renamed(self.histogram.metric + "_bucket")

    @property
    def count(self) -> Selector:
        return self.histogram.renamed(self.histogram.metric + "_count")


@dataclass(frozen=True)
class ProjectedCostMeasure:
    """Projected monthly cost as a share of the budget, from the request rate:
    (fixed + rate(requests) * SECONDS_PER_MONTH * usd_per_request) / budget."""

    requests: Selector
    usd_per_million_requests: float
    fixed_usd_per_month: float
    budget_usd_per_month: float
    kind: str = "projected_cost"

    @property
    def usd_per_month_per_rps(self) -> float:
        return SECONDS_PER_MONTH * self.usd_per_million_requests / 1e6


@dataclass(frozen=True)
class ErrorRatioMeasure:
    """An SLO's bad-event ratio: bad/total, or (total - good)/total."""

    slo: str
    objective: float
    burn_rate: float
    total: Selector
    bad: Selector | None = None
    good: Selector | None = None
    kind: str = "error_ratio"


@dataclass(frozen=True)
class AbsentMeasure:
    """True while no series matches the selector (a broken or renamed metric)."""

    selector: Selector
    kind: str = "absent"


Measure = (GaugeMeasure | GaugeRatioMeasure | RateMeasure | RatioMeasure | QuantileMeasure
           | ProjectedCostMeasure | ErrorRatioMeasure | AbsentMeasure)


def scale(ms: int, factor: float) -> int:
    """`ms` times `factor`, at least one second unless it was zero."""
    return max(1000, round(ms * factor)) if ms else 0


@dataclass(frozen=True)
class Rule:
    """One alert. `op`/`threshold` are None for absent-metric alerts; `windows_ms` holds one
    window for rate-based measures, (long, short) for burn-rate alerts, none for gauges."""

    name: str
    group: str
    severity: str
    measure: Measure
    op: str | None
    threshold: float | None
    for_ms: int
    keep_firing_for_ms: int
    windows_ms: tuple[int, ...]
    min_traffic_rps: float | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    origin: str = ""

    @property
    def all_labels(self) -> dict[str, str]:
        """The labels the rule adds to every alert it raises (severity included)."""
        return {**self.labels, "severity": self.severity}

    def describe(self) -> str:
        text = format_prometheus_duration
        windows = "/".join(text(w) for w in self.windows_ms)
        condition = "absent" if self.op is None else f"{self.op} {self.threshold:g}"
        return (f"{self.name} [{self.severity}] {self.measure.kind} {condition}"
                f"{' over ' + windows if windows else ''}, for {text(self.for_ms)}, "
                f"keep firing {text(self.keep_firing_for_ms)}")

    def scaled(self, factor: float) -> Rule:
        return replace(self, for_ms=scale(self.for_ms, factor),
                       keep_firing_for_ms=scale(self.keep_firing_for_ms, factor),
                       windows_ms=tuple(scale(w, factor) for w in self.windows_ms))


@dataclass(frozen=True)
class Route:
    """How the embedded notifier groups alerts (Alertmanager's route fields)."""

    receiver: str = "pitchey"
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_ms: int = 0
    group_interval_ms: int = 60_000
    repeat_interval_ms: int = 4 * 3_600_000
    send_resolved: bool = True


@dataclass(frozen=True)
class Spec:
    path: str
    job: str
    evaluation_interval_ms: int
    rules: tuple[Rule, ...]
    histograms: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    label_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    route: Route = field(default_factory=Route)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(f"no rule named {name!r} in {self.path}")

    def groups(self) -> dict[str, list[Rule]]:
        grouped: dict[str, list[Rule]] = {}
        for rule in self.rules:
            grouped.setdefault(rule.group, []).append(rule)
        return grouped

    def scaled(self, factor: float) -> Spec:
        """Every window, `for`, `keep_firing_for` and notification interval multiplied by
        `factor` (at least 1 s): for demonstrations and tests against real servers that must
        not wait minutes."""
        if factor <= 0:
            raise ValueError(f"time scale must be positive, got {factor}")
        route = replace(self.route, group_wait_ms=scale(self.route.group_wait_ms, factor),
                        group_interval_ms=scale(self.route.group_interval_ms, factor),
                        repeat_interval_ms=scale(self.route.repeat_interval_ms, factor))
        return replace(self, rules=tuple(rule.scaled(factor) for rule in self.rules),
                       route=route)

    def only(self, *names: str) -> Spec:
        return replace(self, rules=tuple(self.rule(name) for name in names))

    def longest_window_ms(self) -> int:
        return max((w for rule in self.rules for w in rule.windows_ms), default=0)
