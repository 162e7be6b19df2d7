"""The edge's status agent: `/status`, `/_edge/health` and the operator routes, answered
behind HAProxy from its runtime API.

HAProxy routes these paths to this small aiohttp process (the supervisor starts it). It
reads `show stat` for every region's state (health, breaker, in-flight, queue, weight,
retries) and probes each worker's non-liveness health endpoints (/health/db,
/health/services) for the degraded state HAProxy's single liveness check does not see.
Loopback operators can drain a region (`PUT /_edge/regions/{region}/state`) and inject delay
into it (`PUT /_edge/regions/{region}/latency`, forwarded to the worker's own /_geo/latency).

`GET /_edge/metrics` publishes what HAProxy's own Prometheus exporter (the edge's /metrics)
lacks: the CPU time of the edge's processes, `process_cpu_seconds_total{process="haproxy"}`
(and `"edge-agent"`, `"supervisor"`), read from /proc/<pid>/stat (HAProxy's pid from the
runtime API's `show info`), and `pitchey_edge_haproxy_threads` (its `Nbthread`). It is reached
through the edge URL like /status, so a run's scraper needs nothing but that URL, also
against a remote deployment (`collectors.models.demand` turns it into service demand).

`python -m pitchey.geo.edge_status --socket S --worker us-east=URL ...` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pitchey import __version__
from pitchey.geo.haproxy_config import REGIONS_BACKEND
from pitchey.geo.regions import GeoConfig
from pitchey.geo.runtime_api import SERVER_STATES, RuntimeApi, RuntimeApiError, ServerStat
from pitchey_cli.exitcodes import ExitCode
from pitchey_cli.usage import CommandParser

__all__ = ["AgentSettings", "create_agent_app", "region_view", "main", "proc_cpu_seconds",
           "process_cpu_seconds", "edge_metrics_text", "HAPROXY_PROCESS", "AGENT_PROCESS",
           "SUPERVISOR_PROCESS"]

log = logging.getLogger("pitchey.geo.edge_status")

_PID_HEADER = "X-Pitchey-Worker-Pid"
HAPROXY_PROCESS, AGENT_PROCESS, SUPERVISOR_PROCESS = "haproxy", "edge-agent", "supervisor"
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_PROBE_MAX_INTERVAL_S = 2.0


@dataclass(frozen=True)
class AgentSettings:
    config: GeoConfig
    workers: Mapping[str, str]  # region -> worker URL
    socket_path: str
    supervisor_pid: int | None = None
    rate_limit_per_minute: int = 100


@dataclass
class Probes:
    """The latest result of each worker endpoint probe, and the pid /health reported."""

    results: dict[str, dict[str, int | str]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)


AGENT: web.AppKey[AgentSettings] = web.AppKey("edge_agent_settings", AgentSettings)
API: web.AppKey[RuntimeApi] = web.AppKey("edge_runtime_api", RuntimeApi)
PROBES: web.AppKey[Probes] = web.AppKey("edge_probes", Probes)
STARTED: web.AppKey[float] = web.AppKey("edge_started", float)


def _health_and_breaker(status: str) -> tuple[str, str]:
    """HAProxy's server status -> (health, breaker). "DOWN 1/5" is a region on its way back
    (passing probes, not yet `rise` of them): the half-open state."""
    word = status.split(" ", 1)[0].upper()
    if word == "UP":
        return "healthy", "closed"
    if word == "DOWN":
        return "down", "half_open" if "/" in status else "open"
    if word in ("DRAIN", "NOLB"):
        return "drain", "closed"
    if word == "MAINT":
        return "maint", "closed"
    return "unknown", "closed"


def region_view(config: GeoConfig, name: str, url: str, stat: ServerStat | None,
                probes: Mapping[str, int | str], pid: int | None) -> dict[str, Any]:
    """One region's entry of /status (pure: HAProxy's row + the agent's probes)."""
    region = config.region(name)
    health, breaker = _health_and_breaker(stat.status) if stat else ("unknown", "closed")
    failed = sorted(endpoint for endpoint, result in probes.items() if result != 200)
    reason = stat.check_status if stat and health == "down" else ""
    if health == "healthy" and failed:
        health, reason = "degraded", f"failing {', '.join(failed)}"
    return {
        "name": name, "url": url, "health": health, "reason": reason, "breaker": breaker,
        "haproxy_status": stat.status if stat else None,
        "in_flight": stat.in_flight if stat else 0, "queued": stat.queued if stat else 0,
        "weight": stat.weight if stat else region.weight, "capacity": region.capacity,
        "max_in_flight": region.max_in_flight, "colos": list(region.colos), "pid": pid,
        "requests": stat.total if stat else 0,
        "failures": (stat.connect_errors + stat.response_errors) if stat else 0,
        "retries": stat.retries if stat else 0,
        "redispatches": stat.redispatches if stat else 0,
        "check_failures": stat.check_failures if stat else 0,
        "ejections": stat.downs if stat else 0,
        "last_change_s": stat.last_change_s if stat else None,
        "responses": stat.responses if stat else {}, "probes": dict(probes),
    }


