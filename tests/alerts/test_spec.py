"""The alert spec: the packaged one covers the seeds; a wrong one is reported precisely."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alerts.measures import alert_expression
from alerts.spec import ErrorRatioMeasure
from alerts.specload import default_spec_path, load_spec, parse_spec
from alerts.yamlload import SpecError
from pitchey_cli import main

# the Auto-Scaling document (critical/high/medium) and the Deployment Architecture document
SEED_ALERTS = {
    "PrimaryDatabaseUnavailable": "critical",
    "AllReadReplicasUnavailable": "critical",
    "HighErrorRate": "critical",
    "HighLatencyP95": "high",
    "ProjectedCostOverBudget": "high",
    "DatabasePoolNearlyExhausted": "high",
    "LowCacheHitRate": "medium",
    "HighSlowQueryRate": "medium",
    "RegionalWorkerUnhealthy": "medium",
    "ServiceDown": "critical",
    "SlowResponses": "medium",
    "HighCpuUsage": "medium",
    "StorageNearlyFull": "medium",
    # the Deployment Architecture document's "Security breaches"
    "SecurityBreachSuspected": "critical",
}
SERVICE_METRICS = {  # pitchey/metrics.py, as exposed, plus Prometheus' own `up`
    "http_server_request_duration_seconds_bucket", "http_server_request_duration_seconds_count",
    "pitchey_db_pool_connections_in_use", "pitchey_db_pool_connections_max", "pitchey_db_up",
    "pitchey_db_queries_total", "pitchey_db_slow_queries_total", "pitchey_cache_lookups_total",
    "pitchey_cache_hits_total", "pitchey_storage_used_bytes", "pitchey_storage_capacity_bytes",
    "process_cpu_seconds_total", "haproxy_server_status", "up", "pitchey_auth_failures_total",
}


def test_packaged_spec_has_every_seed_alert_with_its_severity() -> None:
    spec = load_spec()
    assert {r.name: r.severity for r in spec.rules if r.name in SEED_ALERTS} == SEED_ALERTS
    thresholds = {r.name: r.threshold for r in spec.rules}
    assert thresholds["HighErrorRate"] == 0.05
    assert thresholds["HighLatencyP95"] == 0.5
    assert thresholds["ProjectedCostOverBudget"] == 0.9
    assert thresholds["LowCacheHitRate"] == 0.5 and spec.rule("LowCacheHitRate").op == "<"
    assert thresholds["SlowResponses"] == 2 and thresholds["HighCpuUsage"] == 0.8
    assert spec.rule("ServiceDown").for_ms == 60_000


def test_slo_alerts_follow_the_burn_rate_table_with_traffic_and_absent_clauses() -> None:
    spec = load_spec()
    table = {(3_600_000, 300_000): 14.4, (21_600_000, 1_800_000): 6,
             (86_400_000, 7_200_000): 3, (259_200_000, 21_600_000): 1}
    for slo, objective in (("availability", 0.9999), ("latency", 0.95)):
        burns = [r for r in spec.rules if isinstance(r.measure, ErrorRatioMeasure)
                 and r.measure.slo == slo]
        assert {r.windows_ms: r.measure.burn_rate for r in burns} == table  # type: ignore[union-attr]
        for rule in burns:
            assert rule.threshold == pytest.approx(rule.measure.burn_rate * (1 - objective))  # type: ignore[union-attr]
            assert rule.min_traffic_rps == 1
            assert ">= 1" in alert_expression(rule).promql()
        absent = [r for r in spec.rules if r.measure.kind == "absent" and r.labels["slo"] == slo]
        assert absent, f"{slo} has no absent-metric alert"
    latency = spec.rule("LatencyBudgetBurn1h").measure
    assert isinstance(latency, ErrorRatioMeasure) and latency.good is not None
    assert latency.good.equalities()["le"] == "0.1"


def test_every_rule_reads_real_service_metric_names_and_has_a_runbook() -> None:
    for rule in load_spec().rules:
        promql = alert_expression(rule).promql()
        names = set(re.findall(r"([a-z_:][a-z0-9_:]*)\{", promql))
        assert names and names <= SERVICE_METRICS, (rule.name, names - SERVICE_METRICS)
        assert 'job="pitchey"' in promql
        assert rule.annotations.get("runbook") and rule.annotations.get("summary"), rule.name


VALID_RULE = """
version: 1
job: pitchey
rules:
  - name: HighErrorRate
    severity: critical
    measure:
      kind: ratio
      numerator: 'x_total{code=~"5.."}'
      denominator: x_total
    op: ">"
    threshold: 0.05
    window: 5m
    for: 1m
    annotations: {summary: s, runbook: r}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    return caught.value.errors


