"""The embedded evaluator: the spec's rules over a series source, with Prometheus' alert states.

Pure core: `Evaluator.evaluate(t_ms)` reads the source at one instant and returns what changed.
Whoever calls it owns the clock (live: every second; replay: stepping through a finished run;
tests: any schedule). The state machine is Prometheus 2.42's (rules/alerting.go): an alert is
pending from the first evaluation its condition holds, fires once it has held for `for`, and
when the condition stops holding a firing alert keeps firing until `keep_firing_for` has
passed since the first evaluation that missed; a pending alert is dropped at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from alerts.expr import DEFAULT_LOOKBACK_MS, Context, Expr
from alerts.measures import alert_expression
from alerts.spec import Rule, Spec
from collectors.series import Labels, SeriesSource, freeze_labels

__all__ = ["Alert", "AlertState", "Evaluator", "RuleState", "Transition", "render_template"]

_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


class AlertState(Enum):
    PENDING = "pending"
    FIRING = "firing"
    INACTIVE = "inactive"


def render_template(text: str, labels: Mapping[str, str]) -> str:
    """`{{ $labels.name }}` substitution, the only template form the spec allows."""
    return _TEMPLATE.sub(lambda m: labels.get(m.group(1), "<no value>"), text)


@dataclass
class Alert:
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at_ms: int
    value: float
    state: AlertState = AlertState.PENDING
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    keep_firing_since_ms: int | None = None

    @property
    def key(self) -> Labels:
        return freeze_labels(self.labels)


@dataclass(frozen=True)
class Transition:
    """An alert changed state at `at_ms`: pending, firing, resolved (was firing), or
    cancelled (was pending, condition went away before `for`)."""

    kind: str
    at_ms: int
    rule: str
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active_at_ms: int
    fired_at_ms: int | None
    value: float

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items())
                          if k not in ("alertname", "severity"))
        value = "" if math.isnan(self.value) else f" value={self.value:.6g}"
        return f"{self.kind.upper():9} {self.rule} [{self.severity}] {{{shown}}}{value}"


@dataclass
class RuleState:
    """One rule's active alerts, keyed by their label set."""

    rule: Rule
    expression: Expr
    active: dict[Labels, Alert] = field(default_factory=dict)

    def step(self, t_ms: int, result: Mapping[Labels, float]) -> list[Transition]:
        seen: set[Labels] = set()
        new: list[Labels] = []
        for series_labels, value in result.items():
            labels = {k: v for k, v in series_labels if k != "__name__"}
            annotations = {k: render_template(v, labels)
                           for k, v in self.rule.annotations.items()}
            labels.update(self.rule.all_labels)
            labels["alertname"] = self.rule.name
            key = freeze_labels(labels)
            seen.add(key)
            alert = self.active.get(key)
            if alert is not None and alert.state is not AlertState.INACTIVE:
                alert.value, alert.annotations = value, annotations
                continue
            self.active[key] = Alert(self.rule.name, labels, annotations, t_ms, value)
            new.append(key)
        later: list[Transition] = []
        for key, alert in list(self.active.items()):
            later.extend(self._advance(t_ms, key, alert, key in seen))
        # New alerts still pending after this evaluation (a `for: 0s` one fired at once).
        pending = [self._transition("pending", t_ms, self.active[key]) for key in new
                   if self.active[key].state is AlertState.PENDING]
        return pending + later

    def _advance(self, t_ms: int, key: Labels, alert: Alert, holds: bool) -> list[Transition]:
        if not holds:
            keep_firing = False
            if alert.state is AlertState.FIRING and self.rule.keep_firing_for_ms > 0:
                if alert.keep_firing_since_ms is None:
                    alert.keep_firing_since_ms = t_ms
                keep_firing = t_ms - alert.keep_firing_since_ms < self.rule.keep_firing_for_ms
            if keep_firing:
                return []
            del self.active[key]
            if alert.state is AlertState.FIRING:
                alert.state, alert.resolved_at_ms = AlertState.INACTIVE, t_ms
                return [self._transition("resolved", t_ms, alert)]
            if alert.state is AlertState.PENDING:
                return [self._transition("cancelled", t_ms, alert)]
            return []
        alert.keep_firing_since_ms = None
        if alert.state is AlertState.PENDING and t_ms - alert.active_at_ms >= self.rule.for_ms:
            alert.state, alert.fired_at_ms = AlertState.FIRING, t_ms
            return [self._transition("firing", t_ms, alert)]
        return []

    def _transition(self, kind: str, t_ms: int, alert: Alert) -> Transition:
        return Transition(kind, t_ms, self.rule.name, self.rule.severity, dict(alert.labels),
                          dict(alert.annotations), alert.active_at_ms, alert.fired_at_ms,
                          alert.value)


class Evaluator:
    """Every rule of a spec over one source. Not thread-safe: one caller owns it."""

    def __init__(self, spec: Spec, source: SeriesSource, *,
                 lookback_ms: int = DEFAULT_LOOKBACK_MS) -> None:
        self.spec = spec
        self.source = source
        self.lookback_ms = lookback_ms
        self.rules = [RuleState(rule, alert_expression(rule)) for rule in spec.rules]
        self.last_t_ms: int | None = None

    def evaluate(self, t_ms: int) -> list[Transition]:
        """Evaluate every rule at `t_ms` (times must not go backwards)."""
        if self.last_t_ms is not None and t_ms < self.last_t_ms:
            raise ValueError(f"evaluation time went backwards: {t_ms} < {self.last_t_ms}")
        self.last_t_ms = t_ms
        ctx = Context(self.source, t_ms, self.lookback_ms)
        changes: list[Transition] = []
        for state in self.rules:
            changes.extend(state.step(t_ms, state.expression.vector(ctx)))
        return changes

    def alerts(self, state: AlertState | None = None) -> list[Alert]:
        """Active alerts (pending and firing), optionally of one state."""
        found = [a for rs in self.rules for a in rs.active.values()
                 if state is None or a.state is state]
        return sorted(found, key=lambda a: (a.rule, a.key))

    def firing(self) -> list[Alert]:
        return self.alerts(AlertState.FIRING)
