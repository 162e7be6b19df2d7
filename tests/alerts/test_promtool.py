"""Rendered rules and their tests against the real promtool, and the evaluator against both.

The scenarios (alerts/vectors.py) are built from the spec alone. promtool must pass them on
the rendered rules; the embedded evaluator must pass the same checks; and promtool must also
pass the evaluator's own step-by-step timeline on the scenarios and on random series (counter
resets, missed scrapes, staleness), which is where the two would disagree if they did.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from alerts.agreement import random_scenario, scenario_failures, timeline_scenario
from alerts.promtool import PromtoolMissing, check_rules, find_promtool, run_unit_tests
from alerts.render import (
    RULES_FILE,
    dump,
    encode_values,
    render,
    single_rule_document,
    unit_test_document,
    unit_test_files,
)
from alerts.specload import load_spec
from alerts.vectors import rule_scenarios
from collectors.series import STALE_NAN


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return find_promtool()
    except PromtoolMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    render(load_spec(), out)
    return out


def test_every_rule_has_threshold_for_keep_and_traffic_scenarios() -> None:
    spec = load_spec()
    for rule in spec.rules:
        names = {s.name for s in rule_scenarios(spec, rule)}
        if rule.measure.kind == "absent":
            assert names == {"present", "step"}
            continue
        expected = {"just_below", "just_above", "step"}
        if rule.min_traffic_rps is not None:
            expected.add("low_traffic")
        assert names == expected, rule.name
        step = next(s for s in rule_scenarios(spec, rule) if s.name == "step")
        if rule.for_ms:  # a pending check before `for`
            assert any(c.pending and not c.firing for c in step.checks), rule.name
        if rule.keep_firing_for_ms:
            assert len([c for c in step.checks if c.firing]) >= 3, rule.name


def test_evaluator_passes_every_designed_scenario() -> None:
    spec = load_spec()
    failures = [f for rule in spec.rules for s in rule_scenarios(spec, rule)
                for f in scenario_failures(spec, s)]
    assert failures == []


def test_values_notation_round_trips_runs_gaps_and_staleness() -> None:
    values: list[float | None] = [0.0, 0.1, 0.2, 0.30000000000000004, None, STALE_NAN, 5.0, 4.0]
    assert encode_values(values) == "0+0.1x3 _ stale 5-1x1"


@pytest.mark.integration
def test_promtool_accepts_the_rendered_rules(promtool: str, rendered: Path) -> None:
    result = check_rules(rendered / RULES_FILE)
    assert result.ok, result.output
    assert f"SUCCESS: {len(load_spec().rules)} rules found" in result.output


def test_each_test_file_loads_the_same_entry_as_the_full_rule_file(rendered: Path) -> None:
    full = yaml.safe_load((rendered / RULES_FILE).read_text())
    entries = {r["alert"]: r for g in full["groups"] for r in g["rules"]}
    for single in (rendered / "tests").glob("*.rules.yml"):
        (group,) = yaml.safe_load(single.read_text())["groups"]
        (entry,) = group["rules"]
        assert entries[entry["alert"]] == entry


@pytest.mark.integration
def test_promtool_passes_the_rendered_unit_tests(promtool: str, rendered: Path) -> None:
    files = unit_test_files(rendered)
    assert len(files) == len(load_spec().rules)
    result = run_unit_tests(files)
    assert result.ok, result.output


@pytest.mark.integration
def test_the_rendered_tests_catch_a_changed_threshold_for_and_keep(
        promtool: str, tmp_path: Path) -> None:
    spec = load_spec()
    original = spec.rule("HighErrorRate")
    render(spec.only("HighErrorRate"), tmp_path)
    single = tmp_path / "tests" / "HighErrorRate.rules.yml"
    for changed in (replace(original, threshold=0.052), replace(original, for_ms=75_000),
                    replace(original, keep_firing_for_ms=105_000),
                    replace(original, min_traffic_rps=None)):
        single.write_text(dump(single_rule_document(changed)))
        result = run_unit_tests(unit_test_files(tmp_path))
        assert not result.ok, f"tests did not notice {changed.describe()}"


@pytest.mark.integration
def test_promtool_agrees_with_the_evaluator_step_by_step(promtool: str, tmp_path: Path) -> None:
    spec = load_spec()
    files = []
    for rule in spec.rules:
        # the designed step scenario (every transition) and a random one; the steady
        # scenarios add little here and cost promtool time
        step = next(s for s in rule_scenarios(spec, rule) if s.name == "step")
        scenarios = [timeline_scenario(spec, step),
                     timeline_scenario(spec, random_scenario(spec, rule, seed=7))]
        (tmp_path / f"{rule.name}.rules.yml").write_text(dump(single_rule_document(rule)))
        path = tmp_path / f"{rule.name}.test.yml"
        path.write_text(dump(unit_test_document(f"{rule.name}.rules.yml", scenarios)))
        files.append(path)
    result = run_unit_tests(files, timeout_s=300)
    assert result.ok, result.output[-4000:]
