"""Service demand per process: CPU seconds per completed request, from the scraped series.

The utilisation law (Denning and Buzen): a process that completes X requests per second and
spends D CPU seconds on each is busy U = X·D of one core; with `c` cores it cannot complete
more than X_max = c / D requests per second, whatever the load generator does. The process
with the smallest X_max is the bottleneck. Everything comes from the run directory's scraped
series (`run.service`), so it works the same against a remote deployment.

Per scrape target (the `target` column: "service", "edge", "us-east", ...):

- CPU: `process_cpu_seconds_total` (prometheus_client's process collector; the edge agent
  publishes HAProxy's under the same name with `process="haproxy"`, beside
  `process="edge-agent"` and `process="supervisor"`). A series whose `process` label is
  absent or "haproxy" is the target itself; any other label value is reported as
  "<target>/<process>". Its increase over the window is reset-aware: a drop (a restarted
  process) counts the new value, as Prometheus's `increase()` does.
- Completed requests, the first counter the target exposes of:
  1. `reference_requests_total` (the validation's reference server), every series;
  2. `http_server_request_duration_seconds_count` (pitchey), every series except the routes
     the scraper and the edge's health checks call (`OBSERVABILITY_ROUTES`), so demand is per
     client request and the observability overhead is part of it;
  3. `haproxy_frontend_http_requests_total` (the edge), less the requests HAProxy handed to
     the status agent (`haproxy_backend_http_responses_total{proxy="pitchey-edge"}`) and less
     the scrapes of its own /metrics (one per sample after the first);
  4. otherwise the run's own client request count over the same seconds (the stats table).
  A series that appears after the window's first scrape counts from zero (labelled counters
  are created on first use).
- Cores: 1 for a Python process (one event loop); HAProxy's threads
  (`pitchey_edge_haproxy_threads`, else `haproxy_process_nbthread`), at most the machine's
  cores when the platform ran embedded on the generator's machine (the manifest's
  `machine.cpu_count`).

A target whose series lack the CPU counter (or have fewer than two samples of it, or whose
process completed no request in the window) is listed in `DemandReport.absent` with the
reason, never silently dropped. `per_run_request_ms` is the whole instance's demand: the CPU
of every process (absent ones whose CPU was measured included) per client request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from collectors.run import Run

__all__ = [
    "CPU_METRIC",
    "HAPROXY_THREADS",
    "OBSERVABILITY_ROUTES",
    "REQUEST_COUNTERS",
    "AbsentProcess",
    "DemandReport",
    "ProcessDemand",
    "counter_increase",
    "service_demand",
]

CPU_METRIC = "process_cpu_seconds_total"
REFERENCE_REQUESTS = "reference_requests_total"
PITCHEY_REQUESTS = "http_server_request_duration_seconds_count"
HAPROXY_REQUESTS = "haproxy_frontend_http_requests_total"
HAPROXY_BACKEND_RESPONSES = "haproxy_backend_http_responses_total"
REQUEST_COUNTERS = (REFERENCE_REQUESTS, PITCHEY_REQUESTS, HAPROXY_REQUESTS)
HAPROXY_THREADS = ("pitchey_edge_haproxy_threads", "haproxy_process_nbthread")
# what the scraper (/metrics, /status) and HAProxy's health checks (/health...) call
OBSERVABILITY_ROUTES = frozenset({"/metrics", "/status", "/health", "/health/db",
                                  "/health/services"})
_AGENT_BACKEND = "pitchey-edge"  # pitchey.geo.haproxy_config.AGENT_BACKEND (no import: layers)
_HAPROXY = "haproxy"
_STATS_INTERVAL_S = 1.0  # a stats row is one second of one cell
_NEEDED = {"t", "target", "metric", "labels", "value"}


@dataclass(frozen=True)
class ProcessDemand:
    """One process's service demand over the window (the utilisation law's terms)."""

    process: str  # the scrape target ("edge", "service", "us-east"), or "<target>/<process>"
    cpu_s: float  # CPU seconds used over `seconds`
    requests: int  # requests it completed (its own counter when scraped, else the run's)
    demand_ms: float  # D: CPU ms per request
    throughput_rps: float  # X
    utilisation: float  # U = X·D, in cores (1.0: one core busy all the time)
    cores: float  # the cores it can use
    x_max_rps: float  # cores / D
    seconds: float = 0.0  # between its first and last CPU sample in the window
    requests_from: str = "run"  # the counter read, or "run" (the client's count)
    cores_from: str = "one Python process"

    @property
    def busy(self) -> float:
        """U over the cores it can use (1.0: saturated)."""
        return self.utilisation / self.cores if self.cores > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        return {"process": self.process, "cpu_s": _num(self.cpu_s), "requests": self.requests,
                "demand_ms": _num(self.demand_ms), "throughput_rps": _num(self.throughput_rps),
                "utilisation": _num(self.utilisation), "busy": _num(self.busy),
                "cores": _num(self.cores), "x_max_rps": _num(self.x_max_rps),
                "seconds": _num(self.seconds), "requests_from": self.requests_from,
                "cores_from": self.cores_from}


@dataclass(frozen=True)
class AbsentProcess:
    """A scraped target (or one of its processes) without a demand, and why."""

    process: str
    reason: str
    cpu_s: float | None = None  # measured CPU, when only the requests were missing
    cpu_rate: float | None = None  # CPU seconds per second (cores busy), likewise

    def to_json(self) -> dict[str, Any]:
        return {"process": self.process, "reason": self.reason,
                "cpu_s": None if self.cpu_s is None else _num(self.cpu_s),
                "cpu_rate": None if self.cpu_rate is None else _num(self.cpu_rate)}


@dataclass(frozen=True)
class DemandReport:
    """Service demand of every scraped process over one window of a run."""

    processes: tuple[ProcessDemand, ...]
    absent: tuple[AbsentProcess, ...] = ()
    client_requests: int = 0  # the run's completed client requests in the window
    client_seconds: float = 0.0
    start: float | None = None
    end: float | None = None

    @property
    def bottleneck(self) -> ProcessDemand | None:
        """The process with the smallest X_max (None when no demand was measured)."""
        usable = [p for p in self.processes if math.isfinite(p.x_max_rps)]
        return min(usable, key=lambda p: p.x_max_rps) if usable else None

    @property
    def x_max_rps(self) -> float | None:
        """The bottleneck's X_max: the most client requests per second the instance can
        complete, as the utilisation law bounds it."""
        bottleneck = self.bottleneck
        return bottleneck.x_max_rps if bottleneck is not None else None

    @property
    def client_rps(self) -> float:
        return self.client_requests / self.client_seconds if self.client_seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """CPU seconds per second of every measured process together (cores busy)."""
        rates = [p.utilisation for p in self.processes]
        rates += [a.cpu_rate for a in self.absent if a.cpu_rate is not None]
        return float(sum(rates))

    @property
    def per_run_request_ms(self) -> float | None:
        """The whole instance's demand: CPU ms of every measured process per completed client
        request (None without client requests or without any CPU series)."""
        has_cpu = self.processes or any(a.cpu_rate is not None for a in self.absent)
        if not has_cpu or self.client_rps <= 0:
            return None
        return 1000.0 * self.cpu_rate / self.client_rps

    def instance_x_max_rps(self, cores: float) -> float | None:
        """X_max of an instance whose processes share `cores` cores: cores / whole demand."""
        demand = self.per_run_request_ms
        return 1000.0 * cores / demand if demand else None

    def to_json(self) -> dict[str, Any]:
        bottleneck = self.bottleneck
        whole = self.per_run_request_ms
        return {
            "window": {"start": self.start, "end": self.end},
            "client_requests": self.client_requests,
            "client_seconds": _num(self.client_seconds),
            "client_rps": _num(self.client_rps),
            "processes": [p.to_json() for p in self.processes],
            "absent": [a.to_json() for a in self.absent],
            "bottleneck": bottleneck.process if bottleneck is not None else None,
            "x_max_rps": None if bottleneck is None else _num(bottleneck.x_max_rps),
            "per_run_request_ms": None if whole is None else _num(whole),
            "cpu_rate": _num(self.cpu_rate),
        }


# --- pure helpers -----------------------------------------------------------------------------

def counter_increase(times: Any, values: Any, *, since: float | None = None) -> float:
    """A counter's increase over its samples (any order), reset-aware: a drop counts the new
    value. A series first seen after `since` (the first scrape of the window) started at 0."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return 0.0
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    steps = np.diff(v)
    total = float(np.where(steps >= 0, steps, v[1:]).sum())
    if since is not None and t[0] > since:
        total += float(v[0])
    return total


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class _Labels:
    """Parses canonical label JSON once per distinct text."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, str]] = {}

    def __call__(self, text: object) -> dict[str, str]:
        key = str(text or "")
        found = self._cache.get(key)
        if found is None:
            try:
                parsed = json.loads(key) if key else {}
            except ValueError:
                parsed = {}
            found = self._cache[key] = ({str(k): str(v) for k, v in parsed.items()}
                                        if isinstance(parsed, dict) else {})
        return found


@dataclass(frozen=True)
class _Count:
    requests: float
    seconds: float
    source: str


def _series_increase(frame: pd.DataFrame, keep: Any = None) -> tuple[float, float, float, int]:
    """(increase summed over label sets, first t, last t, distinct sample times) of one
    metric's rows; `keep(labels)` filters the label sets."""
    labels = _Labels()
    since = float(frame["t"].min())
    total = 0.0
    for text, rows in frame.groupby("labels", sort=False):
        if keep is not None and not keep(labels(text)):
            continue
        total += counter_increase(rows["t"].to_numpy(), rows["value"].to_numpy(), since=since)
    return total, since, float(frame["t"].max()), int(frame["t"].nunique())