def _own_row(config: GeoConfig, name: str, stats: list[ServerStat]) -> ServerStat | None:
    backend = name if config.routing == "geo" else REGIONS_BACKEND
    return next((s for s in stats if s.backend == backend and s.server == name), None)


async def status(request: web.Request) -> web.Response:
    agent, probes = request.app[AGENT], request.app[PROBES]
    config = agent.config
    try:
        stats = await request.app[API].servers()
        info = await request.app[API].info()
        reachable = True
    except RuntimeApiError as exc:
        log.warning("%s", exc)
        stats, info, reachable = [], {}, False
    regions = [region_view(config, name, agent.workers[name], _own_row(config, name, stats),
                           probes.results.get(name, {}), probes.pids.get(name))
               for name in config.names]
    body = {
        "role": "edge", "service": "pitchey-edge", "version": __version__,
        "balancer": {"name": "haproxy", "version": info.get("Version"),
                     "pid": int(info["Pid"]) if info.get("Pid", "").isdigit() else None,
                     "uptime_s": int(info.get("Uptime_sec", "0") or 0),
                     "runtime_api": "reachable" if reachable else "unreachable",
                     "connections": int(info.get("CurrConns", "0") or 0)},
        "uptime_s": round(time.monotonic() - request.app[STARTED], 3),
        "supervisor_pid": agent.supervisor_pid, "routing": config.routing,
        "primary_region": config.primary_region, "default_region": config.default_region,
        "health_check": {"interval_s": config.health.interval_s,
                         "timeout_s": config.health.timeout_s,
                         "retries": config.health.retries,
                         "endpoints": list(config.health.endpoints)},
        "breaker": {"consecutive_errors": config.breaker.consecutive_errors,
                    "sleep_window_s": config.breaker.sleep_window_s,
                    "success_threshold": config.breaker.success_threshold},
        "edge_cache": {"ttl_s": config.cache.edge_ttl_s, "size_mb": config.cache.edge_size_mb,
                       "paths": list(config.cache.edge_paths)},
        "latency_model": {"enabled": config.latency.enabled, "applied_by": "workers"},
        "rate_limit": {"per_minute": agent.rate_limit_per_minute,
                       "scope": "edge (HAProxy stick table, per client address)"},
        "regions": regions,
    }
    return web.json_response(body, dumps=lambda obj: json.dumps(obj, indent=2))