def test_a_minimal_spec_parses() -> None:
    spec = parse_spec(VALID_RULE, "spec.yaml")
    assert spec.rule("HighErrorRate").windows_ms == (300_000,)


@pytest.mark.parametrize(("change", "expected"), [
    (("threshold: 0.05", "threshold: high"),
     r"spec\.yaml:12: rule 'HighErrorRate': key 'threshold': must be a number, got 'high'"),
    (("window: 5m", "window: 5 minutes"),
     r"spec\.yaml:13: rule 'HighErrorRate': key 'window': '5 minutes' is not a duration"),
    (("op: \">\"", "op: \">=\""), r"spec\.yaml:11: rule 'HighErrorRate': key 'op': must be one"),
    (("for: 1m", "for: 1m\n    treshold: 3"),
     r"spec\.yaml:15: rule 'HighErrorRate': key 'treshold': unknown key"),
    (("severity: critical", "severity: urgent"),
     r"spec\.yaml:6: rule 'HighErrorRate': key 'severity': must be one of critical, high"),
    (("x_total{code", "x_total{{code"), r":9: .*key 'numerator': .*cannot read the matcher"),
    (("kind: ratio", "kind: ratios"), r"key 'kind': must be one of gauge"),
    (("runbook: r", "other: r"), r"key 'annotations': needs a 'runbook'"),
    (("summary: s", "summary: '{{ $labels.instance }} is down'"),
     r"uses \$labels\.instance, which this alert does not carry"),
    (("summary: s", "summary: 'value {{ $value }}'"),
     r"only \{\{ \$labels\.NAME \}\} templates are supported"),
    (("name: HighErrorRate", "name: High Error Rate"), r"key 'name': 'High Error Rate' must be"),
])
def test_errors_name_the_file_line_rule_and_key(change: tuple[str, str], expected: str) -> None:
    errors = _errors(VALID_RULE.replace(*change))
    assert len(errors) == 1 and re.search(expected, errors[0]), errors


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line() -> None:
    assert re.match(r"spec\.yaml:\d+: YAML: ", _errors("rules: [\n  {name: a\n")[0])
    doubled = VALID_RULE.replace("for: 1m", "for: 1m\n    for: 2m")
    assert _errors(doubled) == ["spec.yaml:15: YAML: key 'for' appears twice (first on line 14)"]


def test_duplicate_rule_names_are_refused() -> None:
    text = VALID_RULE + VALID_RULE.split("rules:\n", 1)[1]
    assert any("already used at spec.yaml:5" in e for e in _errors(text))


SLO = """
version: 1
histograms:
  h_seconds: {{buckets: [0.05, 0.1, 0.5]}}
slos:
  - name: latency
    objective: {objective}
    total: h_seconds_count
    good: 'h_seconds_bucket{{le="{le}"}}'
    min_traffic_rps: 1
    annotations: {{runbook: r}}
    burn_alerts:
      - {{name: Fast, severity: critical, windows: {{long: 1h, short: 5m}}, burn_rate: 14.4}}
"""


def test_an_slo_that_could_never_fire_is_refused() -> None:
    errors = _errors(SLO.format(objective=0.9, le="0.1"))  # 14.4 x 0.1 = 1.44 >= 1
    assert any("key 'burn_rate'" in e and "could never fire" in e for e in errors), errors


def test_the_good_bucket_must_be_a_declared_bucket_bound() -> None:
    errors = _errors(SLO.format(objective=0.99, le="0.2"))
    assert any("le='0.2' is not a bucket bound" in e for e in errors), errors
    assert parse_spec(SLO.format(objective=0.99, le="0.1"), "s.yaml").rule("Fast").threshold \
        == pytest.approx(0.144)


def test_cli_prints_one_line_per_problem_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(VALID_RULE.replace("threshold: 0.05", "threshold: high")
                   .replace("window: 5m", "window: soon"))
    assert main(["alerts", "render", "--rules", str(bad), "--out", str(tmp_path / "o")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("pitchey alerts: ") for line in err)
    assert "Traceback" not in "".join(err)
    assert main(["alerts", "check", "--rules", str(tmp_path / "missing.yaml")]) == 4
    assert "cannot read the alert spec" in capsys.readouterr().err


def test_default_spec_is_packaged_next_to_the_code() -> None:
    assert default_spec_path().name == "rules.yaml" and default_spec_path().exists()


def test_scaling_shrinks_every_duration_but_not_below_one_second() -> None:
    rule = load_spec().scaled(0.01).rule("HighErrorRate")
    assert (rule.for_ms, rule.keep_firing_for_ms, rule.windows_ms) == (1000, 1200, (3000,))
