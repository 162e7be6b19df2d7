"""Test vectors for every rule: input series plus what must (not) fire when.

Built from the spec alone, these vectors are fed both to promtool (as unit tests written next
to the rendered rules) and to the embedded evaluator, so the same series checks both. Each rule
gets scenarios:

- `just_below`: the measure held just on the safe side of the threshold (1% off, or exactly
  at it for gauges, which compare strictly): nothing pending, nothing firing;
- `just_above`: held 1% past the threshold: firing once windows and `for` have passed;
- `step`: quiet, then a clear breach, then quiet again, shaped so the condition starts and
  stops on known evaluations: pending before `for`, firing at `for`, still firing for
  `keep_firing_for` after the condition stops, resolved after;
- `low_traffic` (rules with a minimum-traffic clause): a clear breach at half the minimum
  traffic: silent.

Counters are built by repeated addition, exactly as promtool expands `a+bxn`, so both sides
see bit-identical values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from alerts.evaluator import render_template
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
    Spec,
)
from collectors.series import STALE_NAN, Series

__all__ = ["Check", "InputSeries", "Level", "Scenario", "SeriesBuilder", "VectorSource",
           "rule_interval_ms", "rule_scenarios", "solve_labels"]

MARGIN = 0.01  # "just" above / below: 1% of the threshold
QUIET = None   # a step with no traffic (counters flat) or the measure's safe value


@dataclass
class InputSeries:
    """One series: `values[i]` is the sample at i * interval; None is a missing sample."""

    labels: dict[str, str]
    values: list[float | None]


@dataclass(frozen=True)
class Check:
    """At `t_ms`: exactly these alerts firing (full label sets, alertname included) and, when
    `pending` is not None, exactly these pending."""

    t_ms: int
    firing: tuple[dict[str, str], ...]
    pending: tuple[dict[str, str], ...] | None = ()


@dataclass
class Scenario:
    rule: Rule
    name: str
    description: str
    interval_ms: int
    series: list[InputSeries]
    checks: list[Check] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return max((len(s.values) for s in self.series), default=0)

    def expected_annotations(self, labels: dict[str, str]) -> dict[str, str]:
        return {k: render_template(v, labels) for k, v in self.rule.annotations.items()}


class VectorSource:
    """The scenario's series as an evaluator source."""

    def __init__(self, series: Sequence[InputSeries], interval_ms: int) -> None:
        self._by_metric: dict[str, list[Series]] = {}
        for item in series:
            points = [(i * interval_ms, v) for i, v in enumerate(item.values) if v is not None]
            built = Series.of(item.labels, points)
            self._by_metric.setdefault(item.labels["__name__"], []).append(built)

    def select(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        return self._by_metric.get(metric, [])


# ---- choosing the evaluation interval -----------------------------------------------------------
def rule_interval_ms(rule: Rule) -> int:
    """An interval dividing every duration of the rule, at least 4 steps in the shortest one,
    in whole seconds: promtool samples the series and evaluates the rules at this interval."""
    durations = [d for d in (*rule.windows_ms, rule.for_ms, rule.keep_firing_for_ms) if d]
    if not durations:
        return 60_000
    common = math.gcd(*durations)
    shortest = min(durations)
    for k in itertools.count(1):
        if common % k == 0 and (common // k) % 1000 == 0 and shortest // (common // k) >= 4:
            return common // k
        if common // k < 1000:
            return 1000
    raise AssertionError("unreachable")  # itertools.count never ends


# ---- labels that satisfy (or dodge) selectors ---------------------------------------------------
def solve_labels(spec: Spec, metric: str, must: Sequence[Selector],
                 must_not: Sequence[Selector] = (), extra: Sequence[str] = ()) -> dict[str, str]:
    """Labels for a series named `metric` that every `must` selector matches and every
    `must_not` selector rejects, from the spec's label examples."""
    names = sorted({m.name for s in (*must, *must_not) for m in s.matchers} | set(extra))
    candidates: list[list[str]] = []
    for name in names:
        values = [m.value for s in must for m in s.matchers if m.name == name and m.op == "="]
        values += list(spec.label_examples.get(name, ()))
        candidates.append(list(dict.fromkeys(values + ([""] if name not in extra else []))))
    for combo in itertools.product(*candidates):
        labels = {n: v for n, v in zip(names, combo, strict=True) if v != ""}
        if all(s.matches(labels) for s in must) and not any(
                s.matches(labels) for s in must_not):
            return {"__name__": metric, **labels}
    raise ValueError(f"no label_examples give a {metric} series matching "
                     f"{[s.promql() for s in must]} but not {[s.promql() for s in must_not]}; "
                     f"add example values to the spec's label_examples")


# ---- levels to series ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    """What one step should show: the measure's `value` at `volume` events per second."""

    value: float
    volume: float


def _counter(increments: Sequence[float | None]) -> list[float | None]:
    """Cumulative values from per-step increments by repeated addition (promtool's a+bxn)."""
    values: list[float | None] = []
    total = 0.0
    for i, step in enumerate(increments):
        if i > 0:
            total += step or 0.0
        values.append(total)
    return values


class SeriesBuilder:
    """Turns a per-step list of levels (None = quiet) into the rule's input series."""

    def __init__(self, spec: Spec, rule: Rule, interval_ms: int) -> None:
        self.spec, self.rule, self.interval_s = spec, rule, interval_ms / 1000
        self.by = tuple(getattr(rule.measure, "by", ()))

    def series(self, levels: Sequence[Level | None]) -> list[InputSeries]:
        m = self.rule.measure
        if isinstance(m, GaugeMeasure):
            return [self._gauge(m.selector, [self._gauge_value(lv) for lv in levels])]
        if isinstance(m, GaugeRatioMeasure):
            values = [self._gauge_value(lv) for lv in levels]
            return [self._gauge(m.numerator, values),
                    self._gauge(m.denominator, [1.0] * len(levels))]
        if isinstance(m, RateMeasure):
            return [self._counter_series(m.selector, [], [self._rate_step(lv) for lv in levels])]
        if isinstance(m, RatioMeasure | ErrorRatioMeasure):
            return self._ratio(levels)
        if isinstance(m, QuantileMeasure):
            return self._histogram(m, levels)
        if isinstance(m, ProjectedCostMeasure):
            return [self._counter_series(m.requests, [], [self._cost_step(m, lv)
                                                          for lv in levels])]
        raise TypeError(f"{m.kind} has no level series")

    def safe_gauge(self) -> float:
        assert self.rule.threshold is not None
        return self.rule.threshold  # comparisons are strict: the threshold itself is safe

    def _gauge_value(self, level: Level | None) -> float:
        return self.safe_gauge() if level is None else level.value

    def _labels(self, selector: Selector, must_not: Sequence[Selector] = ()) -> dict[str, str]:
        return solve_labels(self.spec, selector.metric, [selector], must_not, self.by)

    def _gauge(self, selector: Selector, values: list[float]) -> InputSeries:
        return InputSeries(self._labels(selector), list(values))

    def _counter_series(self, selector: Selector, must_not: Sequence[Selector],
                        increments: Sequence[float | None]) -> InputSeries:
        return InputSeries(self._labels(selector, must_not), _counter(increments))

    def _rate_step(self, level: Level | None) -> float | None:
        return None if level is None else level.value * self.interval_s

    def _cost_step(self, m: ProjectedCostMeasure, level: Level | None) -> float | None:
        if level is None:
            return None
        rps = max(0.0, (level.value * m.budget_usd_per_month - m.fixed_usd_per_month)
                  / m.usd_per_month_per_rps)
        return rps * self.interval_s

    def _ratio(self, levels: Sequence[Level | None]) -> list[InputSeries]:
        m = self.rule.measure
        num: Selector | None
        den: Selector
        good: Selector | None
        if isinstance(m, RatioMeasure):
            num, den, good = m.numerator, m.denominator, None
        else:
            assert isinstance(m, ErrorRatioMeasure)
            num, den, good = m.bad, m.total, m.good
        events = [None if lv is None else lv.volume * self.interval_s for lv in levels]
        if good is not None:  # (total - good) / total
            good_steps = [None if lv is None or e is None else (1 - lv.value) * e
                          for lv, e in zip(levels, events, strict=True)]
            return [self._counter_series(den, [], events),
                    self._counter_series(good, [], good_steps)]
        assert num is not None
        hits = [None if lv is None or e is None else lv.value * e
                for lv, e in zip(levels, events, strict=True)]
        if num.metric != den.metric:
            return [self._counter_series(num, [], hits), self._counter_series(den, [], events)]
        misses = [None if lv is None or e is None else (1 - lv.value) * e
                  for lv, e in zip(levels, events, strict=True)]
        # Same metric: the numerator's series are part of the denominator's.
        both = Selector(num.metric, num.matchers + den.matchers)
        return [self._counter_series(both, [], hits), self._counter_series(den, [num], misses)]

    def _histogram(self, m: QuantileMeasure, levels: Sequence[Level | None]) -> list[InputSeries]:
        bounds = [*self.spec.histograms[m.histogram.metric], math.inf]
        steps = [None if lv is None else _bucket_counts(m.quantile, lv.value, bounds,
                                                        lv.volume * self.interval_s)
                 for lv in levels]
        result = []
        for i, bound in enumerate(bounds):
            le = "+Inf" if bound == math.inf else _le_text(bound)
            labels = {**self._labels(m.buckets), "le": le}
            result.append(InputSeries(labels, _counter([None if s is None else s[i]
                                                        for s in steps])))
        count = [None if s is None else s[-1] for s in steps]
        result.append(self._counter_series(m.count, [], count))
        return result


def _le_text(bound: float) -> str:
    """How prometheus_client writes a bucket bound (1.0 -> "1.0", 0.1 -> "0.1")."""
    return repr(float(bound))


def _bucket_counts(q: float, value: float, bounds: list[float], total: float) -> list[float]:
    """Cumulative bucket increments whose q-quantile interpolates to exactly `value`."""
    b = next(i for i, bound in enumerate(bounds) if value <= bound)
    if bounds[b] == math.inf:
        raise ValueError(f"{value} lies in the +Inf bucket; histogram_quantile cannot reach it")
    low = bounds[b - 1] if b > 0 else 0.0
    fraction = (value - low) / (bounds[b] - low)
    for share in (0.5, 0.25, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001):
        inside = total * share
        below = q * total - fraction * inside
        above = total - below - inside
        if below >= 0 and above >= 0 and (b > 0 or below == 0):
            break
    else:
        raise ValueError(f"cannot shape buckets for quantile {q} = {value}")
    return [below if i < b else (below + inside if bound != math.inf else total)
            for i, bound in enumerate(bounds)]


# ---- scenarios ----------------------------------------------------------------------------------
def rule_scenarios(spec: Spec, rule: Rule) -> list[Scenario]:
    interval = rule_interval_ms(rule)
    if isinstance(rule.measure, AbsentMeasure):
        return _absent_scenarios(spec, rule, interval)
    return _ScenarioMaker(spec, rule, interval).all()


class _ScenarioMaker:
    def __init__(self, spec: Spec, rule: Rule, interval_ms: int) -> None:
        assert rule.threshold is not None and rule.op is not None
        self.spec, self.rule, self.interval = spec, rule, interval_ms
        self.builder = SeriesBuilder(spec, rule, interval_ms)
        self.threshold, self.above = rule.threshold, rule.op == ">"
        self.window_steps = max(rule.windows_ms or (0,)) // interval_ms
        self.short_steps = min(rule.windows_ms or (0,)) // interval_ms
        self.for_steps = rule.for_ms // interval_ms
        self.keep_steps = rule.keep_firing_for_ms // interval_ms
        self.counters = bool(rule.windows_ms)
        minimum = rule.min_traffic_rps or 0.0
        self.volume = max(10.0, 4 * minimum)

    def all(self) -> list[Scenario]:
        found = [self.just_below(), self.just_above(), self.step()]
        if self.rule.min_traffic_rps is not None:
            found.append(self.low_traffic())
        return found

    def _expected(self, series: list[InputSeries]) -> dict[str, str]:
        by = getattr(self.rule.measure, "by", ())
        first = series[0].labels
        labels = {name: first[name] for name in by if name in first}
        return {**labels, **self.rule.all_labels, "alertname": self.rule.name}

    def _value(self, side: float) -> float:
        """The threshold moved by `side` x MARGIN towards breaching (+) or safety (-)."""
        direction = 1 if self.above else -1
        return self.threshold * (1 + direction * side * MARGIN)

    def _scenario(self, name: str, text: str, levels: list[Level | None]) -> Scenario:
        return Scenario(self.rule, name, text, self.interval, self.builder.series(levels))

    def just_below(self) -> Scenario:
        counters_safe = self._value(-1)
        safe = self.builder.safe_gauge() if not self.counters else counters_safe
        steps = self.window_steps + self.for_steps + self.keep_steps + 6
        scenario = self._scenario(
            "just_below", f"{self.rule.op} {self.threshold:g}: silent at {safe:.6g}",
            [Level(safe, self.volume)] * steps)
        settled = self.window_steps + 1
        scenario.checks = [Check(t * self.interval, ()) for t in (settled, steps - 1)]
        return scenario

    def just_above(self) -> Scenario:
        value = self._value(+1)
        steps = self.window_steps + self.for_steps + 4
        scenario = self._scenario(
            "just_above", f"{self.rule.op} {self.threshold:g}: fires at {value:.6g}",
            [Level(value, self.volume)] * steps)
        scenario.checks = [Check((steps - 1) * self.interval,
                                 (self._expected(scenario.series),), None)]
        return scenario

    def _clear_breach(self) -> Level:
        """A value well past the threshold, at a volume for which one step's events already
        make the whole window breach (rates read one increment over the full window)."""
        m, t = self.rule.measure, self.threshold
        window_s = min(self.rule.windows_ms or (0,)) / 1000
        if isinstance(m, RatioMeasure | ErrorRatioMeasure):
            value = t + (1 - t) / 2 if self.above else t / 2
        elif isinstance(m, QuantileMeasure):
            value = t * 1.5 if self.above else t / 2
        else:
            value = t * 2 * window_s / (self.interval / 1000) if self.above else t / 2
        minimum = self.rule.min_traffic_rps or 1.0
        volume = max(self.volume, 2 * minimum * window_s / (self.interval / 1000))
        return Level(value, volume)

    def step(self) -> Scenario:
        if self.counters and not self.above and not isinstance(
                self.rule.measure, RatioMeasure | ErrorRatioMeasure | QuantileMeasure):
            raise NotImplementedError(f"{self.rule.name}: a 'below' rule on a plain rate has "
                                      "no quiet level")
        quiet_before, breach = 3, self.for_steps + 3
        clear_steps = self.short_steps if self.counters else 1
        after = clear_steps + self.keep_steps + 4
        breach_level = self._clear_breach() if self.counters else Level(self._value(+5), 0)
        levels = [QUIET] * quiet_before + [breach_level] * breach + [QUIET] * after
        scenario = self._scenario(
            "step", f"breach for {breach} steps: pending, firing after for, keep firing, "
                    f"resolved", levels)
        alert = self._expected(scenario.series)
        start = quiet_before
        off = quiet_before + breach - 1 + clear_steps  # first evaluation the condition fails
        checks = [Check((start - 1) * self.interval, ())]
        if self.for_steps:
            checks += [Check(start * self.interval, (), (alert,)),
                       Check((start + self.for_steps - 1) * self.interval, (), (alert,))]
        checks += [Check((start + self.for_steps) * self.interval, (alert,)),
                   Check((off - 1) * self.interval, (alert,))]
        if self.keep_steps:
            checks += [Check(off * self.interval, (alert,)),
                       Check((off + self.keep_steps - 1) * self.interval, (alert,))]
        checks += [Check((off + self.keep_steps) * self.interval, ()),
                   Check((len(levels) - 1) * self.interval, ())]
        scenario.checks = checks
        return scenario

    def low_traffic(self) -> Scenario:
        assert self.rule.min_traffic_rps is not None
        clear = self._clear_breach()
        level = Level(clear.value, self.rule.min_traffic_rps / 2)
        steps = self.window_steps + self.for_steps + 4
        scenario = self._scenario(
            "low_traffic", f"breach at half the minimum traffic "
                           f"({self.rule.min_traffic_rps / 2:g}/s): silent", [level] * steps)
        scenario.checks = [Check(t * self.interval, ())
                           for t in (self.window_steps + 1, steps - 1)]
        return scenario


def _absent_scenarios(spec: Spec, rule: Rule, interval: int) -> list[Scenario]:
    assert isinstance(rule.measure, AbsentMeasure)
    labels = solve_labels(spec, rule.measure.selector.metric, [rule.measure.selector])
    alert = {**rule.measure.selector.equalities(), **rule.all_labels, "alertname": rule.name}
    for_steps, keep_steps = rule.for_ms // interval, rule.keep_firing_for_ms // interval
    steps = for_steps + 4
    present = Scenario(rule, "present", "the metric is there: silent", interval,
                       [InputSeries(labels, [1.0] * steps)],
                       [Check(t * interval, ()) for t in (0, steps - 1)])
    before, gone, after = 3, for_steps + 3, keep_steps + 4
    values: list[float | None] = [1.0] * before + [STALE_NAN] + [None] * (gone - 1)
    values += [1.0] * after
    step = Scenario(rule, "step", "the metric disappears (stale), then returns", interval,
                    [InputSeries(labels, values)])
    off = before + gone
    checks = [Check((before - 1) * interval, ())]
    if for_steps:
        checks += [Check(before * interval, (), (alert,)),
                   Check((before + for_steps - 1) * interval, (), (alert,))]
    checks += [Check((before + for_steps) * interval, (alert,)),
               Check((off - 1) * interval, (alert,))]
    if keep_steps:
        checks += [Check((off + keep_steps - 1) * interval, (alert,))]
    checks += [Check((off + keep_steps) * interval, ()),
               Check((len(values) - 1) * interval, ())]
    step.checks = checks
    return [present, step]
