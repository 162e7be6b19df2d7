"""Running the embedded evaluator over test vectors, and turning its answers into promtool tests.

Two ways the evaluator and Prometheus are held to each other:

1. both must pass each scenario's designed checks (`scenario_failures` here; the rendered
   promtool tests there);
2. the evaluator's full timeline — which alerts are pending and firing at every evaluation —
   is written as promtool checks (`timeline_scenario`) and promtool must pass them, on the
   designed scenarios and on random ones (`random_scenario`: noisy levels, counter resets,
   missing samples, staleness markers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from alerts.evaluator import AlertState, Evaluator
from alerts.spec import AbsentMeasure, ErrorRatioMeasure, QuantileMeasure, RatioMeasure, Rule, Spec
from alerts.vectors import (
    Check,
    InputSeries,
    Level,
    Scenario,
    SeriesBuilder,
    VectorSource,
    rule_interval_ms,
    solve_labels,
)
from collectors.series import STALE_NAN

__all__ = ["StepState", "random_scenario", "run_scenario", "scenario_failures",
           "timeline_scenario"]


@dataclass(frozen=True)
class StepState:
    t_ms: int
    firing: tuple[tuple[tuple[str, str], ...], ...]
    pending: tuple[tuple[tuple[str, str], ...], ...]


def run_scenario(spec: Spec, scenario: Scenario) -> list[StepState]:
    """The evaluator's state after each evaluation at 0, I, 2I, ... (promtool's schedule)."""
    evaluator = Evaluator(spec.only(scenario.rule.name),
                          VectorSource(scenario.series, scenario.interval_ms))
    timeline = []
    for step in range(scenario.steps):
        t_ms = step * scenario.interval_ms
        evaluator.evaluate(t_ms)
        firing = tuple(sorted(a.key for a in evaluator.alerts(AlertState.FIRING)))
        pending = tuple(sorted(a.key for a in evaluator.alerts(AlertState.PENDING)))
        timeline.append(StepState(t_ms, firing, pending))
    return timeline


def _keys(alerts: tuple[dict[str, str], ...]) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(sorted(tuple(sorted(a.items())) for a in alerts))


def scenario_failures(spec: Spec, scenario: Scenario) -> list[str]:
    """Checks of the scenario that the evaluator does not meet (empty: it agrees)."""
    by_time = {state.t_ms: state for state in run_scenario(spec, scenario)}
    failures = []
    for check in scenario.checks:
        state = by_time.get(check.t_ms)
        label = f"{scenario.rule.name} {scenario.name} at {check.t_ms / 1000:g}s"
        if state is None:
            failures.append(f"{label}: the scenario has no evaluation at that time")
            continue
        if state.firing != _keys(check.firing):
            failures.append(f"{label}: firing {state.firing}, expected {_keys(check.firing)}")
        if check.pending is not None and state.pending != _keys(check.pending):
            failures.append(f"{label}: pending {state.pending}, "
                            f"expected {_keys(check.pending)}")
    return failures


def timeline_scenario(spec: Spec, scenario: Scenario) -> Scenario:
    """The scenario with its checks replaced by the evaluator's state at every evaluation."""
    checks = [Check(state.t_ms, tuple(dict(k) for k in state.firing),
                    tuple(dict(k) for k in state.pending))
              for state in run_scenario(spec, scenario)]
    return replace(scenario, name=f"{scenario.name} (evaluator timeline)", checks=checks)


def random_scenario(spec: Spec, rule: Rule, seed: int) -> Scenario:
    """Noisy series around the rule's threshold, with resets, gaps and staleness markers."""
    rng = random.Random(seed)
    interval = rule_interval_ms(rule)
    window_steps = max(rule.windows_ms or (0,)) // interval
    steps = window_steps + (rule.for_ms + rule.keep_firing_for_ms) // interval + 40
    if isinstance(rule.measure, AbsentMeasure):
        series = [InputSeries(solve_labels(spec, rule.measure.selector.metric,
                                           [rule.measure.selector]), _presence(rng, steps))]
    else:
        levels = _random_levels(rng, rule, steps)
        series = SeriesBuilder(spec, rule, interval).series(levels)
        if rule.windows_ms:
            for item in series:
                _disturb_counter(rng, item)
    return Scenario(rule, f"random seed {seed}", "noisy series around the threshold",
                    interval, series)


def _random_levels(rng: random.Random, rule: Rule, steps: int) -> list[Level | None]:
    assert rule.threshold is not None
    is_ratio = isinstance(rule.measure, RatioMeasure | ErrorRatioMeasure)
    minimum = rule.min_traffic_rps or 1.0
    levels: list[Level | None] = []
    while len(levels) < steps:
        run = rng.randint(1, 12)
        if rng.random() < 0.15 and rule.windows_ms:
            levels.extend([None] * run)
            continue
        value = rule.threshold * rng.uniform(0.6, 1.6)
        if is_ratio:
            value = min(value, 1.0)
        if isinstance(rule.measure, QuantileMeasure):
            value = min(value, 9.5)
        volume = minimum * rng.uniform(0.3, 4.0)
        levels.extend([Level(value, volume)] * run)
    return levels[:steps]


def _disturb_counter(rng: random.Random, item: InputSeries) -> None:
    values = item.values
    if len(values) > 10 and rng.random() < 0.5:  # a counter reset (process restart)
        k = rng.randrange(5, len(values))
        base = values[k - 1]
        if base is not None:
            for j in range(k, len(values)):
                value = values[j]
                values[j] = None if value is None else value - base
    for j in range(1, len(values)):
        if rng.random() < 0.04:
            values[j] = None  # a missed scrape


def _presence(rng: random.Random, steps: int) -> list[float | None]:
    values: list[float | None] = []
    present = True
    while len(values) < steps:
        run = rng.randint(1, 10)
        if present:
            values.extend([1.0] * run)
        else:
            values.extend([STALE_NAN] + [None] * (run - 1))
        present = not present
    return values[:steps]
