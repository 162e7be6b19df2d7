"""Threshold strings and scenario gate blocks: what parses, what is refused and how it is named."""

from __future__ import annotations

import pytest

from gate.thresholds import (
    GateSpec,
    MetricKind,
    ThresholdError,
    parse_duration,
    parse_gate_spec,
    parse_threshold,
    parse_thresholds,
)


@pytest.mark.parametrize(
    ("text", "metric", "kind", "op", "limit"),
    [
        ("p95 < 100ms", "p95", MetricKind.LATENCY, "<", 100.0),
        ("p99 < 250ms", "p99", MetricKind.LATENCY, "<", 250.0),
        ("p99.9 < 1s", "p99.9", MetricKind.LATENCY, "<", 1000.0),
        ("p(95)<=0.2s", "p95", MetricKind.LATENCY, "<=", 200.0),
        ("p50 < 1500us", "p50", MetricKind.LATENCY, "<", 1.5),
        ("max < 2 s", "max", MetricKind.LATENCY, "<", 2000.0),
        ("error_rate < 0.1%", "error_rate", MetricKind.RATE, "<", 0.001),
        ("error_rate <= 0.02", "error_rate", MetricKind.RATE, "<=", 0.02),
        ("rps > 500", "rps", MetricKind.THROUGHPUT, ">", 500.0),
        ("rps > 1.5k/s", "rps", MetricKind.THROUGHPUT, ">", 1500.0),
        ("users >= 100000", "users", MetricKind.USERS, ">=", 100_000.0),
        ("users >= 100_000", "users", MetricKind.USERS, ">=", 100_000.0),
        ("users >= 100k", "users", MetricKind.USERS, ">=", 100_000.0),
        ("failures == 0", "failures", MetricKind.COUNT, "==", 0.0),
        ("requests != 0", "requests", MetricKind.COUNT, "!=", 0.0),
    ],
)
def test_parses_k6_style_thresholds(text: str, metric: str, kind: MetricKind, op: str,
                                    limit: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.kind, threshold.op) == (metric, kind, op)
    assert threshold.limit == pytest.approx(limit)
    assert threshold.scope == ()


def test_percentile_is_kept_as_a_number() -> None:
    assert parse_threshold("p99.9 < 1s").percentile == 99.9
    assert parse_threshold("p(90) < 1s").percentile == 90.0
    assert parse_threshold("max < 1s").percentile is None


def test_inline_scope_with_quoted_route_template() -> None:
    threshold = parse_threshold(
        'p95{user_class: investor, endpoint: "GET /api/pitches/{id}"} < 150ms')
    assert threshold.scope == (("endpoint", "GET /api/pitches/{id}"), ("user_class", "investor"))
    assert threshold.name == "p95 < 150ms [endpoint=GET /api/pitches/{id},user_class=investor]"


@pytest.mark.parametrize(
    ("text", "token", "phrase"),
    [
        ("latency < 100ms", "latency", "unknown metric"),
        ("avg < 100ms", "avg", "averages"),
        ("mean < 100ms", "mean", "averages"),
        ("p999 < 1s", "p999", "did you mean p99.9"),
        ("p0 < 1s", "p0", "(0, 100]"),
        ("p95 < 100", "100", "needs a time unit"),
        ("p95 < 100 kg", "kg", "not a time unit"),
        ("p95 < 5%", "%", "not a time unit"),
        ("p95 100ms", "100ms", "expected a comparison"),
        ("p95 = 100ms", "=", "write '=='"),
        ("p95 < fast", "fast", "expected a number"),
        ("p95 < 100ms please", "please", "unexpected"),
        ("error_rate < 5", "5", "write 5% for a percentage"),
        ("error_rate < 150%", "150%", "outside 0-100%"),
        ("error_rate < 1ms", "ms", "does not apply to error_rate"),
        ("rps > 10ms", "ms", "does not apply to rps"),
        ("users >= 10x", "x", "does not apply to users"),
        ("p95{regoin: asia} < 1s", "regoin", "unknown scope key"),
        ("p95{region: } < 1s", "region", "has no value"),
        ('p95{endpoint: "GET /x} < 1s', '"GET /x} < 1s', "unclosed quote"),
        ("p95{region: asia < 1s", "{region: asia < 1s", "no closing '}'"),
        ('p95{region: "asia" eu} < 1s', "eu}", "expected ',' or '}'"),
        ("p95{kind: raw} < 1s", "raw", "scope kind"),
        ("users{region: asia} >= 10", "region", "cannot be scoped"),
        ("error_rate{kind: corrected} < 1%", "kind", "latency only"),
        ("p95 < -1ms", "-1", "negative"),
    ],
)
def test_malformed_thresholds_name_the_bad_token(text: str, token: str, phrase: str) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_threshold(text, where="thresholds[3]")
    assert caught.value.token == token
    message = str(caught.value)
    assert message.startswith(f'thresholds[3] "{text}"')
    assert phrase in message


def test_empty_or_non_string_threshold_is_refused() -> None:
    for bad in ("", "   ", 42):
        with pytest.raises(ThresholdError, match="expected a threshold string"):
            parse_threshold(bad)  # type: ignore[arg-type]


def test_mapping_form_with_scope_abort_and_grace() -> None:
    (plain, scoped) = parse_thresholds([
        "p95 < 100ms",
        {"scope": {"region": "asia"}, "check": "p95 < 150ms", "abort_on_fail": True,
         "grace": "10s"},
    ])
    assert not plain.abort_on_fail and plain.where == "thresholds[0]"
    assert scoped.scope == (("region", "asia"),)
    assert scoped.abort_on_fail and scoped.grace_s == 10.0
    assert scoped.where == "thresholds[1]"


