"""A real headless Chromium against the dashboard (screenshots, tests, the page benchmark).

The app is served by werkzeug on 127.0.0.1 port 0 in a thread; Chromium is driven with
Selenium through Debian's chromedriver (/usr/bin/chromedriver, /usr/bin/chromium), so
nothing is downloaded. Needs the `selenium` package.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

__all__ = [
    "CHROMIUM",
    "CHROMEDRIVER",
    "BrowserMissing",
    "chromium",
    "console_errors",
    "serve",
    "wait_for",
    "wait_page_ready",
]

CHROMIUM = os.environ.get("PITCHEY_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PITCHEY_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage")


class BrowserMissing(RuntimeError):
    """Chromium, chromedriver or selenium is not installed; the message says which."""


@contextmanager
def serve(server: Flask) -> Iterator[str]:
    """Serve a Flask app (a Dash app's `.server`) on a free port; yields its base URL."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    httpd = make_server("127.0.0.1", 0, server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver that records the browser console."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserMissing("selenium is not installed: pip install selenium") from None
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.path.exists(path):
            raise BrowserMissing(f"{path} not found: apt-get install {package}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Any, *, timeout_s: float = 20.0, interval_s: float = 0.05,
             what: str = "condition") -> Any:
    """Poll `condition()` until it returns something truthy, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


_READY_JS = """
const loading = document.querySelector('[data-dash-is-loading="true"]');
const page = document.querySelector('#page');
if (!page || loading || page.children.length === 0) return false;
const want = arguments[0];
if (want && !document.querySelector(want)) return false;
const graphs = Array.from(document.querySelectorAll('.dash-graph'));
return graphs.every(g => !g.classList.contains('dash-graph--pending')
                         && g.querySelector('.main-svg'));
"""


def wait_page_ready(driver: Any, selector: str | None = None, *, timeout_s: float = 20.0) -> None:
    """Wait until Dash has rendered the page (no pending callback, every graph drawn)."""
    wait_for(lambda: driver.execute_script(_READY_JS, selector), timeout_s=timeout_s,
             what=f"the page to render {selector or ''}")


def console_errors(driver: Any) -> list[str]:
    """Browser console entries at SEVERE level since the last call."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry.get("level") == "SEVERE"]
