"""A small PromQL subset with two readings: the PromQL text, and a Python evaluation.

Each alert's expression is built once as a tree of these nodes; `promql()` writes the rule
file and `evaluate()` is the embedded evaluator. The Python side follows Prometheus 2.42's
semantics where they decide whether an alert fires: closed range windows [t - w, t], rate()
extrapolation and counter resets, the 5-minute lookback and staleness markers, one-to-one
vector matching, histogram_quantile's bucket interpolation, absent()'s labels, and IEEE
division (x/0 is +Inf, 0/0 is NaN, NaN compares false).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.selectors import Selector
from collectors.series import Labels, Series, SeriesSource, is_stale

__all__ = [
    "Absent",
    "Aggregate",
    "And",
    "Arith",
    "Compare",
    "Context",
    "Expr",
    "Instant",
    "Number",
    "Quantile",
    "Rate",
    "Vector",
    "format_number",
]

Vector = dict[Labels, float]
DEFAULT_LOOKBACK_MS = 300_000


@dataclass
class Context:
    """One evaluation: the source, the time (ms), the instant-vector lookback, and the
    vectors computed so far (rules share sub-expressions: each is computed once)."""

    source: SeriesSource
    t_ms: int
    lookback_ms: int = DEFAULT_LOOKBACK_MS
    memo: dict[Expr, Vector] = field(default_factory=dict)

    def select(self, selector: Selector, start_ms: int) -> list[Series]:
        matching = getattr(self.source, "matching", None)
        if matching is not None:  # the source caches which series a selector matches
            found: list[Series] = matching(selector, start_ms, self.t_ms)
            return found
        return [s for s in self.source.select(selector.metric, start_ms, self.t_ms)
                if selector.matches(s.label_map)]


def format_number(value: float) -> str:
    """PromQL literal that parses back to exactly `value` (Go's ParseFloat, like repr)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _without_name(labels: Labels) -> Labels:
    return tuple(pair for pair in labels if pair[0] != "__name__")


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


class Expr(ABC):
    @abstractmethod
    def promql(self) -> str: ...

    @abstractmethod
    def evaluate(self, ctx: Context) -> Vector: ...

    def vector(self, ctx: Context) -> Vector:
        """`evaluate`, once per context; callers must not modify the returned vector."""
        found = ctx.memo.get(self)
        if found is None:
            found = ctx.memo[self] = self.evaluate(ctx)
        return found

    def longest_range_ms(self) -> int:
        return max((child.longest_range_ms() for child in self.children()), default=0)

    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True)
class Number(Expr):
    value: float

    def promql(self) -> str:
        return format_number(self.value)

    def evaluate(self, ctx: Context) -> Vector:
        raise TypeError("a number is not a vector")  # only used inside Arith/Compare


@dataclass(frozen=True)
class Instant(Expr):
    """`metric{...}`: each series' latest point at most `lookback` old, unless it is stale."""

    selector: Selector

    def promql(self) -> str:
        return self.selector.promql()

    def evaluate(self, ctx: Context) -> Vector:
        result: Vector = {}
        start = ctx.t_ms - ctx.lookback_ms
        for series in ctx.select(self.selector, start):
            times, values, _, n = series.snapshot()
            i = bisect_right(times, ctx.t_ms, 0, n) - 1
            if i >= 0 and times[i] >= start and not is_stale(values[i]):
                result[series.labels] = values[i]
        return result


@dataclass(frozen=True)
class Rate(Expr):
    """`rate(metric{...}[window])` with Prometheus' extrapolation (promql/functions.go)."""

    selector: Selector
    window_ms: int

    def promql(self) -> str:
        from collectors.units import format_prometheus_duration

        return f"rate({self.selector.promql()}[{format_prometheus_duration(self.window_ms)}])"

    def longest_range_ms(self) -> int:
        return self.window_ms

    def evaluate(self, ctx: Context) -> Vector:
        result: Vector = {}
        start = ctx.t_ms - self.window_ms
        for series in ctx.select(self.selector, start):
            value = self._rate(series, start, ctx.t_ms)
            if value is not None:
                result[series.unnamed] = value
        return result

    def _rate(self, series: Series, start: int, end: int) -> float | None:
        stale_points = series.stale_points
        times, values, resets, n = series.snapshot()
        lo, hi = bisect_left(times, start, 0, n), bisect_right(times, end, 0, n)
        if stale_points:
            points = [(t, v) for t, v in zip(times[lo:hi], values[lo:hi], strict=True)
                      if not is_stale(v)]
            if len(points) < 2:
                return None
            correction, last = 0.0, 0.0
            for _, v in points:
                if v < last:
                    correction += last
                last = v
            first_t, first_v, last_t, last_v = *points[0], *points[-1]
            count = len(points)
        else:
            if hi - lo < 2:
                return None
            correction = resets[hi - 1] - resets[lo]
            first_t, first_v = times[lo], values[lo]
            last_t, last_v = times[hi - 1], values[hi - 1]
            count = hi - lo
        increase = last_v - first_v + correction
        return _extrapolate(increase, first_t, first_v, last_t, count, start, end,
                            self.window_ms)


