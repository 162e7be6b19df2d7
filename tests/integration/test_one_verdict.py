"""One run, one verdict: every view of a real run shows the gate's judgement, with the same
numbers, for the runs the issue names — `smoke`, `baseline` and a failing run.

Real `pitchey run`s against the embedded platform (real Locust master and workers; `baseline`
on the geo topology behind HAProxy), each with `--gate --junit --json --markdown`. For each
run, all of these must agree with the verdict recorded in summary.json: the end-of-run
console (the gate's table and line, after figures over the judged window), the exit code,
the `--json`, JUnit and Markdown outputs, `pitchey gate RUN_DIR` judging it again,
`pitchey capacity RUN_DIR`, the dashboard header in a real headless Chromium, and
`pitchey report`'s HTML. Whatever the verdict is, the views must show the same one.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.run import load_run
from gate.report import console_table
from gate.verdict import RunVerdict
from tests.conftest import SmokeGate, gated_run
from tests.dashboards.verdicts import report_rows
from tests.gate.realruns import pitchey, scenario_yaml

pytestmark = pytest.mark.integration

BASELINE_DURATION_S = "25"

_CHECKS_JS = """
return Array.from(document.querySelectorAll('#verdict-bar [data-check]')).map(e => [
    e.dataset.check, e.querySelector('.measured').innerText, e.querySelector('.limit').innerText,
    e.querySelector('.result').innerText]);
"""
_PROJECTIONS_JS = """
return Array.from(document.querySelectorAll('#verdict-projections [data-projection]')).map(
    e => [e.dataset.projection, e.querySelector('.projection-text').innerText]);
"""


@pytest.fixture(scope="module")
def runs(smoke_gate: SmokeGate, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, SmokeGate]:
    root = tmp_path_factory.mktemp("one-verdict")
    impossible = root / "impossible.yaml"
    # far below any request's time, so no generator hiccup could account for the breach
    impossible.write_text(scenario_yaml("impossible", ["p95 < 0.1ms", "error_rate < 5%"],
                                        seconds=12))
    return {
        "smoke": smoke_gate,
        "baseline": gated_run(root / "baseline", "baseline", "--duration", BASELINE_DURATION_S),
        "failing": gated_run(root / "failing", str(impossible)),
    }


@pytest.fixture(scope="module")
def dashboard_url(runs: dict[str, SmokeGate],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One dashboard over the three runs' directories (linked into one runs folder)."""
    from dashboards.app import create_app
    from dashboards.browser import serve

    root = tmp_path_factory.mktemp("dashboard-runs")
    for gated in runs.values():
        (root / gated.run_dir.name).symlink_to(gated.run_dir, target_is_directory=True)
    app = create_app(root, cache_dir=tmp_path_factory.mktemp("cache"))
    with serve(app.server) as base:
        yield base


