"""JUnit XML, JSON, Markdown and console renderings of a gate verdict."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from collectors.run import load_run
from collectors.validity import Validity
from gate.cli import window_from_run
from gate.core import GateResult, gate
from gate.report import ReportMeta, console_table, dumps, to_junit, to_markdown
from gate.thresholds import parse_gate_spec
from tests.gate.rundirs import CellSpec, RunSpec, WrittenRun, scenario, uniform

MakeRun = Callable[[RunSpec], WrittenRun]
ROUTE = ("us-east", "GET /api/pitches/{id}", "investor")
THRESHOLDS = ["p95 < 100ms", "error_rate < 1%", 'p99{endpoint: "GET /api/pitches/{id}"} < 1s',
              "rps > 1"]


def _result(make_run: MakeRun, *, low: float, high: float, with_baseline: bool = False,
            validity: Validity | None = None) -> tuple[GateResult, ReportMeta]:
    spec_kwargs = {} if validity is None else {"validity": validity}
    written = make_run(RunSpec(scenario(THRESHOLDS), {ROUTE: CellSpec(uniform(low, high, 100))},
                               seconds=3, **spec_kwargs))
    run = load_run(written.path)
    spec = parse_gate_spec(run.scenario)
    baseline = None
    if with_baseline:
        base = make_run(RunSpec(scenario(THRESHOLDS), {ROUTE: CellSpec(uniform(1, 5, 100))},
                                seconds=3))
        baseline = window_from_run(load_run(base.path), 0)
    meta = ReportMeta(run.run_id, run.scenario_name, run.target, 0.0,
                      "runs/base" if with_baseline else None, str(run.path))
    return gate(spec, window_from_run(run, 0), baseline), meta


def test_junit_has_one_testcase_per_threshold_with_measured_and_limit(make_run: MakeRun) -> None:
    result, meta = _result(make_run, low=150, high=250)
    suite = ET.fromstring(to_junit(result, meta))
    cases = suite.findall("testcase[@classname='gate.thresholds']")
    assert [c.get("name") for c in cases] == [c.threshold.name for c in result.checks]
    assert len(cases) == len(THRESHOLDS)
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1 and suite.get("failures") == "1"
    failure = failed[0].find("failure")
    assert failure is not None
    p95 = result.checks[0]
    assert failure.get("message") == f"p95 = {p95.measured_text}, limit < 100ms"
    assert p95.measured_text in (failure.text or "") and "100ms" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["exit_code"] == "1" and props["run_id"] == meta.run_id


def test_junit_reports_invalid_run_as_an_error(make_run: MakeRun) -> None:
    result, meta = _result(make_run, low=1, high=5,
                           validity=Validity.invalid("load generator saturated"))
    suite = ET.fromstring(to_junit(result, meta))
    (case,) = suite.findall("testcase[@classname='gate.run']")
    error = case.find("error")
    assert error is not None and error.get("message") == "load generator saturated"
    assert suite.get("errors") == "1"


def test_junit_has_a_testcase_per_baseline_comparison(make_run: MakeRun) -> None:
    result, meta = _result(make_run, low=40, high=60, with_baseline=True)
    suite = ET.fromstring(to_junit(result, meta))
    cases = suite.findall("testcase[@classname='gate.baseline']")
    assert len(cases) == len(result.comparisons) > 0
    regressed = [c for c in cases if c.find("failure") is not None]
    assert len(regressed) == len(result.regressions) > 0


def test_json_carries_every_figure(make_run: MakeRun) -> None:
    result, meta = _result(make_run, low=150, high=250, with_baseline=True)
    data = json.loads(dumps(result, meta))
    assert data["exit_code"] == result.exit_code == 1
    assert data["verdict"] == "threshold breached" and data["passed"] is False
    assert [t["measured"] for t in data["thresholds"]] == [c.measured for c in result.checks]
    assert data["thresholds"][0]["unit"] == "ms"
    assert data["thresholds"][2]["scope"] == {"endpoint": "GET /api/pitches/{id}"}
    assert len(data["comparisons"]) == len(result.comparisons)
    assert data["validity"] == {"valid": True, "reasons": []}


def test_markdown_summary_for_a_pull_request(make_run: MakeRun) -> None:
    result, meta = _result(make_run, low=150, high=250, with_baseline=True)
    text = to_markdown(result, meta)
    assert text.startswith("### ❌ Performance gate: threshold breached (exit 1)")
    assert f"`{meta.run_id}`" in text
    rows = [line for line in text.splitlines() if line.startswith(("| ❌", "| ✅"))]
    assert len(rows) >= len(THRESHOLDS)
    assert "&lt; 100ms" in text  # '<' escaped so GitHub does not read HTML
    assert "Against baseline `runs/base`" in text


@pytest.mark.parametrize(("low", "high", "icon"), [(1, 5, "✅"), (150, 250, "❌")])
def test_console_table(make_run: MakeRun, low: float, high: float, icon: str) -> None:
    result, meta = _result(make_run, low=low, high=high)
    text = console_table(result, meta)
    lines = text.splitlines()
    assert lines[0].split() == ["threshold", "scope", "measured", "limit", "requests"]
    assert len([line for line in lines if line.startswith(("PASS", "FAIL"))]) == len(THRESHOLDS)
    assert lines[-1].startswith("gate: ") and f"(exit {result.exit_code})" in lines[-1]
    assert (icon == "✅") == (result.exit_code == 0)
