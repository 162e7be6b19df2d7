"""Real `pitchey run`s, seen in the dashboard (a real Chromium) and in `pitchey report`: both
show the verdict summary.json records, and the end-of-run console printed the same line.

Two short runs against the embedded platform: `smoke` (normally a pass) and a scenario with a
threshold no platform meets (`p95 < 1ms`: a breach). Whatever the verdict is, every view must
show it with the same numbers. (The console, JUnit, JSON and `pitchey gate` are compared in
tests/gate/test_one_verdict.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards.verdicts import recorded, report_rows
from tests.gate.realruns import Result, pitchey, require_pitchey_run, run_dirs, scenario_yaml

pytestmark = pytest.mark.integration

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
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Result]]:
    require_pitchey_run()
    root = tmp_path_factory.mktemp("real")
    out = root / "runs"
    scenario = root / "impossible.yaml"
    scenario.write_text(scenario_yaml("impossible", ["p95 < 1ms"], seconds=15))
    runs: dict[str, tuple[Path, Result]] = {}
    for name, target in (("smoke", "smoke"), ("impossible", str(scenario))):
        before = set(run_dirs(out)) if out.exists() else set()
        result = pitchey(["run", target, "--duration", "15", "--out", str(out)], timeout_s=240)
        (made,) = set(run_dirs(out)) - before
        runs[name] = (made, result)
    return runs


@pytest.fixture(scope="module")
def url(real_runs: dict[str, tuple[Path, Result]],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from dashboards.app import create_app
    from dashboards.browser import serve

    runs_root = next(iter(real_runs.values()))[0].parent
    app = create_app(runs_root, cache_dir=tmp_path_factory.mktemp("cache"))
    with serve(app.server) as base:
        yield base


def _expected(verdict: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    checks = [[f"{c['name']} {c['scope_label']}".strip(), c["measured_text"], c["limit_text"],
               "PASS" if c["ok"] else "FAIL"] for c in verdict["checks"]]
    projections = [[p["name"], p["text"] if p["available"] else f"not available: {p['reason']}"]
                   for p in verdict["projections"]]
    return checks, projections


@pytest.mark.parametrize("name", ["smoke", "impossible"])
def test_console_header_and_report_show_the_recorded_verdict(
        browser: Any, url: str, real_runs: dict[str, tuple[Path, Result]], name: str,
        tmp_path: Path) -> None:
    from dashboards.browser import console_errors, wait_page_ready

    run_dir, result = real_runs[name]
    verdict = recorded(run_dir)
    if name == "impossible":
        assert verdict["status"] in ("breach", "invalid"), result.text
    assert result.code == verdict["exit_code"], result.text
    assert result.out.rstrip().splitlines()[-1] == verdict["line"]  # the end-of-run console
    checks, projections = _expected(verdict)

    console_errors(browser)
    browser.get(f"{url}/?run={run_dir.name}")
    wait_page_ready(browser, "#verdict-bar", timeout_s=60)
    shown = browser.execute_script(
        "return ['#verdict-status', '#verdict-line'].map(s => document.querySelector(s)"
        ".innerText)")
    assert shown == [verdict["headline"], verdict["line"]]
    assert browser.execute_script(_CHECKS_JS) == checks
    assert browser.execute_script(_PROJECTIONS_JS) == projections
    assert console_errors(browser) == []

    html = tmp_path / "report.html"
    made = pitchey(["report", str(run_dir), "--html", str(html)], timeout_s=120)
    assert made.code == 0, made.text
    page = report_rows(html.read_text(), "check")
    assert [page.by_id["verdict-status"], page.by_id["verdict-line"]] == shown
    assert [[key, cells[2], cells[3], cells[4].upper()] for key, cells in page.rows.items()] \
        == checks
    rows = report_rows(html.read_text(), "projection").rows
    assert [[key, cells[1]] for key, cells in rows.items()] == projections
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["window"] == verdict["window"]
