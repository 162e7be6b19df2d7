"""The dashboard in a real headless Chromium: every page renders, with no console errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.recorded_verdict import NO_VERDICT
from dashboards.app import create_app
from dashboards.browser import console_errors, serve, wait_for, wait_page_ready
from testing.demo import DemoRun, DemoSpec
from tests.dashboards.verdicts import judge, recorded

pytestmark = pytest.mark.integration

PAGES = [("/", "#heatmap-graph"), ("/endpoints", "#ep-grid .ag-row"),
         ("/capacity", "#cap-result"), ("/cost", "#cost-total"), ("/compare", "#cmp-grid .ag-row")]


@pytest.fixture(scope="module")
def url(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(runs_dir, cache_dir=tmp_path_factory.mktemp("cache"))
    with serve(app.server) as base:
        yield base


def open_page(browser: Any, address: str, ready: str) -> None:
    browser.get(address)
    wait_page_ready(browser, ready, timeout_s=60)


def text(browser: Any, selector: str) -> str:
    return str(browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector))


@pytest.mark.parametrize(("path", "ready"), PAGES)
def test_page_renders_without_console_errors(browser: Any, url: str, path: str,
                                             ready: str) -> None:
    console_errors(browser)  # drop what earlier pages logged
    open_page(browser, url + path, ready)
    # the newest run (demo-b) has no recorded verdict: the header says so, and judges nothing
    assert text(browser, "#verdict-status") == "NO VERDICT"
    assert text(browser, "#verdict-line") == NO_VERDICT
    graphs = browser.execute_script("return document.querySelectorAll('.dash-graph').length")
    drawn = browser.execute_script("return document.querySelectorAll('.dash-graph .main-svg')"
                                   ".length")
    assert drawn >= graphs
    assert console_errors(browser) == []


_CHECKS_JS = """
return Array.from(document.querySelectorAll('#verdict-bar [data-check]')).map(e => [
    e.dataset.check, e.querySelector('.measured').innerText, e.querySelector('.limit').innerText,
    e.querySelector('.source').innerText, e.querySelector('.result').innerText]);
"""
_PROJECTIONS_JS = """
return Array.from(document.querySelectorAll('#verdict-projections [data-projection]')).map(
    e => [e.dataset.projection, e.querySelector('.projection-text').innerText]);
