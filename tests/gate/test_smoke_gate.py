"""`make test` runs this: a short smoke gate end to end against the embedded service.

`pitchey run smoke --gate` starts the platform, loads it from four regions with real Locust
processes, writes the run directory and gates it: the verdict must be a pass, its outputs must
be complete, and its figures must be the run's own merged-histogram figures.
(tests/integration/test_one_verdict.py checks that every view of this run shows the same verdict.)
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from collectors.run import load_run
from gate.thresholds import parse_gate_spec
from tests.conftest import SmokeGate

pytestmark = pytest.mark.integration
# loadtests.selfcheck's wording for a generator that is itself the bottleneck
GENERATOR_REASONS = ("load generator saturated", "load generator lagging")


def skip_if_the_machine_starved_the_generator(smoke_gate: SmokeGate) -> None:
    """The gate did its job when it refused a run whose load generator was starved by other
    processes on this shared machine (exit 3); under CI=true that fails instead."""
    if smoke_gate.result.code == 3 and os.environ.get("CI", "").lower() != "true":
        reasons = load_run(smoke_gate.run_dir).validity.reasons
        if reasons and all(r.startswith(GENERATOR_REASONS) for r in reasons):
            pytest.skip("load generator saturated by other work on this machine, the gate "
                        f"refused the run (exit 3): {'; '.join(reasons)}")


def test_smoke_scenario_passes_the_gate(smoke_gate: SmokeGate) -> None:
    skip_if_the_machine_starved_the_generator(smoke_gate)
    result = smoke_gate.result
    assert result.code == 0, result.text
    assert "gate: PASS (exit 0)" in result.out


def test_smoke_gate_writes_junit_json_and_markdown(smoke_gate: SmokeGate) -> None:
    spec = parse_gate_spec(load_run(smoke_gate.run_dir).scenario)
    assert spec.thresholds, "the smoke scenario should carry thresholds"
    verdict = json.loads(smoke_gate.json.read_text())
    suite = ET.parse(smoke_gate.junit).getroot()
    cases = suite.findall("testcase[@classname='gate.checks']")
    keys = [c["name"] if not c["scope"] else f"{c['name']} [{c['scope_label']}]"
            for c in verdict["checks"]]
    assert [c.get("name") for c in cases] == keys
    # the scenario's thresholds first, then the product's targets
    assert [c["source"] for c in verdict["checks"][:len(spec.thresholds)]] == [
        f"scenario smoke: thresholds[{i}]" for i in range(len(spec.thresholds))]
    assert any(c["source"].startswith("product target: ") for c in verdict["checks"])
    assert verdict["window"]["warmup_s"] == spec.warmup_s
    assert all(c["measured"] is not None for c in verdict["checks"])
    assert smoke_gate.markdown.read_text().startswith("### ")


def test_smoke_gate_figures_are_the_runs_merged_histogram_figures(smoke_gate: SmokeGate) -> None:
    run = load_run(smoke_gate.run_dir)
    verdict = json.loads(smoke_gate.json.read_text())
    cut = verdict["window"]["start"]
    for check in verdict["checks"]:
        if check["metric"] == "p95":
            region = check["scope"].get("region")
            expected = run.histogram(region=region, start=cut).quantile(0.95)
            assert check["measured"] == expected, check["name"]
    after = run.stats[run.stats["t"] >= cut]
    requests = int(after["requests"].sum())
    errors = [c for c in verdict["checks"] if c["metric"] == "error_rate" and not c["scope"]]
    assert errors
    for check in errors:
        assert check["measured"] == pytest.approx(int(after["failures"].sum()) / requests)
        assert check["samples"] == requests
    assert requests < int(run.stats["requests"].sum())  # the warm-up was cut off
