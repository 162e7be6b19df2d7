"""Scenario files: every shipped one loads; every mistake names the file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collectors.targets import PRODUCT_TARGETS
from collectors.units import parse_duration_s, parse_latency_ms
from gate.thresholds import parse_gate_spec
from loadtests.scenario import ScenarioError, load_scenario, parse_scenario, with_overrides

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))

GOOD = """\
name: t
target: embedded
stages:
  - {kind: ramp, duration: 10s, users: 20}
  - {kind: hold, duration: 1m}
users:
  investor: {weight: 3}
  browser: {weight: 1, think_time: 2s}
regions: {us-east: 30, asia: 20}
thresholds:
  - "p95 < 100ms"
  - {scope: {region: asia}, check: "p95 < 150ms"}
"""


def test_every_shipped_scenario_loads() -> None:
    assert {p.stem for p in SHIPPED} >= {"smoke", "baseline", "geo-100k", "spike", "soak",
                                         "failover"}
    for path in SHIPPED:
        scenario = load_scenario(path)
        assert scenario.name == path.stem, path
        assert scenario.max_users > 0


def test_geo_100k_is_the_product_claim() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "geo-100k.yaml")
    assert scenario.max_users == PRODUCT_TARGETS.users
    assert scenario.regions == {"us-east": 30, "us-west": 25, "europe": 25, "asia": 20}


def test_no_shipped_scenario_repeats_a_product_target_or_checks_its_user_count() -> None:
    """The gate judges the product's targets itself; a scenario's user count is a fact of the
    scenario, never a check."""
    for path in SHIPPED:
        scenario = load_scenario(path)
        spec = parse_gate_spec(scenario.to_json(), source=str(path))
        # a breakpoint run ends in the step that broke the target, by design (capacity.yaml)
        stepped = scenario.open_model is not None and scenario.open_model.arrival == "steps"
        assert spec.product_targets or stepped, path
        for threshold in spec.thresholds:
            assert threshold.metric != "users", (path, threshold.text)
            kinds = dict(threshold.scope).get("kind")
            same_p95 = threshold.metric == "p95" and threshold.limit == PRODUCT_TARGETS.p95_ms \
                and set(dict(threshold.scope)) <= {"region"} and kinds is None
            same_errors = threshold.metric == "error_rate" and not threshold.scope \
                and threshold.limit >= PRODUCT_TARGETS.error_rate \
                and not threshold.abort_on_fail  # (stopping a run early is another matter)
            assert not same_p95 and not same_errors, (path, threshold.text)


def test_region_targets_are_refused_with_where_to_read_why() -> None:
    text = GOOD.replace("regions: {us-east: 30, asia: 20}\n",
                        "regions: {us-east: 30, asia: 20}\nregion_targets_ms: {asia: 65ms}\n")
    problem = _problem(text)
    assert problem.startswith("bad.yaml:10: region_targets_ms: region_targets_ms was removed: ")
    assert problem.endswith("see docs/targets.md")


def test_a_compound_warmup_loads_and_the_gate_reads_it_the_same() -> None:
    scenario = parse_scenario(GOOD.replace("thresholds:", "warmup: 1h30m\nthresholds:"))
    assert scenario.warmup == 5400
    assert parse_gate_spec(scenario.to_json()).warmup_s == 5400


def test_values_are_read_in_human_units() -> None:
    scenario = parse_scenario(GOOD, source="good.yaml")
    assert scenario.stages is not None
    assert [s.duration for s in scenario.stages] == [10.0, 60.0]
    assert scenario.think_time_for("browser").min == scenario.think_time_for("browser").max == 2
    assert parse_duration_s("1h30m") == 5400 and parse_duration_s("250ms") == 0.25
    assert parse_latency_ms("1.5s") == 1500 and parse_latency_ms("80") == 80


def test_the_scenario_as_run_round_trips_through_json() -> None:
    scenario = with_overrides(parse_scenario(GOOD), duration_s=35, users=7,
                              target="http://127.0.0.1:9/")
    again = parse_scenario(__import__("json").dumps(scenario.to_json()))
    assert again == scenario
    assert again.target == "http://127.0.0.1:9"
    assert again.max_users == 7
    assert sum(s.duration for s in again.stages or ()) == pytest.approx(35)


def _problem(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="bad.yaml")
    return caught.value.problems[0]


@pytest.mark.parametrize(("change", "expected"), [
    (("name: t\n", "name: t\ncolour: blue\n"), "bad.yaml:2: colour: unknown key"),
    (("users: 20}", "users: -5}"), "bad.yaml:4: stages[0].users: Input should be greater"),
    (("{kind: ramp, duration: 10s, users: 20}", "{kind: ramp, duration: 10s}"),
     "bad.yaml:4: stages[0]: a ramp stage needs users"),
    (("duration: 1m}", "duration: soon}"), "bad.yaml:5: stages[1].duration: 'soon' is not a "
     "duration"),
    (("  investor: {weight: 3}", "  banker: {weight: 3}"),
     "bad.yaml:7: users.banker: unknown user class 'banker'"),
    (('"p95 < 100ms"', '"p95 < fast"'), 'bad.yaml:11: thresholds[0] "p95 < fast": expected a '
     "number"),
    (('check: "p95 < 150ms"', 'check: "p95 < 150"'), "bad.yaml:12: thresholds[1]"),
])
def test_mistakes_name_file_line_and_key(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    problem = _problem(GOOD.replace(old, new, 1))
    assert problem.startswith(expected), problem


def test_yaml_syntax_errors_give_the_line() -> None:
    problem = _problem(GOOD.replace("regions: {us-east: 30, asia: 20}", "regions: {us-east: 30"))
    assert problem.startswith("bad.yaml:"), problem
    assert "not valid YAML" in problem


def test_a_file_that_is_not_a_mapping_is_refused() -> None:
    assert _problem("- just\n- a list\n").startswith("bad.yaml:1: expected a mapping")


def test_missing_file_is_one_line() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("/nonexistent/scenario.yaml")
    assert "cannot read" in str(caught.value)


def test_pitchey_run_prints_one_line_per_problem_and_exits_4(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("name: t\n", "name: t\ncolour: blue\n"))
    result = subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "run", str(bad), "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip() == f"pitchey run: {bad}:2: colour: unknown key"
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "runs").exists()  # nothing written for a scenario that cannot run


def test_duration_override_stretches_warmup_and_failover_times_too() -> None:
    text = GOOD.replace("regions: {us-east: 30, asia: 20}", "topology: geo\n"
                        "regions: {us-east: 30, asia: 20}\nwarmup: 10s\n"
                        "failover: [{at: 35s, region: asia, duration: 20s}]")
    scenario = with_overrides(parse_scenario(text), duration_s=35)  # half the 70 s planned
    assert scenario.warmup == pytest.approx(5)
    assert scenario.failover[0].at == pytest.approx(17.5)
    assert scenario.failover[0].duration == pytest.approx(10)


def test_a_bad_flag_is_a_configuration_error_not_a_gate_verdict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "run", "smoke", "--duration", "soon"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 4  # 2 would read as "regression" to a CI gate
    assert result.stderr.strip().splitlines()[-1] == (
        "pitchey run: error: argument --duration: 'soon' is not a duration "
        "(write e.g. 30s, 2m, 1h30m, 250ms)")