async def edge_health(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    try:
        stats = await request.app[API].servers()
    except RuntimeApiError:
        return _error(503, "runtime_api_unreachable", "the edge's load balancer does not answer")
    routable = [name for name in agent.config.names
                if (row := _own_row(agent.config, name, stats)) is not None
                and _health_and_breaker(row.status)[0] == "healthy"]
    return web.json_response({"status": "ok" if routable else "unavailable",
                              "routable_regions": routable}, status=200 if routable else 503)


def proc_cpu_seconds(stat: str, ticks_per_s: float) -> float:
    """User + system CPU seconds of a `/proc/<pid>/stat` line (pure). The command name, in
    parentheses, may hold spaces or parentheses itself: fields are counted after the last
    ")". utime and stime (fields 14 and 15) cover every thread of the process."""
    fields = stat[stat.rindex(")") + 1:].split()  # fields[0] is field 3, the state
    return (int(fields[11]) + int(fields[12])) / ticks_per_s


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """The CPU seconds process `pid` has used, or None when they cannot be read (no such
    process, no /proc on this system, another PID namespace)."""
    try:
        return proc_cpu_seconds((proc / str(pid) / "stat").read_text(),
                                os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def edge_metrics_text(cpu: Mapping[str, float], haproxy_threads: int | None) -> bytes:
    """The /_edge/metrics exposition (pure): CPU seconds per edge process, HAProxy's threads."""
    family = CounterMetricFamily("process_cpu_seconds", "Total user and system CPU time spent "
                                 "in seconds, per process of the edge.", labels=["process"])
    for name, seconds in sorted(cpu.items()):
        family.add_metric([name], seconds)
    families: list[Metric] = [family]
    if haproxy_threads is not None:
        families.append(GaugeMetricFamily(
            "pitchey_edge_haproxy_threads",
            "HAProxy's threads (show info Nbthread): how many cores it can use.",
            value=haproxy_threads))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


async def edge_metrics(request: web.Request) -> web.Response:
    """CPU of HAProxy (its pid from `show info`), this agent and the supervisor."""
    agent = request.app[AGENT]
    pids = {AGENT_PROCESS: os.getpid()}
    if agent.supervisor_pid is not None:
        pids[SUPERVISOR_PROCESS] = agent.supervisor_pid
    try:
        info = await request.app[API].info()
    except RuntimeApiError as exc:  # no haproxy series: the demand model says why
        log.debug("%s", exc)
        info = {}
    if info.get("Pid", "").isdigit():
        pids[HAPROXY_PROCESS] = int(info["Pid"])
    threads = int(info["Nbthread"]) if info.get("Nbthread", "").isdigit() else None
    cpu = {name: seconds for name, pid in pids.items()
           if (seconds := process_cpu_seconds(pid)) is not None}
    return web.Response(body=edge_metrics_text(cpu, threads),
                        headers={"Content-Type": _PROMETHEUS_TEXT})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "code": code, "message": message}},
                             status=status)


def _from_loopback(request: web.Request) -> bool:
    """The real client is the address HAProxy appended last; the agent's own peer is HAProxy."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    client = forwarded[-1].rsplit(",", 1)[-1].strip() if forwarded else (request.remote or "")
    try:
        return ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False


async def _region_of(request: web.Request) -> str | web.Response:
    name = request.match_info["region"]
    if name not in request.app[AGENT].config.names:
        return _error(404, "unknown_region", f"no region named {name!r}")
    if request.method != "GET" and not _from_loopback(request):
        return _error(403, "forbidden", "operator routes are for loopback clients only")
    return name


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", "the body is not valid JSON")
    if not isinstance(body, dict):
        return _error(422, "validation_failed", "the body must be a JSON object")
    return body


async def region_state(request: web.Request) -> web.Response:
    """GET shows, PUT {"state": "ready|drain|maint"} sets a region's state through the
    runtime API (what `pitchey failover --drain` does)."""
    name = await _region_of(request)
    if isinstance(name, web.Response):
        return name
    agent, api = request.app[AGENT], request.app[API]
    backend = name if agent.config.routing == "geo" else REGIONS_BACKEND
    if request.method == "PUT":
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        state = body.get("state")
        if state not in SERVER_STATES:
            return _error(422, "validation_failed",
                          f"state must be one of {', '.join(SERVER_STATES)}")
        try:
            await api.set_state(backend, name, str(state))
        except RuntimeApiError as exc:
            return _error(502, "runtime_api_error", str(exc))
        log.warning("region %s: state set to %s by an operator", name, state)
    try:
        row = _own_row(agent.config, name, await api.servers())
    except RuntimeApiError as exc:
        return _error(502, "runtime_api_error", str(exc))
    return web.json_response({"region": name, "haproxy_status": row.status if row else None,
                              "health": _health_and_breaker(row.status)[0] if row else None})


async def region_latency(request: web.Request) -> web.Response:
    """GET shows, PUT {"extra_ms": N} sets the delay injected into one region's worker."""
    name = await _region_of(request)
    if isinstance(name, web.Response):
        return name
    url = request.app[AGENT].workers[name] + "/_geo/latency"
    body = await request.read() if request.method == "PUT" else None
    try:
        async with aiohttp.ClientSession() as session, session.request(
                request.method, url, data=body,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=5)) as response:
            return web.Response(status=response.status, body=await response.read(),
                                content_type="application/json")
    except (aiohttp.ClientError, TimeoutError):
        return _error(502, "worker_unreachable", f"the {name} worker does not answer")