"""


@pytest.fixture(scope="module")
def judged_url(judged_runs: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = next(iter(judged_runs.values())).parent
    app = create_app(root, cache_dir=tmp_path_factory.mktemp("judged-cache"))
    with serve(app.server) as base:
        yield base


@pytest.mark.parametrize("name", ["passing", "failing"])
def test_header_shows_the_verdict_summary_json_records(browser: Any, judged_url: str,
                                                       judged_runs: dict[str, Path],
                                                       name: str) -> None:
    run_dir = judged_runs[name]
    open_page(browser, f"{judged_url}/?run={run_dir.name}", "#heatmap-graph")
    verdict = recorded(run_dir)
    assert verdict["headline"] == {"passing": "PASS", "failing": "FAIL"}[name]
    assert text(browser, "#verdict-status") == verdict["headline"]
    assert text(browser, "#verdict-line") == verdict["line"]
    shown = browser.execute_script(_CHECKS_JS)
    assert shown == [[f"{c['name']} {c['scope_label']}".strip(), c["measured_text"],
                      c["limit_text"], c["source"], "PASS" if c["ok"] else "FAIL"]
                     for c in verdict["checks"]]
    assert browser.execute_script(_PROJECTIONS_JS) == [
        [p["name"], p["text"] if p["available"] else f"not available: {p['reason']}"]
        for p in verdict["projections"]]
    assert "Projections (model, not measured)" in text(browser, "#verdict-projections")
    assert "judged" in text(browser, "#verdict-window")
    assert console_errors(browser) == []


def test_header_of_a_run_without_a_verdict(browser: Any, judged_url: str,
                                           judged_runs: dict[str, Path]) -> None:
    open_page(browser, f"{judged_url}/?run={judged_runs['unjudged'].name}", "#heatmap-graph")
    assert text(browser, "#verdict-status") == "NO VERDICT"
    assert text(browser, "#verdict-line") == NO_VERDICT
    header = text(browser, "#verdict-bar")
    assert not {"PASS", "FAIL", "REGRESSION", "INVALID"} & set(header.split())
    assert browser.execute_script(_CHECKS_JS) == []
    assert "ms" in text(browser, "#figure-p95")


def test_capacity_page_shows_the_gates_projection_beside_the_what_if(
        browser: Any, judged_url: str, judged_runs: dict[str, Path]) -> None:
    open_page(browser, f"{judged_url}/capacity?run={judged_runs['failing'].name}",
              "#cap-result")
    assert "What-if (your inputs)" in text(browser, "#cap-result")
    assert browser.execute_script("return document.querySelector('#cap-verdict')") is None
    gate = text(browser, "#gate-projections")
    for projection in recorded(judged_runs["failing"])["projections"]:
        assert projection["name"] in gate


def test_capacity_slider_changes_the_what_if(browser: Any, url: str) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, url + "/capacity", "#cap-result")
    assert "100,000 users" in text(browser, "#cap-result")
    thumb = browser.find_element("css selector", "#cap-users [role=slider]")
    thumb.send_keys(Keys.END)
    wait_for(lambda: "1,000,000 users" in text(browser, "#cap-result"), timeout_s=30,
             what="the what-if to follow the slider")
    assert "trusted" in text(browser, "#cap-fit-table")
    assert console_errors(browser) == []


def test_endpoint_table_filters_by_region(browser: Any, url: str) -> None:
    open_page(browser, url + "/endpoints", "#ep-grid .ag-row")

    def requests_column() -> list[str]:
        return list(browser.execute_script(
            "return Array.from(document.querySelectorAll('#ep-grid .ag-row [col-id=requests]'))"
            ".map(e => e.innerText)"))

    everything = requests_column()
    browser.find_element("css selector", "#ep-region").click()
    option = wait_for(lambda: next((e for e in browser.find_elements(
        "css selector", "[role=option]") if e.text == "asia"), None), what="the asia option")
    option.click()
    wait_for(lambda: requests_column() and requests_column() != everything, timeout_s=30,
             what="the table to filter")
    assert sum(map(int, requests_column())) < sum(map(int, everything))
    assert console_errors(browser) == []


def test_price_table_shows_sources_and_dates(browser: Any, url: str) -> None:
    open_page(browser, url + "/cost", "#price-grid .ag-row")
    prices = text(browser, "#price-grid")
    assert "2024-03-01" in prices and "2026-03-20" in prices and "Neon plans page" in prices
    assert "/month" in text(browser, "#cost-total")
    assert "save $" in text(browser, "#cost-recs")


def test_unreadable_run_is_explained(browser: Any, sparse_runs: Path) -> None:
    app = create_app(sparse_runs)
    with serve(app.server) as base:
        open_page(browser, f"{base}/?run=20250101T000000Z-broken", ".message")
        assert "manifest.json" in text(browser, ".message")
        open_page(browser, f"{base}/capacity", "#cap-result")
        assert "holds at least" in text(browser, "#cap-result")
        assert console_errors(browser) == []


def test_live_mode_extends_figures_while_the_run_is_written(browser: Any,
                                                            tmp_path: Path) -> None:
    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(12)
    live.flush()
    app = create_app(tmp_path, live_interval_ms=500)
    console_errors(browser)  # drop what earlier tests logged
    count = ("return document.querySelector('#load-graph .js-plotly-plot').data[0].x.length")
    with serve(app.server) as base:
        open_page(browser, base + "/", "#heatmap-graph")
        assert browser.execute_script(count) == 12
        # A marker on the drawn figure: a re-sent whole figure would replace the object.
        browser.execute_script(
            "document.querySelector('#load-graph .js-plotly-plot').data[0].marker_check = 1")
        live.write_seconds(6)
        live.flush()
        wait_for(lambda: browser.execute_script(count) == 18, timeout_s=30,
                 what="live points to arrive")
        assert browser.execute_script(
            "return document.querySelector('#load-graph .js-plotly-plot').data[0].marker_check"
        ) == 1
        bins = ("return document.querySelector('#heatmap-graph .js-plotly-plot').data[0]"
                ".x.length")
        wait_for(lambda: browser.execute_script(bins) >= 17, timeout_s=30, what="new bins")
        assert text(browser, "#verdict-line") == NO_VERDICT  # live: figures, no verdict
        live.write_seconds(42)
        done = live.finish()
        wait_for(lambda: text(browser, "#live-status") == "run finished", timeout_s=30,
                 what="the run to finish")
        verdict = judge(done)  # what `pitchey run` does once the run directory is finished
        wait_for(lambda: text(browser, "#verdict-line") == verdict["line"], timeout_s=30,
                 what="the header to show the verdict recorded at the end of the run")
        assert text(browser, "#verdict-status") == verdict["headline"]
        errors = console_errors(browser)
        browser.get("about:blank")  # leave before the server stops: no refresh left in flight
    assert errors == []
