"""JUnit XML, JSON, Markdown and console renderings of a run's verdict."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from collectors.run import load_run
from collectors.validity import Validity
from gate.evaluation import evaluate_run
from gate.report import ReportMeta, console_table, dumps, to_junit, to_markdown
from gate.thresholds import parse_gate_spec
from gate.verdict import RunVerdict
from gate.window import window_from_run
from testing.rundirs import CellSpec, RunSpec, WrittenRun, scenario, uniform

MakeRun = Callable[[RunSpec], WrittenRun]
ROUTE = ("us-east", "GET /api/pitches/{id}", "investor")
THRESHOLDS = ["p95 < 100ms", "error_rate < 1%", 'p99{endpoint: "GET /api/pitches/{id}"} < 1s',
              "rps > 1"]


def _verdict(make_run: MakeRun, *, low: float, high: float, with_baseline: bool = False,
             validity: Validity | None = None) -> tuple[RunVerdict, ReportMeta]:
    spec_kwargs = {} if validity is None else {"validity": validity}
    written = make_run(RunSpec(scenario(THRESHOLDS), {ROUTE: CellSpec(uniform(low, high, 100))},
                               seconds=3, **spec_kwargs))
    run = load_run(written.path)
    baseline = None
    if with_baseline:
        base = make_run(RunSpec(scenario(THRESHOLDS), {ROUTE: CellSpec(uniform(1, 5, 100))},
                                seconds=3))
        baseline = window_from_run(load_run(base.path), 0)
    meta = ReportMeta(run.run_id, run.scenario_name, run.target, str(run.path))
    verdict = evaluate_run(run, parse_gate_spec(run.scenario), baseline,
                           baseline_source="runs/base" if with_baseline else None)
    return verdict, meta


def test_junit_has_one_testcase_per_check_with_measured_limit_and_source(
        make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=150, high=250)
    suite = ET.fromstring(to_junit(verdict, meta))
    cases = suite.findall("testcase[@classname='gate.checks']")
    assert [c.get("name") for c in cases] == [c.key for c in verdict.checks]
    failed = [c for c in cases if c.find("failure") is not None]
    # p95 < 100ms is the scenario's and the product's: one check, failed once
    assert len(failed) == len(verdict.failed) == int(suite.get("failures", "-1")) == 1
    p95 = verdict.checks[0]
    assert p95.source == "scenario synthetic: thresholds[0], also a product target"
    failure = failed[0].find("failure")
    assert failure is not None and failure.get("message") == p95.message
    assert p95.message.startswith(f"p95 = {p95.measured_text}, limit < 100 ms (scenario ")
    assert p95.measured_text in (failure.text or "") and "< 100 ms" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["exit_code"] == "1" and props["run_id"] == meta.run_id
    assert props["line"] == verdict.line and props["status"] == "breach"


def test_junit_reports_invalid_run_as_an_error(make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=1, high=5,
                             validity=Validity.invalid("load generator saturated"))
    suite = ET.fromstring(to_junit(verdict, meta))
    (case,) = suite.findall("testcase[@classname='gate.run']")
    error = case.find("error")
    assert error is not None and error.get("message") == "load generator saturated"
    assert suite.get("errors") == "1"


def test_junit_has_a_testcase_per_baseline_comparison(make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=40, high=60, with_baseline=True)
    suite = ET.fromstring(to_junit(verdict, meta))
    cases = suite.findall("testcase[@classname='gate.baseline']")
    assert len(cases) == len(verdict.comparisons) > 0
    regressed = [c for c in cases if c.find("failure") is not None]
    assert len(regressed) == len(verdict.regressions) > 0


def test_junit_projections_are_skipped_testcases_never_failures(make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=1, high=5)
    suite = ET.fromstring(to_junit(verdict, meta))
    cases = suite.findall("testcase[@classname='gate.projections']")
    assert [c.get("name") for c in cases] == [p.name for p in verdict.projections]
    assert len(cases) >= 2  # capacity and cost
    for case, projection in zip(cases, verdict.projections, strict=True):
        assert case.find("failure") is None and case.find("error") is None
        skipped = case.find("skipped")
        assert skipped is not None
        assert skipped.get("message") == f"projection: {projection.text}"
    assert suite.get("failures") == "0" and verdict.exit_code == 0


def test_json_is_the_verdict_and_reads_back(make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=150, high=250, with_baseline=True)
    data = json.loads(dumps(verdict, meta))
    assert data == verdict.to_json()
    assert data["exit_code"] == verdict.exit_code == 1
    assert data["status"] == "breach" and data["headline"] == "FAIL"
    assert [c["measured"] for c in data["checks"]] == [c.measured for c in verdict.checks]
    assert data["checks"][2]["scope"] == {"endpoint": "GET /api/pitches/{id}"}
    assert len(data["comparisons"]) == len(verdict.comparisons)
    assert data["baseline"] == {"source": "runs/base"}
    assert data["validity"] == {"valid": True, "reasons": []}
    assert RunVerdict.from_json(data) == verdict


def test_markdown_summary_for_a_pull_request(make_run: MakeRun) -> None:
    verdict, meta = _verdict(make_run, low=150, high=250, with_baseline=True)
    text = to_markdown(verdict, meta)
    assert text.startswith("### ❌ Performance gate: FAIL (exit 1)")
    assert f"`{meta.run_id}`" in text
    rows = [line for line in text.splitlines() if line.startswith(("| ❌", "| ✅"))]
    assert len(rows) >= len(verdict.checks)
    assert "&lt; 100 ms" in text  # '<' escaped so GitHub does not read HTML
    assert "Against baseline `runs/base`" in text
    assert "Projections (model, not measured" in text


@pytest.mark.parametrize(("low", "high", "status"), [(1, 5, "pass"), (150, 250, "breach")])
def test_console_table(make_run: MakeRun, low: float, high: float, status: str) -> None:
    verdict, _ = _verdict(make_run, low=low, high=high)
    assert verdict.status == status
    lines = console_table(verdict).splitlines()
    assert lines[0] == (f"judged: run {verdict.run_id} (synthetic), "
                        f"{verdict.window.duration_s:.0f} s after a 0 s warm-up")
    assert lines[1].split() == ["check", "scope", "measured", "limit", "requests", "source"]
    rows = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert len(rows) == len(verdict.checks)
    for row, check in zip(rows, verdict.checks, strict=True):
        assert row.startswith("PASS" if check.ok else "FAIL")
        assert check.measured_text in row and check.limit_text in row and check.source in row
    assert any(line.startswith("projections (model, not measured") for line in lines)
    assert lines[-1] == verdict.line
    assert lines[-1].startswith(f"gate: {verdict.headline} (exit {int(verdict.exit_code)})")