def _own_requests(frame: pd.DataFrame) -> _Count | None:
    """Requests a target's own counter says it completed, or None if it exposes none."""
    by_metric = {str(name): rows for name, rows in frame.groupby("metric", sort=False)}
    rows = by_metric.get(REFERENCE_REQUESTS)
    if rows is not None and rows["t"].nunique() >= 2:
        total, first, last, _ = _series_increase(rows)
        return _Count(total, last - first, REFERENCE_REQUESTS)
    rows = by_metric.get(PITCHEY_REQUESTS)
    if rows is not None and rows["t"].nunique() >= 2:
        total, first, last, _ = _series_increase(
            rows, lambda labels: labels.get("http_route") not in OBSERVABILITY_ROUTES)
        return _Count(total, last - first,
                      f"{PITCHEY_REQUESTS} (without {', '.join(sorted(OBSERVABILITY_ROUTES))})")
    rows = by_metric.get(HAPROXY_REQUESTS)
    if rows is not None and rows["t"].nunique() >= 2:
        total, first, last, samples = _series_increase(rows)
        agent = by_metric.get(HAPROXY_BACKEND_RESPONSES)
        handed = 0.0
        if agent is not None:
            agent = agent[(agent["t"] >= first) & (agent["t"] <= last)]
            if agent["t"].nunique() >= 2:
                handed = _series_increase(
                    agent, lambda labels: labels.get("proxy") == _AGENT_BACKEND)[0]
        requests = max(0.0, total - handed - (samples - 1))
        return _Count(requests, last - first, f"{HAPROXY_REQUESTS} (less the status agent's "
                      "and the /metrics scrapes)")
    return None