def _extrapolate(increase: float, first_t: int, first_v: float, last_t: int, count: int,
                 start: int, end: int, window_ms: int) -> float:
    duration_to_start = (first_t - start) / 1000
    duration_to_end = (end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average_gap = sampled / (count - 1)
    if increase > 0 and first_v >= 0:
        # A counter cannot go below zero: do not extrapolate to before its zero point.
        duration_to_zero = sampled * (first_v / increase)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average_gap * 1.1
    interval = sampled
    interval += duration_to_start if duration_to_start < threshold else average_gap / 2
    interval += duration_to_end if duration_to_end < threshold else average_gap / 2
    return increase * (interval / sampled) / (window_ms / 1000)


@dataclass(frozen=True)
class Aggregate(Expr):
    """`sum|max|min by (labels) (inner)`."""

    op: str
    by: tuple[str, ...]
    inner: Expr

    def promql(self) -> str:
        by = f" by ({', '.join(self.by)})" if self.by else ""
        return f"{self.op}{by} ({self.inner.promql()})"

    def children(self) -> tuple[Expr, ...]:
        return (self.inner,)

    def evaluate(self, ctx: Context) -> Vector:
        groups: Vector = {}
        by = self.by
        for labels, value in self.inner.vector(ctx).items():  # in the source's series order
            key = tuple(pair for pair in labels if pair[0] in by) if by else ()
            if key not in groups:
                groups[key] = value
            elif self.op == "sum":
                groups[key] += value
            elif self.op == "max":
                if groups[key] < value or groups[key] != groups[key]:
                    groups[key] = value
            elif groups[key] > value or groups[key] != groups[key]:  # min
                groups[key] = value
        return groups


@dataclass(frozen=True)
class Quantile(Expr):
    """`histogram_quantile(q, inner)`; inner carries an `le` label per bucket."""

    q: float
    inner: Expr

    def promql(self) -> str:
        return f"histogram_quantile({format_number(self.q)}, {self.inner.promql()})"

    def children(self) -> tuple[Expr, ...]:
        return (self.inner,)

    def evaluate(self, ctx: Context) -> Vector:
        histograms: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in self.inner.vector(ctx).items():
            le = dict(labels).get("le")
            try:
                bound = float(le) if le is not None else None
            except ValueError:
                bound = None
            if bound is None:
                continue
            key = tuple(pair for pair in _without_name(labels) if pair[0] != "le")
            histograms.setdefault(key, []).append((bound, value))
        return {key: bucket_quantile(self.q, buckets) for key, buckets in histograms.items()}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """promql/quantile.go bucketQuantile: linear interpolation inside the rank's bucket."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or ordered[-1][0] != math.inf:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:  # coalesce equal bounds
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:  # ensure monotonic counts
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


@dataclass(frozen=True)
class Arith(Expr):
    """`lhs op rhs` over vectors (one-to-one on all labels) or a vector and a number."""

    op: str
    lhs: Expr
    rhs: Expr

    def promql(self) -> str:
        return f"({self.lhs.promql()} {self.op} {self.rhs.promql()})"

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs, self.rhs)

    def evaluate(self, ctx: Context) -> Vector:
        apply = _ARITH[self.op]
        if isinstance(self.rhs, Number):
            return {_without_name(k): apply(v, self.rhs.value)
                    for k, v in self.lhs.vector(ctx).items()}
        if isinstance(self.lhs, Number):
            return {_without_name(k): apply(self.lhs.value, v)
                    for k, v in self.rhs.vector(ctx).items()}
        right = {_without_name(k): v for k, v in self.rhs.vector(ctx).items()}
        result: Vector = {}
        for labels, value in self.lhs.vector(ctx).items():
            key = _without_name(labels)
            if key in right:
                result[key] = apply(value, right[key])
        return result


@dataclass(frozen=True)
class Compare(Expr):
    """`vector op number` as a filter: keeps the elements for which it holds."""

    op: str
    lhs: Expr
    threshold: float

    def promql(self) -> str:
        return f"{self.lhs.promql()} {self.op} {format_number(self.threshold)}"

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs,)

    def evaluate(self, ctx: Context) -> Vector:
        holds = _COMPARE[self.op]
        return {k: v for k, v in self.lhs.vector(ctx).items() if holds(v, self.threshold)}


@dataclass(frozen=True)
class And(Expr):
    """`lhs and rhs`: elements of lhs whose labels (without the name) appear in rhs."""

    lhs: Expr
    rhs: Expr

    def promql(self) -> str:
        return f"({self.lhs.promql()})\nand\n({self.rhs.promql()})"

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs, self.rhs)

    def evaluate(self, ctx: Context) -> Vector:
        left = self.lhs.vector(ctx)
        if not left:
            return {}
        keys = {_without_name(k) for k in self.rhs.vector(ctx)}
        return {k: v for k, v in left.items() if _without_name(k) in keys}


@dataclass(frozen=True)
class Absent(Expr):
    """`absent(selector)`: one element (labelled by the `=` matchers) when nothing matches."""

    selector: Selector

    def promql(self) -> str:
        return f"absent({self.selector.promql()})"

    def evaluate(self, ctx: Context) -> Vector:
        if Instant(self.selector).vector(ctx):
            return {}
        return {tuple(sorted(self.selector.equalities().items())): 1.0}