@pytest.mark.parametrize(
    ("item", "token", "phrase"),
    [
        ({"check": "p95 < 1s", "scope": {"zone": "x"}}, "zone", "unknown scope key"),
        ({"check": "p95 < 1s", "abort": True}, "abort", "unknown key 'abort'"),
        ({"scope": {"region": "asia"}}, "check", "missing 'check'"),
        ({"check": "p95 < 1s", "abort_on_fail": "yes"}, "abort_on_fail", "true or false"),
        ({"check": "p95 < 1s", "grace": "soon"}, "soon", "not a duration"),
        ({"check": "p95 < 1s", "scope": "asia"}, "scope", "expected a mapping"),
        ({"check": "p95{region: eu} < 1s", "scope": {"region": "asia"}}, "region", "both"),
        ({"check": "users >= 100k", "abort_on_fail": True}, "abort_on_fail", "whole run"),
        ({"check": "requests > 10", "abort_on_fail": True}, "abort_on_fail", "whole run"),
        (7, "7", "expected a string or a mapping"),
    ],
)
def test_mapping_form_errors(item: object, token: str, phrase: str) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_thresholds(["p99 < 1s", item])
    assert caught.value.token == token
    assert "thresholds[1]" in str(caught.value)
    assert phrase in str(caught.value)


def test_abort_on_fail_allowed_where_a_breach_is_final_or_recoverable() -> None:
    items = [{"check": c, "abort_on_fail": True} for c in
             ("failures == 0", "failures < 10", "p95 < 1s", "error_rate < 1%", "rps > 10")]
    assert all(t.abort_on_fail for t in parse_thresholds(items))


def test_duplicate_threshold_is_refused() -> None:
    with pytest.raises(ThresholdError, match=r"thresholds\[1\].*repeats thresholds\[0\]"):
        parse_thresholds(["p95 < 100ms", "p(95) < 0.2s"])


def test_same_metric_in_two_scopes_is_fine() -> None:
    parsed = parse_thresholds(["p95 < 100ms", "p95{region: asia} < 150ms"])
    assert [t.scope_label for t in parsed] == ["global", "region=asia"]


def test_thresholds_must_be_a_list() -> None:
    with pytest.raises(ThresholdError, match="expected a list"):
        parse_thresholds("p95 < 100ms")
    assert parse_thresholds(None) == ()


def test_gate_spec_from_scenario() -> None:
    spec = parse_gate_spec({
        "thresholds": ["p95 < 100ms", {"scope": {"tag": "writes"}, "check": "p99 < 300ms"}],
        "gate": {"warmup": "5s", "margin": "20%", "error_margin": "0.5%", "confidence": 0.99,
                 "tags": {"writes": ["POST *", "PUT *"]}},
    }, source="smoke.yaml")
    assert len(spec.thresholds) == 2
    assert spec.warmup_s == 5.0
    assert spec.margin == pytest.approx(0.20)
    assert spec.error_margin == pytest.approx(0.005)
    assert spec.confidence == pytest.approx(0.99)
    assert spec.tags == {"writes": ("POST *", "PUT *")}


def test_gate_spec_defaults_and_top_level_warmup() -> None:
    spec = parse_gate_spec({"warmup": "1m"})
    assert spec == GateSpec(warmup_s=60.0)


@pytest.mark.parametrize(
    ("scenario", "phrase"),
    [
        ({"gate": {"warmpu": "5s"}}, "unknown key 'warmpu'"),
        ({"gate": {"margin": "lots"}}, "not a percentage"),
        ({"gate": {"margin": 3}}, "write 3% for a percentage"),
        ({"gate": {"confidence": "40%"}}, "at least 50%"),
        ({"gate": {"confidence": "100%"}}, "below 100%"),
        ({"gate": {"tags": {"writes": []}}}, "non-empty list"),
        ({"gate": []}, "expected a mapping"),
        ({"thresholds": [{"scope": {"tag": "reads"}, "check": "p95 < 1s"}]},
         "tag 'reads' is not declared"),
    ],
)
def test_gate_spec_errors_name_file_and_key(scenario: dict[str, object], phrase: str) -> None:
    with pytest.raises(ThresholdError) as caught:
        parse_gate_spec(scenario, source="scenarios/smoke.yaml")
    assert str(caught.value).startswith("scenarios/smoke.yaml: ")
    assert phrase in str(caught.value)


@pytest.mark.parametrize(("raw", "seconds"),
                         [("10s", 10.0), ("1m", 60.0), ("250ms", 0.25), (5, 5.0), ("2", 2.0)])
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw, where="x") == seconds


@pytest.mark.parametrize("raw", ["-1s", "ten", True, None, "5d"])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ThresholdError, match="^x: "):
        parse_duration(raw, where="x")


def test_holds_uses_the_operator() -> None:
    assert parse_threshold("p95 < 100ms").holds(99.9)
    assert not parse_threshold("p95 < 100ms").holds(100.0)
    assert parse_threshold("p95 <= 100ms").holds(100.0)
    assert parse_threshold("rps > 500").holds(500.5)
    assert parse_threshold("failures == 0").holds(0.0)
    assert not parse_threshold("failures == 0").holds(1.0)
    assert parse_threshold("requests != 0").holds(3.0)
