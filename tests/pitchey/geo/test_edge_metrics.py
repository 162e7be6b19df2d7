"""The edge agent's /_edge/metrics: HAProxy's CPU and threads, reached through the edge URL,
against a real topology (HAProxy, the status agent, four workers), and the service demand a
scraper makes of it."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collectors.models.demand import service_demand
from collectors.run import load_run
from collectors.scrape import Scraper, ScrapeTarget, parse_metrics
from collectors.validity import Validity
from pitchey.geo.edge_status import proc_cpu_seconds
from testing.rundirs import T0, new_writer

from .topology import Topology, topology

pytestmark = pytest.mark.integration

CLIENT_REQUESTS = 400
# a cookie keeps every request out of the edge cache: each one reaches a worker
UNCACHED = {"Cookie": "demand=1", "X-Pitchey-Region": "us-east"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("edge-metrics")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db")}) as running:
        yield running


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=10) as response:
        body: bytes = response.read()
        return body


def _edge_series(edge: Topology, path: str) -> dict[tuple[str, str], float]:
    samples = parse_metrics(_get(edge.edge + path).decode(), 0.0, "edge")
    return {(s["metric"], json.dumps(s["labels"], sort_keys=True)): s["value"] for s in samples}


def test_proc_stat_fields_are_counted_after_the_command_name() -> None:
    fields = " ".join(["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 30)
    assert proc_cpu_seconds(f"42 (odd) name (x)) {fields}", 100.0) == pytest.approx(4.0)
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    times = psutil.Process().cpu_times()
    assert proc_cpu_seconds(own, os.sysconf("SC_CLK_TCK")) <= times.user + times.system + 1e-9


def test_haproxy_cpu_and_threads_are_published_through_the_edge(edge: Topology) -> None:
    haproxy = psutil.Process(json.loads(_get(edge.edge + "/status"))["balancer"]["pid"])
    assert haproxy.name() == "haproxy"
    before = sum(haproxy.cpu_times()[:2])
    for _ in range(100):
        _get(edge.edge + "/api/pitches", UNCACHED)
    series = _edge_series(edge, "/_edge/metrics")
    after = sum(haproxy.cpu_times()[:2])
    cpu = series[("process_cpu_seconds_total", '{"process": "haproxy"}')]
    assert before - 1e-9 <= cpu <= after + 1e-9  # psutil reads the same kernel counters
    assert ("process_cpu_seconds_total", '{"process": "edge-agent"}') in series
    # the thread count agrees with HAProxy's own exporter on the edge's /metrics
    exporter = _edge_series(edge, "/metrics")
    assert series[("pitchey_edge_haproxy_threads", "{}")] == \
        exporter[("haproxy_process_nbthread", "{}")] >= 1


def test_scraped_edge_and_workers_give_each_process_its_demand(edge: Topology,
                                                               tmp_path: Path) -> None:
    status = json.loads(_get(edge.edge + "/status"))
    workers = [ScrapeTarget(r["name"], r["url"]) for r in status["regions"]]
    writer = new_writer(tmp_path, "edge-demand", topology={"kind": "geo", "embedded": False})
    scraper = Scraper([ScrapeTarget("edge", edge.edge),
                       ScrapeTarget("edge", edge.edge, "/_edge/metrics", None), *workers],
                      writer=writer)
    assert scraper.scrape_once(T0) == 0
    for _ in range(CLIENT_REQUESTS):
        _get(edge.edge + "/api/pitches", UNCACHED)
    assert scraper.scrape_once(T0 + 10) == 0
    report = service_demand(load_run(writer.finish(Validity.ok())))

    by_name = {p.process: p for p in report.processes}
    # every client request counted once at the edge (not the scrapes, not /status) and once
    # at the worker that served it (not HAProxy's health checks)
    assert by_name["edge"].requests == CLIENT_REQUESTS
    assert "haproxy_frontend_http_requests_total" in by_name["edge"].requests_from
    assert by_name["us-east"].requests == CLIENT_REQUESTS
    assert by_name["edge"].cpu_s > 0 and by_name["us-east"].cpu_s > 0
    assert by_name["edge"].cores >= 1 and by_name["us-east"].cores == 1
    assert report.bottleneck is not None
    assert report.bottleneck.x_max_rps == min(p.x_max_rps for p in report.processes)
    # the regions that served nothing are listed with their CPU, not dropped
    idle = {a.process for a in report.absent}
    assert idle == {r["name"] for r in status["regions"]} - {"us-east"}