async def _probe_loop(app: web.Application) -> None:
    agent, probes = app[AGENT], app[PROBES]
    health = agent.config.health
    timeout = aiohttp.ClientTimeout(total=health.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        while True:
            await asyncio.gather(*(_probe_region(session, agent, probes, name)
                                   for name in agent.config.names))
            # at least every 2 s: a restarted worker's pid shows in /status within that
            await asyncio.sleep(min(health.interval_s, _PROBE_MAX_INTERVAL_S))


async def _probe_region(session: aiohttp.ClientSession, agent: AgentSettings, probes: Probes,
                        name: str) -> None:
    results: dict[str, int | str] = {}
    for endpoint in agent.config.health.endpoints:
        try:
            async with session.get(agent.workers[name] + endpoint) as response:
                await response.read()
                results[endpoint] = response.status
                pid = response.headers.get(_PID_HEADER, "")
                if pid.isdigit():
                    probes.pids[name] = int(pid)
        except (aiohttp.ClientError, TimeoutError) as exc:
            results[endpoint] = type(exc).__name__
    # the liveness endpoint is HAProxy's to judge; the others make a region degraded
    probes.results[name] = {k: v for k, v in results.items()
                            if k != agent.config.health.endpoints[0]}


async def _run_probes(app: web.Application) -> Any:
    task = asyncio.create_task(_probe_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_agent_app(settings: AgentSettings,
                     clock: Callable[[], float] = time.monotonic) -> web.Application:
    app = web.Application()
    app[AGENT] = settings
    app[API] = RuntimeApi(settings.socket_path)
    app[PROBES] = Probes()
    app[STARTED] = clock()
    app.router.add_get("/status", status)
    app.router.add_get("/_edge/health", edge_health)
    app.router.add_get("/_edge/metrics", edge_metrics)
    app.router.add_route("GET", "/_edge/regions/{region}/state", region_state)
    app.router.add_route("PUT", "/_edge/regions/{region}/state", region_state)
    app.router.add_route("GET", "/_edge/regions/{region}/latency", region_latency)
    app.router.add_route("PUT", "/_edge/regions/{region}/latency", region_latency)
    app.cleanup_ctx.append(_run_probes)
    return app


def main(argv: list[str] | None = None) -> ExitCode:
    parser = CommandParser(prog="python -m pitchey.geo.edge_status",
                                     description="The geo edge's status agent.")
    parser.add_argument("--socket", required=True, help="HAProxy's runtime API socket")
    parser.add_argument("--worker", action="append", default=[], metavar="REGION=URL")
    parser.add_argument("--regions", default=None, metavar="FILE", help="regions YAML")
    parser.add_argument("--fd", type=int, default=None, help="inherited listening socket")
    parser.add_argument("--rate-limit", type=int, default=100)
    args = parser.parse_args(argv)
    from pitchey.geo.config_file import GeoConfigError, load_geo_config
    from pitchey.geo.serving import serve_app

    logging.basicConfig(level=logging.WARNING, format="[edge agent] %(name)s: %(message)s")
    try:
        config = load_geo_config(args.regions)
    except GeoConfigError as exc:
        print(f"pitchey edge agent: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    workers = dict(item.split("=", 1) for item in args.worker)
    supervisor = os.environ.get("PITCHEY_SUPERVISOR_PID", "")
    app = create_agent_app(AgentSettings(
        config, workers, args.socket,
        supervisor_pid=int(supervisor) if supervisor.isdigit() else None,
        rate_limit_per_minute=args.rate_limit))
    asyncio.run(serve_app(app, fd=args.fd, banner=lambda url: f"pitchey edge agent: "
                          f"listening on {url} (pid {os.getpid()})"))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
