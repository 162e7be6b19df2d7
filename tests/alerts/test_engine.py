"""The Python PromQL subset and the alert state machine, on hand-computed cases.

(The same semantics are checked against promtool itself in test_promtool.py.)
"""

from __future__ import annotations

import math

import pytest

from alerts.evaluator import AlertState, Evaluator
from alerts.expr import Absent, Aggregate, Arith, Context, Instant, Number, Quantile, Rate
from alerts.selectors import Matcher, Selector, parse_selector
from alerts.specload import parse_spec
from collectors.series import STALE_NAN, Series, SeriesStore


class Points:
    """A source of explicit series: {labels..., "__name__": metric} -> [(t_ms, value)]."""

    def __init__(self, *series: tuple[dict[str, str], list[tuple[int, float]]]) -> None:
        self.series = [Series.of(labels, points) for labels, points in series]

    def select(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        return [s for s in self.series if s.label_map["__name__"] == metric]


def ctx(source: Points, t_s: float) -> Context:
    return Context(source, round(t_s * 1000))


def one(vector: dict[tuple[tuple[str, str], ...], float]) -> float:
    assert len(vector) == 1, vector
    return next(iter(vector.values()))


def test_rate_extrapolates_like_prometheus() -> None:
    # Counter 10 at t=10 s rising 1/s to 50 at 50 s; rate over [0, 60]:
    # increase 40 over 40 s sampled; to start 10 s (> 1.1 x 10 s gap? no: gap is 10 s, 10 < 11:
    # extrapolate fully), zero point 10 s back (first value 10 / slope 1) -> 10 s; end 10 s.
    # Extrapolated interval 60 s -> increase 60, rate 1.0.
    source = Points(({"__name__": "c"}, [(t * 1000, float(t)) for t in range(10, 51, 10)]))
    assert one(Rate(Selector("c"), 60_000).evaluate(ctx(source, 60))) == pytest.approx(1.0)
    # Window [30, 90]: samples 30..50, 20 s sampled; 0 s to start; end 40 s > 1.1 x 10 ->
    # add half a gap (5 s): 25/20 x 20 increase = 25 over 60 s.
    assert one(Rate(Selector("c"), 60_000).evaluate(ctx(source, 90))) == pytest.approx(25 / 60)


def test_rate_corrects_counter_resets_and_needs_two_points() -> None:
    source = Points(({"__name__": "c"}, [(0, 5.0), (10_000, 8.0), (20_000, 2.0),
                                         (30_000, 6.0)]))
    # increase = 6 - 5 + 8 (the value before the reset) = 9 over 30 s sampled; start at 0,
    # end at 30 -> no extrapolation; rate over a 30 s window = 0.3
    assert one(Rate(Selector("c"), 30_000).evaluate(ctx(source, 30))) == pytest.approx(0.3)
    assert Rate(Selector("c"), 5_000).evaluate(ctx(source, 30)) == {}


def test_instant_lookback_and_staleness() -> None:
    source = Points(({"__name__": "g"}, [(0, 1.0), (60_000, 2.0), (120_000, STALE_NAN)]))
    assert one(Instant(Selector("g")).evaluate(ctx(source, 100))) == 2.0
    assert Instant(Selector("g")).evaluate(ctx(source, 120)) == {}  # marked stale
    late = Points(({"__name__": "g"}, [(0, 1.0)]))
    assert one(Instant(Selector("g")).evaluate(ctx(late, 300))) == 1.0  # 5 min lookback, closed
    assert Instant(Selector("g")).evaluate(ctx(late, 300.001)) == {}


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [("0.1", 50.0), ("0.5", 90.0), ("1.0", 100.0), ("+Inf", 100.0)]
    source = Points(*[({"__name__": "h_bucket", "le": le}, [(0, 0.0), (10_000, n)])
                      for le, n in buckets])
    expr = Quantile(0.95, Aggregate("sum", ("le",), Rate(Selector("h_bucket"), 10_000)))
    # rank 95 of 100 lies in (0.5, 1.0] holding 10: 0.5 + 0.5 x 5/10 = 0.75
    assert one(expr.evaluate(ctx(source, 10))) == pytest.approx(0.75)
    empty = Points(*[({"__name__": "h_bucket", "le": le}, [(0, 0.0), (10_000, 0.0)])
                     for le, _ in buckets])
    assert math.isnan(one(expr.evaluate(ctx(empty, 10))))  # no observations: NaN, never fires


def test_division_follows_ieee_and_matching_is_one_to_one() -> None:
    source = Points(({"__name__": "a", "i": "x"}, [(0, 0.0)]), ({"__name__": "a", "i": "y"},
                                                                [(0, 1.0)]),
                    ({"__name__": "b", "i": "x"}, [(0, 0.0)]), ({"__name__": "b", "i": "y"},
                                                                [(0, 0.0)]),
                    ({"__name__": "b", "i": "z"}, [(0, 4.0)]))
    result = Arith("/", Instant(Selector("a")), Instant(Selector("b"))).evaluate(ctx(source, 0))
    assert math.isnan(result[(("i", "x"),)]) and result[(("i", "y"),)] == math.inf
    assert (("i", "z"),) not in result  # no partner on the left
    doubled = Arith("*", Instant(Selector("b")), Number(2)).evaluate(ctx(source, 0))
    assert doubled[(("i", "z"),)] == 8.0


def test_absent_carries_the_equality_matchers() -> None:
    selector = parse_selector('m{job="pitchey", le="0.1", code=~"5.."}')
    assert Absent(selector).evaluate(ctx(Points(), 0)) == {(("job", "pitchey"), ("le", "0.1")): 1.0}
    present = Points(({"__name__": "m", "job": "pitchey", "le": "0.1", "code": "500"}, [(0, 1.0)]))
    assert Absent(selector).evaluate(ctx(present, 0)) == {}


def test_matchers_are_anchored_and_missing_labels_match_empty() -> None:
    assert Matcher("code", "=~", "5..").matches({"code": "500"})
    assert not Matcher("code", "=~", "5..").matches({"code": "5000"})
    assert Matcher("code", "!=", "x").matches({})
    assert Matcher("code", "=", "").matches({})


def test_the_store_adds_job_and_instance_and_keeps_reset_sums() -> None:
    store = SeriesStore(job="pitchey")
    store.add_many([{"t": t, "target": "edge", "metric": "c", "labels": '{"a":"1"}', "value": v}
                    for t, v in ((0, 3.0), (1, 5.0), (2, 1.0), (3, 4.0))])
    (series,) = store.select("c", 0, 3000)
    assert series.label_map == {"__name__": "c", "a": "1", "instance": "edge", "job": "pitchey"}
    assert series.snapshot()[2] == [0.0, 0.0, 5.0, 5.0]


RULE = """
version: 1
rules:
  - name: Broken
    severity: high
    measure: {{kind: gauge, metric: g, aggregate: max, by: [instance]}}
    op: ">"
    threshold: 1
    for: {for_}
    keep_firing_for: {keep}
    annotations: {{summary: 'broken on {{{{ $labels.instance }}}}', runbook: r}}
"""


def _timeline(for_: str, keep: str, values: list[float]) -> list[tuple[str, int]]:
    spec = parse_spec(RULE.format(for_=for_, keep=keep), "s.yaml")
    source = Points(({"__name__": "g", "job": "pitchey", "instance": "a"},
                     [(i * 10_000, v) for i, v in enumerate(values)]))
    evaluator = Evaluator(spec, source)
    changes = []
    for i in range(len(values)):
        changes += [(c.kind, c.at_ms // 1000) for c in evaluator.evaluate(i * 10_000)]
    return changes


def test_pending_for_then_firing_keep_firing_then_resolved() -> None:
    values = [0, 2, 2, 2, 2, 0, 0, 0, 0, 0]
    assert _timeline("20s", "20s", values) == [
        ("pending", 10), ("firing", 30), ("resolved", 70)]  # 50 and 60 kept firing
    assert _timeline("20s", "0s", values) == [("pending", 10), ("firing", 30), ("resolved", 50)]


def test_a_blip_shorter_than_for_is_cancelled_and_for_zero_fires_at_once() -> None:
    assert _timeline("30s", "0s", [0, 2, 2, 0, 0]) == [("pending", 10), ("cancelled", 30)]
    assert _timeline("0s", "0s", [0, 2, 0]) == [("firing", 10), ("resolved", 20)]


def test_keep_firing_is_reset_when_the_condition_returns() -> None:
    # breach, gap of one evaluation (kept), breach again, then a long gap
    values = [2, 2, 0, 2, 0, 0, 0, 0]
    assert _timeline("10s", "20s", values) == [("pending", 0), ("firing", 10), ("resolved", 60)]


def test_alerts_carry_rule_labels_and_rendered_annotations() -> None:
    spec = parse_spec(RULE.format(for_="0s", keep="0s"), "s.yaml")
    source = Points(({"__name__": "g", "job": "pitchey", "instance": "a"}, [(0, 5.0)]))
    evaluator = Evaluator(spec, source)
    (change,) = evaluator.evaluate(0)
    assert change.labels == {"alertname": "Broken", "instance": "a", "severity": "high"}
    assert change.annotations["summary"] == "broken on a"
    assert [a.state for a in evaluator.alerts()] == [AlertState.FIRING]
    with pytest.raises(ValueError, match="backwards"):
        evaluator.evaluate(-1)


def test_a_rate_over_the_store_counts_resets_like_prometheus() -> None:
    """The evaluator reads the store the scraper feeds: samples in epoch seconds, rate() in
    milliseconds, with the counter reset corrected from the store's running sums."""
    store = SeriesStore(job="pitchey")
    for t, value in ((0, 5.0), (10, 8.0), (20, 2.0), (30, 6.0)):
        store.add(float(t), "edge", "c", {}, value)
    vector = Rate(Selector("c"), 30_000).evaluate(Context(store, 30_000))
    assert vector == {(("instance", "edge"), ("job", "pitchey")): pytest.approx(0.3)}