def _summary(run_dir: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return summary


def _console_agrees(gated: SmokeGate, verdict: RunVerdict, summary: dict[str, Any]) -> None:
    out = gated.result.out
    assert gated.result.code == verdict.exit_code, gated.result.text
    assert console_table(verdict) in out, gated.result.text
    if verdict.capacity is not None:
        assert verdict.capacity["line"] in out
    assert out.rstrip().splitlines()[-1] == verdict.line
    # ... after a summary whose figures are summary.json's, over the judged window
    for region, entry in summary["by_region"].items():
        line = next(x for x in out.splitlines() if x.startswith(f"  {region} "))
        assert f"p95 {entry['latency_ms']['p95']:7.1f}" in line, line
    assert summary["window"] == verdict.to_json()["window"]
    for check in verdict.checks:
        if check.name.startswith("p95 <") and check.scope and check.latency_kind == "service":
            scope = dict(check.scope)
            if set(scope) == {"region"}:
                assert check.measured == summary["by_region"][scope["region"]][
                    "latency_ms"]["p95"]


def _ci_outputs_agree(gated: SmokeGate, verdict: RunVerdict, recorded: dict[str, Any]) -> None:
    assert json.loads(gated.json.read_text()) == recorded  # the --json output, to the letter
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
    markdown = html.unescape(gated.markdown.read_text())  # Markdown escapes < and >
    assert verdict.line in markdown
    for check in verdict.checks:
        assert check.measured_text in markdown, check.key


def _commands_agree(gated: SmokeGate, verdict: RunVerdict, recorded: dict[str, Any]) -> None:
    again = pitchey(["gate", str(gated.run_dir)], timeout_s=90)
    assert again.code == verdict.exit_code, again.text
    assert again.out == console_table(verdict)
    rejudged = _summary(gated.run_dir)["verdict"]
    assert {**rejudged, "evaluated_at": ""} == {**recorded, "evaluated_at": ""}
    capacity = pitchey(["capacity", str(gated.run_dir)], timeout_s=90)
    assert verdict.line in capacity.out.splitlines(), capacity.text
    for projection in verdict.projections:
        assert f"  {projection.name}: {projection.text}" in capacity.out, capacity.text
    instances = next(p for p in verdict.projections if p.unit == "instances")
    assert capacity.code == (0 if instances.available else 3), capacity.text
    assert "PASS" not in capacity.out.replace(verdict.line, "")


def _expected_tiles(recorded: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    checks = [[f"{c['name']} {c['scope_label']}".strip(), c["measured_text"], c["limit_text"],
               "PASS" if c["ok"] else "FAIL"] for c in recorded["checks"]]
    projections = [[p["name"], p["text"] if p["available"] else f"not available: {p['reason']}"]
                   for p in recorded["projections"]]
    return checks, projections


def _dashboard_and_report_agree(gated: SmokeGate, recorded: dict[str, Any], browser: Any,
                                url: str, tmp_path: Path) -> None:
    from dashboards.browser import console_errors, wait_page_ready

    checks, projections = _expected_tiles(recorded)
    console_errors(browser)
    browser.get(f"{url}/?run={gated.run_dir.name}")
    wait_page_ready(browser, "#verdict-bar", timeout_s=60)
    shown = browser.execute_script(
        "return ['#verdict-status', '#verdict-line'].map(s => document.querySelector(s)"
        ".innerText)")
    assert shown == [recorded["headline"], recorded["line"]]
    assert browser.execute_script(_CHECKS_JS) == checks
    assert browser.execute_script(_PROJECTIONS_JS) == projections
    capacity = (recorded.get("capacity") or {}).get("line", "")
    if capacity:  # the measured capacity line, as recorded
        assert browser.execute_script(
            "return document.querySelector('#verdict-capacity').innerText") == capacity
    assert console_errors(browser) == []

    report = tmp_path / "report.html"
    made = pitchey(["report", str(gated.run_dir), "--html", str(report)], timeout_s=120)
    assert made.code == 0, made.text
    page = report_rows(report.read_text(), "check")
    assert [page.by_id["verdict-status"], page.by_id["verdict-line"]] == shown
    assert [[key, cells[2], cells[3], cells[4].upper()] for key, cells in page.rows.items()] \
        == checks
    rows = report_rows(report.read_text(), "projection").rows
    assert [[key, cells[1]] for key, cells in rows.items()] == projections
    if capacity:
        assert page.by_id["verdict-capacity"] == capacity


@pytest.mark.parametrize("name", ["smoke", "baseline", "failing"])
def test_every_view_shows_the_recorded_verdict(runs: dict[str, SmokeGate], name: str,
                                               browser: Any, dashboard_url: str,
                                               tmp_path: Path) -> None:
    gated = runs[name]
    summary = _summary(gated.run_dir)
    recorded = summary["verdict"]
    verdict = RunVerdict.from_json(recorded)
    _console_agrees(gated, verdict, summary)
    _ci_outputs_agree(gated, verdict, recorded)
    _commands_agree(gated, verdict, recorded)
    _dashboard_and_report_agree(gated, _summary(gated.run_dir)["verdict"], browser,
                                dashboard_url, tmp_path)


def test_the_failing_run_names_what_was_measured_the_limit_and_its_source(
        runs: dict[str, SmokeGate]) -> None:
    verdict = RunVerdict.from_json(_summary(runs["failing"].run_dir)["verdict"])
    assert verdict.status == "breach" and verdict.exit_code == 1, runs["failing"].result.text
    (impossible,) = verdict.failed
    assert impossible.name == "p95 < 0.1ms"
    assert impossible.source == "scenario impossible: thresholds[0]"
    assert impossible.measured is not None and impossible.measured >= 1.0
    assert verdict.line == (f"gate: FAIL (exit 1): 1 of {len(verdict.checks)} checks failed: "
                            f"p95 {impossible.measured_text}, limit {impossible.limit_text} "
                            "(scenario impossible)")


def test_no_check_of_the_default_runs_fails_by_construction(runs: dict[str, SmokeGate]) -> None:
    """Every check of smoke and baseline is one the platform can meet or miss: a latency or
    error-rate limit with a named source, never the scenario's own user count, and every
    failed check names its measured value, its limit and where the limit comes from."""
    for name in ("smoke", "baseline"):
        gated = runs[name]
        verdict = RunVerdict.from_json(_summary(gated.run_dir)["verdict"])
        regions = set(load_run(gated.run_dir).scopes("region"))
        product = {c.scope_label for c in verdict.checks
                   if c.source.startswith("product target") and c.name.startswith("p95")}
        assert product == {"global"} | ({f"region={r}" for r in regions}
                                        if len(regions) > 1 else set()), name
        for check in verdict.checks:
            assert check.kind != "users", (name, check.key)
            assert check.source, (name, check.key)
            if check.ok is False:
                assert check.measured_text in check.message and check.limit_text in \
                    check.message and check.source.split(":")[0] in check.message, check.message
