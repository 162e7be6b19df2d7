"""The dashboard in a real headless Chromium: every page renders, with no console errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.app import create_app
from dashboards.browser import console_errors, serve, wait_for, wait_page_ready
from dashboards.demo import DemoRun, DemoSpec

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
    tiles = browser.execute_script("return document.querySelectorAll('#verdict-bar .tile').length")
    assert tiles == 6
    assert text(browser, "#verdict-status") in ("PASS", "FAIL", "INCOMPLETE")
    graphs = browser.execute_script("return document.querySelectorAll('.dash-graph').length")
    drawn = browser.execute_script("return document.querySelectorAll('.dash-graph .main-svg')"
                                   ".length")
    assert drawn >= graphs
    assert console_errors(browser) == []


def test_overview_shows_verdict_numbers_and_every_panel(browser: Any, url: str,
                                                        demo_run: Path) -> None:
    open_page(browser, f"{url}/?run={demo_run.name}", "#heatmap-graph")
    assert "Users reached" in text(browser, "#tile-users")
    assert text(browser, "#tile-users").splitlines()[1] == "100"
    assert "ms" in text(browser, "#tile-p95")
    traces = browser.execute_script(
        "return document.querySelector('#latency-graph .js-plotly-plot').data.length")
    assert traces == 3 * 4  # p50/p95/p99 for each of four regions
    assert browser.execute_script(
        "return document.querySelector('#heatmap-graph .js-plotly-plot').data[0].type"
    ) == "heatmap"


def test_capacity_slider_changes_the_what_if(browser: Any, url: str) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, url + "/capacity", "#cap-result")
    assert "100,000 users" in text(browser, "#cap-result")
    thumb = browser.find_element("css selector", "#cap-users [role=slider]")
    thumb.send_keys(Keys.END)
    wait_for(lambda: "1,000,000 users" in text(browser, "#cap-result"), timeout_s=30,
             what="the what-if to follow the slider")
    assert "σ" in text(browser, "#cap-fit-table")
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
        assert "3 distinct concurrency steps" in text(browser, "#cap-result")
        assert console_errors(browser) == []


def test_live_mode_extends_figures_while_the_run_is_written(browser: Any,
                                                            tmp_path: Path) -> None:
    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(12)
    live.flush()
    app = create_app(tmp_path, live_interval_ms=500)
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
        live.write_seconds(42)
        live.finish()
        wait_for(lambda: text(browser, "#live-status") == "run finished", timeout_s=30,
                 what="the run to finish")
    assert console_errors(browser) == []
