"""Service demand from synthetic runs whose CPU counters and request counts are known by
construction: every figure expected here is computed from the values written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from collectors.models.demand import (
    CPU_METRIC,
    OBSERVABILITY_ROUTES,
    counter_increase,
    service_demand,
)
from collectors.run import Run, load_run
from collectors.rundir import ServiceSample
from collectors.validity import Validity
from testing.rundirs import T0, CellSpec, new_writer, uniform, write_seconds

SECONDS = 10
RPS = 40  # client requests per second, every second
PITCHES = ("us-east", "GET /api/pitches", "investor")

Samples = list[ServiceSample]


def _run(tmp: Path, samples: Samples, *, embedded: bool = False, rps: int = RPS) -> Run:
    """SECONDS seconds of `rps` client requests a second, plus the scraped `samples`."""
    writer = new_writer(tmp, "demand", topology={"kind": "geo", "embedded": embedded})
    write_seconds(writer, {PITCHES: CellSpec(uniform(5, 20, rps))}, range(SECONDS),
                  np.random.default_rng(7))
    writer.add_service_samples(samples)
    return load_run(writer.finish(Validity.ok()))


def _counter(target: str, metric: str, labels: dict[str, str],
             value_at: Callable[[int], float]) -> Samples:
    """One scrape a second, at T0 .. T0 + SECONDS (SECONDS + 1 samples)."""
    return [{"t": T0 + s, "target": target, "metric": metric, "labels": labels,
             "value": value_at(s)} for s in range(SECONDS + 1)]


def _pitchey(target: str, rps: int, demand_s: float, *, cpu_base: float = 2.5) -> Samples:
    """A pitchey worker completing `rps` client requests a second (two routes), scraped
    (/metrics) and health-checked (/health) every second, burning `demand_s` per request."""
    count = "http_server_request_duration_seconds_count"
    route = {"http_request_method": "GET", "http_response_status_code": "200"}
    half = rps // 2
    return [
        *_counter(target, CPU_METRIC, {}, lambda s: cpu_base + s * rps * demand_s),
        *_counter(target, count, {**route, "http_route": "/api/pitches"},
                  lambda s: 100 + s * half),
        *_counter(target, count, {**route, "http_route": "/api/pitches/{id}"},
                  lambda s: 7 + s * (rps - half)),
        *_counter(target, count, {**route, "http_route": "/health"}, lambda s: 50 + 5 * s),
        *_counter(target, count, {**route, "http_route": "/metrics"}, lambda s: 9 + s),
    ]


def _haproxy(target: str, rps: int, demand_s: float, threads: float) -> Samples:
    """The edge: HAProxy's exporter (frontend requests: clients + /status + /_edge/metrics +
    its own /metrics scrape each second; the agent backend's 2 a second) and the agent's
    CPU series and thread gauge."""
    return [
        *_counter(target, "haproxy_frontend_http_requests_total", {"proxy": "edge"},
                  lambda s: 1000 + s * (rps + 3)),
        *_counter(target, "haproxy_backend_http_responses_total",
                  {"proxy": "pitchey-edge", "code": "2xx"}, lambda s: 20 + 2 * s),
        *_counter(target, "haproxy_backend_http_responses_total",
                  {"proxy": "us-east", "code": "2xx"}, lambda s: 900 + rps * s),
        *_counter(target, "haproxy_process_nbthread", {}, lambda s: 1.0),
        *_counter(target, CPU_METRIC, {"process": "haproxy"}, lambda s: 4.0 + s * rps * demand_s),
        *_counter(target, CPU_METRIC, {"process": "edge-agent"}, lambda s: 1.0 + 0.01 * s),
        *_counter(target, "pitchey_edge_haproxy_threads", {}, lambda s: threads),
    ]


def test_counter_increase_is_reset_aware_and_counts_late_series() -> None:
    assert counter_increase([0, 1, 2], [5, 7, 10]) == 5
    assert counter_increase([2, 0, 1], [10, 5, 7]) == 5  # order of the samples is irrelevant
    assert counter_increase([0, 1, 2, 3], [5, 7, 1, 4]) == 2 + 1 + 3  # restarted at t=2
    assert counter_increase([3, 4], [2, 6], since=0) == 6  # absent at the first scrape: from 0
    assert counter_increase([], []) == 0


def test_one_process_demand_utilisation_and_x_max(tmp_path: Path) -> None:
    demand_s = 0.004
    report = service_demand(_run(tmp_path, _pitchey("service", RPS, demand_s)))
    (process,) = report.processes
    assert process.process == "service"
    assert process.requests == RPS * SECONDS  # /health and /metrics are not client requests
    assert process.cpu_s == pytest.approx(RPS * SECONDS * demand_s)
    assert process.seconds == SECONDS
    assert process.demand_ms == pytest.approx(demand_s * 1000)
    assert process.throughput_rps == pytest.approx(RPS)
    assert process.utilisation == pytest.approx(RPS * demand_s)  # U = X·D
    assert process.cores == 1
    assert process.x_max_rps == pytest.approx(1 / demand_s)
    assert "http_server_request_duration_seconds_count" in process.requests_from
    assert report.bottleneck == process and report.x_max_rps == process.x_max_rps
    assert report.client_requests == RPS * SECONDS
    assert report.per_run_request_ms == pytest.approx(demand_s * 1000)
    assert report.absent == ()
    assert {"/metrics", "/health"} <= OBSERVABILITY_ROUTES


def test_a_counter_reset_counts_the_restarted_process(tmp_path: Path) -> None:
    demand_s, per_second = 0.003, RPS * 0.003
    restarted = 5  # the process restarts between scrapes 4 and 5; its counters start at 0

    def cpu(s: int) -> float:
        return 3.0 + s * per_second if s < restarted else (s - restarted + 1) * per_second

    def requests(s: int) -> float:
        return 500 + s * RPS if s < restarted else (s - restarted + 1) * RPS

    samples = [*_counter("service", CPU_METRIC, {}, cpu),
               *_counter("service", "reference_requests_total", {}, requests)]
    (process,) = service_demand(_run(tmp_path, samples)).processes
    assert process.cpu_s == pytest.approx(SECONDS * per_second)
    assert process.requests == SECONDS * RPS
    assert process.demand_ms == pytest.approx(demand_s * 1000)
    assert process.requests_from == "reference_requests_total"


def test_geo_processes_bottleneck_and_absent_targets(tmp_path: Path) -> None:
    edge_s, worker_s, threads = 0.001, 0.004, 2.0
    samples = [
        *_haproxy("edge", RPS, edge_s, threads),
        *_pitchey("us-east", RPS, worker_s),
        # scraped, but no CPU counter
        *_counter("europe", "http_server_active_requests", {}, lambda s: 0.0),
        # CPU, but no client request in the window (a standby region)
        *_counter("asia", CPU_METRIC, {}, lambda s: 1.0 + 0.02 * s),
        *_counter("asia", "http_server_request_duration_seconds_count",
                  {"http_route": "/health"}, lambda s: 5.0 * s),
    ]
    report = service_demand(_run(tmp_path, samples))
    by_name = {p.process: p for p in report.processes}
    assert set(by_name) == {"edge", "edge/edge-agent", "us-east"}

    edge = by_name["edge"]
    assert edge.requests == RPS * SECONDS  # frontend less the agent's and the scrapes
    assert edge.demand_ms == pytest.approx(edge_s * 1000)
    assert edge.cores == threads and "pitchey_edge_haproxy_threads" in edge.cores_from
    assert edge.x_max_rps == pytest.approx(threads / edge_s)
    assert edge.utilisation == pytest.approx(RPS * edge_s)
    assert edge.busy == pytest.approx(RPS * edge_s / threads)
    agent = by_name["edge/edge-agent"]
    assert agent.cores == 1 and agent.demand_ms == pytest.approx(0.01 / RPS * 1000)

    worker = by_name["us-east"]
    assert worker.x_max_rps == pytest.approx(1 / worker_s)
    assert report.bottleneck == worker and report.x_max_rps == pytest.approx(1 / worker_s)

    absent = {a.process: a for a in report.absent}
    assert set(absent) == {"europe", "asia"}
    assert CPU_METRIC in absent["europe"].reason
    assert "no request" in absent["asia"].reason
    assert absent["asia"].cpu_s == pytest.approx(0.02 * SECONDS)

    # the whole instance: every measured process's CPU per client request
    cpu_rate = RPS * edge_s + 0.01 + RPS * worker_s + 0.02
    assert report.per_run_request_ms == pytest.approx(1000 * cpu_rate / RPS)
    assert report.instance_x_max_rps(2.0) == pytest.approx(2.0 / (cpu_rate / RPS))

    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert document["bottleneck"] == "us-east"
    assert document["x_max_rps"] == pytest.approx(1 / worker_s)
    assert {p["process"] for p in document["processes"]} == set(by_name)
    assert {a["process"] for a in document["absent"]} == {"europe", "asia"}


def test_the_edge_without_its_cpu_series_says_why(tmp_path: Path) -> None:
    samples = [s for s in _haproxy("edge", RPS, 0.001, 1.0) if s["metric"] != CPU_METRIC]
    report = service_demand(_run(tmp_path, samples))
    assert report.processes == () and report.bottleneck is None and report.x_max_rps is None
    (absent,) = report.absent
    assert absent.process == "edge" and "/_edge/metrics" in absent.reason
    assert report.per_run_request_ms is None


def test_without_a_request_counter_the_run_count_is_used(tmp_path: Path) -> None:
    demand_s = 0.002
    samples = _counter("ref", CPU_METRIC, {}, lambda s: s * RPS * demand_s)
    (process,) = service_demand(_run(tmp_path, samples)).processes
    assert process.requests_from == "run"
    assert process.requests == RPS * SECONDS
    assert process.demand_ms == pytest.approx(demand_s * 1000)


def test_a_window_selects_its_seconds(tmp_path: Path) -> None:
    def cpu(s: int) -> float:  # a heavier second half: 2 ms, then 6 ms a request
        return s * RPS * 0.002 if s <= 5 else 5 * RPS * 0.002 + (s - 5) * RPS * 0.006

    samples = [*_counter("service", CPU_METRIC, {}, cpu),
               *_counter("service", "reference_requests_total", {}, lambda s: s * RPS)]
    run = _run(tmp_path, samples)
    early = service_demand(run, start=T0, end=T0 + 5)
    late = service_demand(run, start=T0 + 5, end=T0 + 10)
    assert early.processes[0].demand_ms == pytest.approx(2.0)
    assert late.processes[0].demand_ms == pytest.approx(6.0)
    assert late.processes[0].requests == 5 * RPS
    assert late.client_requests == 5 * RPS and late.client_seconds == 5
    assert late.to_json()["window"] == {"start": T0 + 5, "end": T0 + 10}


def test_embedded_haproxy_threads_are_capped_at_the_machine(tmp_path: Path) -> None:
    run = _run(tmp_path, _haproxy("edge", RPS, 0.001, threads=1000.0), embedded=True)
    cores = run.manifest["machine"]["cpu_count"]
    edge = next(p for p in service_demand(run).processes if p.process == "edge")
    assert edge.cores == cores and "capped" in edge.cores_from


def test_a_run_without_service_series(tmp_path: Path) -> None:
    report = service_demand(_run(tmp_path, []))
    assert report.processes == () and report.bottleneck is None
    assert report.per_run_request_ms is None
    assert report.absent[0].reason == "the run scraped no service series"
    assert report.client_requests == RPS * SECONDS
    json.dumps(report.to_json(), allow_nan=False)
