"""Service series read back from a real Prometheus scraping the real Pitchey service."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors import PrometheusSource, Validity, load_run
from collectors.prometheus import PrometheusError

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="Debian package prometheus "
                       "is not installed"),
]
ROUTE_HITS = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(condition: Callable[[], Any], what: str, timeout_s: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, float]]:
    """(service URL, Prometheus URL, epoch when the service started) — both real processes."""
    root = tmp_path_factory.mktemp("prom")
    env = {**os.environ, "PITCHEY_SQLITE_PATH": str(root / "p.db"),
           "PITCHEY_RATE_LIMIT_PER_MINUTE": "0"}
    started = time.time()
    service = subprocess.Popen([sys.executable, "-m", "pitchey_cli", "serve", "--port", "0"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    prometheus: subprocess.Popen[Any] | None = None
    try:
        assert service.stdout is not None
        line = service.stdout.readline()
        assert "listening on http://" in line, line
        service_url = line.split("listening on ", 1)[1].split()[0]
        host_port = service_url.removeprefix("http://")
        (root / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: pitchey\n"
            f"    static_configs: [{{targets: ['{host_port}']}}]\n"
        )
        prom_url = f"http://127.0.0.1:{_free_port()}"
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", "--log.level=warn",
             f"--web.listen-address={prom_url.removeprefix('http://')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _until(PrometheusSource(prom_url).ready, "Prometheus to be ready")
        for _ in range(ROUTE_HITS):
            urllib.request.urlopen(f"{service_url}/api/health", timeout=5).read()
        yield service_url, prom_url, started
    finally:
        if prometheus is not None:
            _stop(prometheus)
        _stop(service)
        if service.stdout is not None:
            service.stdout.close()


def _health_count(frame: Any) -> float:
    rows = frame[(frame["metric"] == "http_server_request_duration_seconds_count")
                 & frame["labels"].str.contains('"/api/health"')]
    return float(rows["value"].iloc[-1]) if len(rows) else 0.0


def test_service_frame_matches_what_the_service_counted(stack: tuple[str, str, float]) -> None:
    service_url, prom_url, started = stack
    host_port = service_url.removeprefix("http://")
    source = PrometheusSource(prom_url, target_names={host_port: "edge"})

    def scraped() -> Any:
        frame = source.service_frame(started, time.time(), 1.0)
        return [frame] if _health_count(frame) >= ROUTE_HITS else None

    [frame] = _until(scraped, "the requests to be scraped")
    assert _health_count(frame) == ROUTE_HITS  # exactly what we sent, nothing averaged
    assert set(frame["target"]) == {"edge"}
    assert {"up", "pitchey_db_up", "http_server_active_requests"} <= set(frame["metric"])
    assert frame[frame["metric"] == "up"]["value"].iloc[-1] == 1.0
    labels = json.loads(frame[frame["metric"] == "up"]["labels"].iloc[0])
    assert "instance" not in labels and "job" not in labels
    assert list(frame.columns) == ["t", "target", "metric", "labels", "value"]
    assert frame["t"].is_monotonic_increasing

    store = source.store(started, time.time())
    [db_up] = store.find("pitchey_db_up", {"instance": "edge", "job": "pitchey"})
    assert db_up.values[-1] == 1.0
    [total] = source.series(
        'sum(http_server_request_duration_seconds_count{http_route="/api/health"})',
        started, time.time())
    assert total.values[-1] == ROUTE_HITS and total.label_map == {}


def test_bad_query_and_unreachable_prometheus(stack: tuple[str, str, float]) -> None:
    _, prom_url, started = stack
    with pytest.raises(PrometheusError, match="HTTP 400"):
        PrometheusSource(prom_url).query_range("sum(", started, time.time(), 1.0)
    closed = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(PrometheusError, match="cannot reach Prometheus"):
        PrometheusSource(closed, timeout_s=2).query_range("up", started, time.time(), 1.0)


def test_write_into_a_run_and_report_from_prometheus(
    stack: tuple[str, str, float], tmp_path: Path
) -> None:
    from testing.rundirs import new_writer

    _, prom_url, started = stack
    now = time.time()
    writer = new_writer(tmp_path)
    for second in range(int(now - started) + 1):
        writer.add_load(started + second, 1, 1.0, 0.0)
    count = PrometheusSource(prom_url).write_into(writer, started, now, 1.0)
    run = load_run(writer.finish(Validity.ok()))
    assert count == len(run.service) > 0 and "pitchey_db_up" in set(run.service["metric"])

    out = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "report", str(run.path), "--html", str(out),
         "--prometheus", prom_url], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"Prometheus at {prom_url}" in out.read_text()
