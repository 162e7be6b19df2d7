"""One run, one verdict: every view of a real run shows the gate's judgement, the same numbers.

Two real `pitchey run`s against the embedded platform (real Locust processes, real run
directories): the smoke scenario (a pass, unless this shared machine starves the load
generator) and a scenario with a threshold no platform meets (`p95 < 1ms`: a breach). For each,
the end-of-run console, summary.json's verdict, the `--json` and JUnit outputs,
`pitchey gate RUN_DIR` and `pitchey capacity RUN_DIR` must agree: the same status and exit
code, the same checks with the same measured values, the same verdict line, the same
projections. (The dashboard header and the HTML report: tests/dashboards.)
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from collectors.run import load_run
from gate.report import console_table
from gate.verdict import RunVerdict
from tests.gate.conftest import SmokeGate
from tests.gate.realruns import Result, pitchey, require_pitchey_run, run_dirs, scenario_yaml
from tests.gate.test_smoke_gate import skip_if_the_machine_starved_the_generator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> SmokeGate:
    """`pitchey run` of a scenario whose p95 < 1ms no platform meets, with the gate's outputs."""
    require_pitchey_run()
    root = tmp_path_factory.mktemp("failing")
    scenario = root / "impossible.yaml"
    scenario.write_text(scenario_yaml("impossible", ["p95 < 1ms", "error_rate < 5%"],
                                      seconds=12))
    gated = SmokeGate(Result(-1, "", ""), root, root / "gate/junit.xml",
                      root / "gate/gate.json", root / "gate/summary.md")
    gated.result = pitchey(["run", str(scenario), "--out", str(root / "runs"), "--gate",
                            "--junit", str(gated.junit), "--json", str(gated.json)],
                           timeout_s=180)
    dirs = run_dirs(root / "runs")
    assert len(dirs) == 1, gated.result.text
    gated.run_dir = dirs[0]
    return gated


def _recorded(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def assert_every_view_agrees(gated: SmokeGate) -> RunVerdict:
    summary = _recorded(gated.run_dir)
    recorded = summary["verdict"]
    verdict = RunVerdict.from_json(recorded)
    # the --json output is the recorded verdict, to the letter
    assert json.loads(gated.json.read_text()) == recorded
    # `pitchey run` exits with it and prints the gate's table and line, the same text
    assert gated.result.code == verdict.exit_code, gated.result.text
    assert console_table(verdict) in gated.result.out, gated.result.text
    assert gated.result.out.rstrip().splitlines()[-1] == verdict.line
    # ... after a summary whose figures are summary.json's, over the judged window
    for region, entry in summary["by_region"].items():
        p95 = entry["latency_ms"]["p95"]
        line = next(x for x in gated.result.out.splitlines() if x.startswith(f"  {region} "))
        assert f"p95 {p95:7.1f}" in line, (line, p95)
    assert summary["window"] == recorded["window"]
    for check in verdict.checks:
        if check.name.startswith("p95 <") and check.scope and check.latency_kind == "service":
            region = dict(check.scope)["region"]
            assert check.measured == summary["by_region"][region]["latency_ms"]["p95"]
    # JUnit: one testcase per check with the same outcome, projections never failing
    suite = ET.parse(gated.junit).getroot()
    cases = {c.get("name"): c for c in suite.findall("testcase[@classname='gate.checks']")}
    assert list(cases) == [c.key for c in verdict.checks]
    for check in verdict.checks:
        failure = cases[check.key].find("failure")
        assert (failure is None) == check.ok, check.key
        if failure is not None:
            assert failure.get("message") == check.message
    projections = suite.findall("testcase[@classname='gate.projections']")
    assert [p.get("name") for p in projections] == [p.name for p in verdict.projections]
    assert all(p.find("failure") is None and p.find("skipped") is not None for p in projections)
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["line"] == verdict.line
    assert properties["exit_code"] == str(int(verdict.exit_code))
    # `pitchey gate RUN_DIR` judges it again the same way: same numbers, same line, same code
    again = pitchey(["gate", str(gated.run_dir)], timeout_s=90)
    rejudged = _recorded(gated.run_dir)["verdict"]
    assert again.code == verdict.exit_code, again.text
    assert {**rejudged, "evaluated_at": ""} == {**recorded, "evaluated_at": ""}
    assert again.out == console_table(verdict)
    # `pitchey capacity RUN_DIR` shows the verdict's line and projections, no verdict of its own
    capacity = pitchey(["capacity", str(gated.run_dir)], timeout_s=90)
    assert verdict.line in capacity.out.splitlines(), capacity.text
    for projection in verdict.projections:
        assert f"  {projection.name}: {projection.text}" in capacity.out, capacity.text
    instances = next(p for p in verdict.projections if p.unit == "instances")
    assert capacity.code == (0 if instances.available else 3), capacity.text
    assert "PASS" not in capacity.out.replace(verdict.line, "")
    return verdict


def test_smoke_every_view_shows_the_same_verdict(smoke_gate: SmokeGate) -> None:
    verdict = assert_every_view_agrees(smoke_gate)
    skip_if_the_machine_starved_the_generator(smoke_gate)
    assert verdict.status == "pass", smoke_gate.result.text
    assert verdict.line.startswith("gate: PASS (exit 0): ")
    run = load_run(smoke_gate.run_dir)
    regions = set(run.scopes("region"))
    product = {c.scope_label for c in verdict.checks if c.source.startswith("product target")}
    assert product == {"global"} | {f"region={r}" for r in regions}


def test_a_failing_run_shows_the_same_failure_everywhere(failing: SmokeGate) -> None:
    verdict = assert_every_view_agrees(failing)
    assert verdict.status == "breach" and verdict.exit_code == 1, failing.result.text
    (impossible,) = verdict.failed
    assert impossible.name == "p95 < 1ms" and impossible.source == \
        "scenario impossible: thresholds[0]"
    assert impossible.measured is not None and impossible.measured >= 1.0
    assert verdict.line == (f"gate: FAIL (exit 1): 1 of {len(verdict.checks)} checks failed: "
                            f"p95 {impossible.measured_text}, limit < 1 ms "
                            "(scenario impossible)")