def _client_requests(stats: pd.DataFrame, start: float, end: float) -> float:
    """The run's client requests in [start, end), each stats second weighted by its overlap."""
    if stats.empty or end <= start:
        return 0.0
    t = stats["t"].to_numpy(dtype=float)
    overlap = np.clip(np.minimum(t + _STATS_INTERVAL_S, end) - np.maximum(t, start), 0.0,
                      _STATS_INTERVAL_S) / _STATS_INTERVAL_S
    return float((overlap * stats["requests"].to_numpy(dtype=float)).sum())


def _cores(frame: pd.DataFrame, process_label: str | None, machine_cores: float | None
           ) -> tuple[float, str]:
    if process_label != _HAPROXY:
        return 1.0, "one Python process" if process_label is None else "one process"
    for metric in HAPROXY_THREADS:
        rows = frame[frame["metric"] == metric]
        if not rows.empty:
            threads = float(rows.sort_values("t")["value"].iloc[-1])
            if threads >= 1:
                if machine_cores is not None and threads > machine_cores:
                    return machine_cores, (f"HAProxy's {threads:g} threads ({metric}), capped "
                                           f"at the machine's {machine_cores:g} cores")
                return threads, f"HAProxy's threads ({metric})"
    return 1.0, "HAProxy's threads unknown (no thread gauge scraped): 1 assumed"


def _machine_cores(run: Run) -> float | None:
    """The machine's cores when the platform ran on the generator's machine (embedded)."""
    if not run.topology.get("embedded"):
        return None
    count = (run.manifest.get("machine") or {}).get("cpu_count")
    return float(count) if isinstance(count, int | float) and count > 0 else None


def _process_name(target: str, process_label: str | None) -> str:
    return target if process_label in (None, _HAPROXY) else f"{target}/{process_label}"


