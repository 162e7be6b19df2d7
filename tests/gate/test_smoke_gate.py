"""`make test` runs this: a short smoke gate end to end against the embedded service.

`pitchey run smoke --gate` starts the platform, loads it from four regions with real Locust
processes, writes the run directory and gates it: the verdict must be a pass, its outputs must
be complete, and its figures must be the run's own merged-histogram figures.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from collectors.run import load_run
from gate.thresholds import parse_gate_spec
from tests.gate.conftest import SmokeGate

pytestmark = pytest.mark.integration
# loadtests.selfcheck's wording for a generator that is itself the bottleneck
GENERATOR_REASONS = ("load generator saturated", "load generator lagging")


def test_smoke_scenario_passes_the_gate(smoke_gate: SmokeGate) -> None:
    result = smoke_gate.result
    if result.code == 3 and os.environ.get("CI", "").lower() != "true":
        reasons = load_run(smoke_gate.run_dir).validity.reasons
        if reasons and all(r.startswith(GENERATOR_REASONS) for r in reasons):
            # The gate did its job: it refused a run whose load generator was starved by other
            # processes on this shared machine. Under CI=true this fails instead.
            pytest.skip("load generator saturated by other work on this machine, the gate "
                        f"refused the run (exit 3): {'; '.join(reasons)}")
    assert result.code == 0, result.text
    assert "gate: pass (exit 0)" in result.out


def test_smoke_gate_writes_junit_json_and_markdown(smoke_gate: SmokeGate) -> None:
    spec = parse_gate_spec(load_run(smoke_gate.run_dir).scenario)
    suite = ET.parse(smoke_gate.junit).getroot()
    cases = suite.findall("testcase[@classname='gate.thresholds']")
    assert [c.get("name") for c in cases] == [t.name for t in spec.thresholds]
    assert spec.thresholds, "the smoke scenario should carry thresholds"
    verdict = json.loads(smoke_gate.json.read_text())
    assert verdict["run_dir"] == str(smoke_gate.run_dir)
    assert verdict["window"]["warmup_s"] == spec.warmup_s
    assert all(t["measured"] is not None for t in verdict["thresholds"])
    assert smoke_gate.markdown.read_text().startswith("### ")


def test_smoke_gate_figures_are_the_runs_merged_histogram_figures(smoke_gate: SmokeGate) -> None:
    run = load_run(smoke_gate.run_dir)
    spec = parse_gate_spec(run.scenario)
    cut = float(run.load["t"].min()) + spec.warmup_s
    verdict = json.loads(smoke_gate.json.read_text())
    for threshold in verdict["thresholds"]:
        if threshold["metric"] == "p95":
            region = threshold["scope"].get("region")
            expected = run.histogram(region=region, start=cut).quantile(0.95)
            assert threshold["measured"] == expected, threshold["name"]
    after = run.stats[run.stats["t"] >= cut]
    requests = int(after["requests"].sum())
    errors = [t for t in verdict["thresholds"] if t["metric"] == "error_rate" and not t["scope"]]
    for threshold in errors:
        assert threshold["measured"] == pytest.approx(int(after["failures"].sum()) / requests)
    assert requests < int(run.stats["requests"].sum())  # the warm-up was cut off
