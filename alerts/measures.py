"""Each rule's alert expression, built once from its measure.

The same tree is rendered to PromQL for Prometheus and evaluated in Python by the embedded
evaluator (alerts/expr.py), so the two read one definition.
"""

from __future__ import annotations

from alerts.expr import (
    Absent,
    Aggregate,
    And,
    Arith,
    Compare,
    Expr,
    Instant,
    Number,
    Quantile,
    Rate,
)
from alerts.selectors import Selector
from alerts.spec import (
    AbsentMeasure,
    ErrorRatioMeasure,
    GaugeMeasure,
    GaugeRatioMeasure,
    ProjectedCostMeasure,
    QuantileMeasure,
    RateMeasure,
    RatioMeasure,
    Rule,
)

__all__ = ["alert_expression", "measure_expression", "traffic_expression"]


def _sum_rate(selector: Selector, window_ms: int, by: tuple[str, ...] = ()) -> Expr:
    return Aggregate("sum", by, Rate(selector, window_ms))


def measure_expression(rule: Rule, window_ms: int | None = None) -> Expr:
    """What the rule measures (before the threshold), over `window_ms` (default: its first
    window; burn-rate rules have two)."""
    m = rule.measure
    window = window_ms if window_ms is not None else (rule.windows_ms or (0,))[0]
    if isinstance(m, GaugeMeasure):
        return Aggregate(m.aggregate, m.by, Instant(m.selector))
    if isinstance(m, GaugeRatioMeasure):
        return Arith("/", Aggregate("sum", m.by, Instant(m.numerator)),
                     Aggregate("sum", m.by, Instant(m.denominator)))
    if isinstance(m, RateMeasure):
        return _sum_rate(m.selector, window, m.by)
    if isinstance(m, RatioMeasure):
        return Arith("/", _sum_rate(m.numerator, window, m.by),
                     _sum_rate(m.denominator, window, m.by))
    if isinstance(m, QuantileMeasure):
        return Quantile(m.quantile, _sum_rate(m.buckets, window, ("le", *m.by)))
    if isinstance(m, ProjectedCostMeasure):
        monthly = Arith("+", Number(m.fixed_usd_per_month),
                        Arith("*", _sum_rate(m.requests, window), Number(m.usd_per_month_per_rps)))
        return Arith("/", monthly, Number(m.budget_usd_per_month))
    if isinstance(m, ErrorRatioMeasure):
        total = _sum_rate(m.total, window)
        if m.bad is not None:
            return Arith("/", _sum_rate(m.bad, window), total)
        assert m.good is not None
        return Arith("/", Arith("-", total, _sum_rate(m.good, window)), total)
    assert isinstance(m, AbsentMeasure)
    return Absent(m.selector)


def traffic_expression(rule: Rule, window_ms: int) -> Expr | None:
    """Requests (or lookups) per second that the minimum-traffic clause reads, if any."""
    m = rule.measure
    if isinstance(m, RatioMeasure):
        return _sum_rate(m.denominator, window_ms, m.by)
    if isinstance(m, QuantileMeasure):
        return _sum_rate(m.count, window_ms, m.by)
    if isinstance(m, ErrorRatioMeasure):
        return _sum_rate(m.total, window_ms)
    return None


def alert_expression(rule: Rule) -> Expr:
    """The full alert condition: measure vs threshold, every window of a burn-rate alert, and
    the minimum-traffic clause (on the shortest window: traffic now, not an hour ago)."""
    if isinstance(rule.measure, AbsentMeasure):
        return measure_expression(rule)
    assert rule.op is not None and rule.threshold is not None
    windows = rule.windows_ms or (0,)
    condition: Expr = Compare(rule.op, measure_expression(rule, windows[0]), rule.threshold)
    for window in windows[1:]:
        condition = And(condition, Compare(rule.op, measure_expression(rule, window),
                                           rule.threshold))
    traffic = traffic_expression(rule, min(windows))
    if rule.min_traffic_rps is not None and traffic is not None:
        condition = And(condition, Compare(">=", traffic, rule.min_traffic_rps))
    return condition