def _target_demand(
    target: str, frame: pd.DataFrame, stats: pd.DataFrame, machine_cores: float | None,
) -> tuple[list[ProcessDemand], list[AbsentProcess]]:
    labels = _Labels()
    cpu = frame[frame["metric"] == CPU_METRIC]
    if cpu.empty:
        edge = bool(frame["metric"].isin([HAPROXY_REQUESTS, *HAPROXY_THREADS]).any())
        why = ("no process_cpu_seconds_total scraped from the edge: HAProxy's exporter has "
               "none, and the edge agent's /_edge/metrics was not scraped (or could not read "
               "HAProxy's pid)" if edge else
               f"no {CPU_METRIC} in its /metrics (the process exports no CPU counter, or its "
               "scrapes failed)")
        return [], [AbsentProcess(target, why)]
    own = _own_requests(frame)
    found: list[ProcessDemand] = []
    absent: list[AbsentProcess] = []
    for text, rows in cpu.groupby("labels", sort=True):
        process_label = labels(text).get("process")
        name = _process_name(target, process_label)
        if rows["t"].nunique() < 2:
            absent.append(AbsentProcess(name, "fewer than two CPU samples in the window"))
            continue
        first, last = float(rows["t"].min()), float(rows["t"].max())
        seconds = last - first
        cpu_s = counter_increase(rows["t"].to_numpy(), rows["value"].to_numpy())
        cpu_rate = cpu_s / seconds
        if own is not None and own.seconds > 0:
            throughput, source = own.requests / own.seconds, own.source
            requests = own.requests * seconds / own.seconds
        else:
            requests = _client_requests(stats, first, last)
            throughput, source = requests / seconds, "run"
        if throughput <= 0:
            absent.append(AbsentProcess(
                name, f"completed no request in the window ({source}); its CPU is counted in "
                "the whole instance's demand", cpu_s=cpu_s, cpu_rate=cpu_rate))
            continue
        demand_s = cpu_rate / throughput
        cores, cores_from = _cores(frame, process_label, machine_cores)
        found.append(ProcessDemand(
            process=name, cpu_s=cpu_s, requests=round(requests),
            demand_ms=1000.0 * demand_s, throughput_rps=throughput, utilisation=cpu_rate,
            cores=cores, x_max_rps=cores / demand_s if demand_s > 0 else math.inf,
            seconds=seconds, requests_from=source, cores_from=cores_from))
    return found, absent


# --- the model --------------------------------------------------------------------------------

def service_demand(run: Run, *, start: float | None = None,
                   end: float | None = None) -> DemandReport:
    """Service demand of every process the run scraped, over [start, end] (epoch seconds;
    None: from the first to the end of the last second with client requests, so that the
    start-up and wind-down scrapes do not dilute the CPU rates)."""
    stats = run.stats
    if start is not None:
        stats = stats[stats["t"] >= start]
    if end is not None:
        stats = stats[stats["t"] < end]
    if stats.empty:
        low, high = start or 0.0, end or 0.0
    else:
        low = start if start is not None else float(stats["t"].min())
        high = end if end is not None else float(stats["t"].max()) + _STATS_INTERVAL_S
    client_requests = round(_client_requests(stats, low, high))
    client_seconds = max(0.0, high - low)
    service = run.service
    if service is None or service.empty or not _NEEDED <= set(service.columns):
        return DemandReport((), (AbsentProcess("*", "the run scraped no service series"),),
                            client_requests, client_seconds, start, end)
    if high > low:  # the client's seconds: rates of CPU and of requests over the same time
        service = service[(service["t"] >= low) & (service["t"] <= high)]
    machine_cores = _machine_cores(run)
    processes: list[ProcessDemand] = []
    absent: list[AbsentProcess] = []
    for target, frame in _by_target(service).items():
        found, missing = _target_demand(target, frame, stats, machine_cores)
        processes += found
        absent += missing
    return DemandReport(tuple(processes), tuple(absent), client_requests, client_seconds,
                        start, end)


def _by_target(service: pd.DataFrame) -> Mapping[str, pd.DataFrame]:
    """Each scraped target's rows of the metrics demand reads (the rest is never copied)."""
    wanted = [CPU_METRIC, HAPROXY_BACKEND_RESPONSES, *REQUEST_COUNTERS, *HAPROXY_THREADS]
    targets = sorted(str(t) for t in service["target"].unique())
    rows = service[service["metric"].isin(wanted)]
    grouped = {str(name): frame for name, frame in rows.groupby("target", sort=True)}
    return {target: grouped.get(target, rows.iloc[0:0]) for target in targets}
