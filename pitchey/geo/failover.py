"""`pitchey failover REGION [--url URL] [--duration S] [--drain [drain|maint]] [--json]`
(the `test-failover.sh` of "Pitchey Platform - Auto-Scaling & Load Balancing Architecture",
§ Deployment Guide › 5. Test Load Balancing).

While steady mixed traffic from REGION's users runs through the edge, SIGKILL that region's
worker, measure how long the edge takes to notice and to reroute and how many requests
failed, ask the supervisor to restart the worker (SIGUSR1), measure how long the region takes
to rejoin, then check that every write the service acknowledged is present. The topology
must run on this host (`pitchey serve --topology geo`), since the worker is killed by pid.
With `--drain` the worker is not killed: the region is set to HAProxy's `drain` (or `maint`)
state through the edge's loopback-only operator route (HAProxy's runtime API), and set back
to `ready` at the restart time, as an operator takes a region out of rotation.

Timeline for --duration D: traffic from 0 to D; kill at D/4; restart at D/2 (never before the
edge has noticed, plus a moment to measure the rerouted traffic); writes verified after D.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from pitchey.geo.failover_args import add_arguments
from pitchey.geo.traffic import REGION_HEADER, Sample, TrafficDriver, login
from pitchey_cli.exitcodes import ExitCode

__all__ = ["add_arguments", "main", "run_failover", "FailoverOptions", "FailoverReport",
           "FailoverError", "summarize"]

_POLL_S = 0.05
# None at all: a GET in flight at the kill is retried by the edge, and so is a write, which
# carries an Idempotency-Key so that the next region executes it once (pitchey.idempotency)
FAILED_PCT_TARGET = 0.0


class FailoverError(Exception):
    """The failover cannot run (no edge at the URL, unknown region, remote topology...)."""


@dataclass(frozen=True)
class FailoverOptions:
    region: str
    url: str = "http://127.0.0.1:8001"
    duration_s: float = 30.0
    concurrency: int = 4
    write_ratio: float = 0.1
    kill_at_s: float | None = None
    restart_at_s: float | None = None
    drain: str | None = None  # "drain" or "maint": take the region out instead of killing it


@dataclass
class Observation:
    """The edge's view of the region over time (from /status)."""

    t: float
    health: str
    breaker: str
    pid: int | None


@dataclass
class FailoverReport:
    region: str
    url: str
    duration_s: float
    health_interval_s: float
    killed_pid: int | None
    kill_at_s: float
    restart_at_s: float | None
    restart_method: str
    requests: int
    failed: int
    failed_pct: float
    failures_by_kind: dict[str, int]
    time_to_detect_s: float | None
    time_to_reroute_s: float | None
    served_during_outage: dict[str, int]
    time_to_rejoin_s: float | None
    time_to_traffic_back_s: float | None
    new_pid: int | None
    writes_acknowledged: int
    writes_present: int
    writes_missing: list[int]
    acknowledged_ids: list[int] = field(default_factory=list)
    drained: str | None = None
    notes: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["passed"] = self.passed
        return body


def main(args: argparse.Namespace) -> ExitCode:
    """Run the failover and print its report: OK when every check holds, BREACH when one
    fails, CONFIG when it cannot run (no geo edge at the URL, unknown region...)."""
    options = FailoverOptions(region=args.region, url=args.url.rstrip("/"),
                              duration_s=float(args.duration),
                              concurrency=int(getattr(args, "concurrency", 4)),
                              write_ratio=float(getattr(args, "write_ratio", 0.1)),
                              drain=getattr(args, "drain", None))
    try:
        report = asyncio.run(run_failover(options))
    except FailoverError as exc:
        print(f"pitchey failover: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(render(report)))
    return ExitCode.OK if report.passed else ExitCode.BREACH


async def _status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        async with session.get(f"{url}/status", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise FailoverError(f"no geo edge answers at {url}/status ({type(exc).__name__})") from None
    if not isinstance(body, dict) or body.get("role") != "edge":
        raise FailoverError(f"{url} is not a geo edge (start it with "
                            "`pitchey serve --topology geo`)")
    return body


def _region_entry(status: dict[str, Any], region: str) -> dict[str, Any]:
    for entry in status.get("regions", []):
        if entry.get("name") == region:
            return dict(entry)
    names = ", ".join(str(e.get("name")) for e in status.get("regions", []))
    raise FailoverError(f"unknown region {region!r} (the edge has {names})")


async def _known_region(session: aiohttp.ClientSession, options: FailoverOptions,
                        status: dict[str, Any], clock: Callable[[], float],
                        wait_s: float) -> dict[str, Any]:
    """The region's /status entry once the edge has learned its worker's pid (the first
    health check after a start may still be on its way)."""
    deadline = clock() + wait_s
    entry = _region_entry(status, options.region)
    while not isinstance(entry.get("pid"), int) and clock() < deadline:
        await asyncio.sleep(_POLL_S)
        entry = _region_entry(await _status(session, options.url), options.region)
    return entry


def _local_pid(pid: object, what: str) -> int:
    if not isinstance(pid, int):
        raise FailoverError(f"the edge does not know the pid of {what} (is it running? "
                            "see the edge's /status)")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise FailoverError(f"{what} (pid {pid}) is not running on this host: failover "
                            "needs the topology on this machine") from None
    except PermissionError:
        raise FailoverError(f"not allowed to signal {what} (pid {pid})") from None
    return pid


async def run_failover(
    options: FailoverOptions, *, clock: Callable[[], float] = time.monotonic
) -> FailoverReport:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=max(16, options.concurrency * 2))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        status = await _status(session, options.url)
        interval = float(status.get("health_check", {}).get("interval_s", 30.0))
        entry = await _known_region(session, options, status, clock,
                                    wait_s=max(5.0, 2 * interval))
        victim = (_local_pid(entry.get("pid"), f"the {options.region} worker")
                  if options.drain is None else int(entry.get("pid") or 0))
        supervisor = status.get("supervisor_pid")
        token = await login(session, options.url, options.region)
        tag = f"failover-{uuid.uuid4().hex[:8]}"
        driver = TrafficDriver(options.url, options.region, token,
                               concurrency=options.concurrency,
                               write_ratio=options.write_ratio, tag=tag, clock=clock)
        started = clock()
        kill_at = started + (options.kill_at_s if options.kill_at_s is not None
                             else options.duration_s / 4)
        restart_at = started + (options.restart_at_s if options.restart_at_s is not None
                                else options.duration_s / 2)
        until = started + options.duration_s
        observations: list[Observation] = []
        plan = _Plan(victim, supervisor if isinstance(supervisor, int) else None,
                     drain=options.drain)
        actions = (_act(plan, observations, kill_at, restart_at, clock)
                   if options.drain is None else
                   _drain(session, options, plan, observations, kill_at, restart_at, clock))
        await asyncio.gather(
            driver.run(session, until),
            _watch(session, options, observations, until, clock),
            actions,
        )
        present, missing = await _verify_writes(session, options, driver)
    notes = []
    if token is None:
        notes.append("could not sign in as alex.creator@demo.com (run `pitchey seed`): "
                     "reads only, no writes checked")
    if any(s.status == 429 for s in driver.samples):
        notes.append("requests were rate limited (429): run the topology with "
                     "PITCHEY_RATE_LIMIT_PER_MINUTE=0")
    return summarize(options, driver.samples, observations, plan, started, interval,
                     present, missing, notes)


@dataclass
class _Plan:
    victim: int
    supervisor: int | None
    killed_at: float | None = None
    restart_requested_at: float | None = None
    restart_method: str = "none"
    drain: str | None = None


async def _act(plan: _Plan, observations: list[Observation], kill_at: float,
               restart_at: float, clock: Callable[[], float]) -> None:
    await asyncio.sleep(max(0.0, kill_at - clock()))
    os.kill(plan.victim, signal.SIGKILL)
    plan.killed_at = clock()
    # Restart once the edge has noticed (or at the planned time, whichever is later),
    # leaving a moment of rerouted traffic to measure.
    while clock() < restart_at or not _noticed(observations, plan.killed_at):
        if clock() > restart_at + 60.0:
            break
        await asyncio.sleep(_POLL_S)
    plan.restart_requested_at = clock()
    if plan.supervisor is not None:
        try:
            os.kill(plan.supervisor, signal.SIGUSR1)
            plan.restart_method = f"SIGUSR1 to supervisor pid {plan.supervisor}"
        except OSError:
            plan.restart_method = "supervisor's automatic restart"
    else:
        plan.restart_method = "supervisor's automatic restart"


async def _drain(session: aiohttp.ClientSession, options: FailoverOptions, plan: _Plan,
                 observations: list[Observation], drain_at: float, ready_at: float,
                 clock: Callable[[], float]) -> None:
    """Set the region to drain/maint at `drain_at` and back to ready at `ready_at`."""
    assert options.drain is not None
    await asyncio.sleep(max(0.0, drain_at - clock()))
    await _set_state(session, options, options.drain)
    plan.killed_at = clock()
    while clock() < ready_at or not _noticed(observations, plan.killed_at):
        if clock() > ready_at + 60.0:
            break
        await asyncio.sleep(_POLL_S)
    plan.restart_requested_at = clock()
    await _set_state(session, options, "ready")
    plan.restart_method = "state ready through HAProxy's runtime API"


async def _set_state(session: aiohttp.ClientSession, options: FailoverOptions,
                     state: str) -> None:
    url = f"{options.url}/_edge/regions/{options.region}/state"
    async with session.put(url, json={"state": state}) as response:
        body = await response.text()
        if response.status != 200:
            raise FailoverError(f"the edge refused state {state!r} for {options.region} "
                                f"(HTTP {response.status}: {body.strip()[:200]})")


_OUT_OF_ROTATION = frozenset({"down", "drain", "maint"})


def _noticed(observations: list[Observation], since: float) -> bool:
    return any(o.t >= since and (o.health in _OUT_OF_ROTATION or o.breaker == "open")
               for o in observations)


async def _watch(session: aiohttp.ClientSession, options: FailoverOptions,
                 observations: list[Observation], until: float,
                 clock: Callable[[], float]) -> None:
    while clock() < until:
        try:
            entry = _region_entry(await _status(session, options.url), options.region)
            pid = entry.get("pid")
            observations.append(Observation(clock(), str(entry.get("health")),
                                            str(entry.get("breaker")),
                                            pid if isinstance(pid, int) else None))
        except FailoverError:
            pass  # the edge itself is busy or restarting; the traffic records the effect
        await asyncio.sleep(_POLL_S)


async def _verify_writes(session: aiohttp.ClientSession, options: FailoverOptions,
                         driver: TrafficDriver) -> tuple[int, list[int]]:
    """Read back every pitch whose creation was acknowledged."""
    ids = [s.pitch_id for s in driver.samples if s.kind == "write" and s.ok and s.pitch_id]
    headers = {REGION_HEADER: options.region}
    if driver.token:
        headers["Cookie"] = f"pitchey_session={driver.token}"
    present = 0
    missing: list[int] = []
    for pitch_id in ids:
        assert pitch_id is not None
        for _ in range(3):  # the read itself may hit a region that is still rejoining
            try:
                async with session.get(f"{options.url}/api/pitches/{pitch_id}",
                                       headers=headers) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            if status in (200, 404):
                break
            await asyncio.sleep(0.2)
        if status == 200:
            present += 1
        else:
            missing.append(pitch_id)
    return present, missing


def summarize(options: FailoverOptions, samples: list[Sample],
              observations: list[Observation], plan: _Plan, started: float, interval: float,
              present: int, missing: list[int], notes: list[str]) -> FailoverReport:
    """Turn the raw samples and observations into the report (pure)."""
    killed = plan.killed_at
    restart = plan.restart_requested_at
    failed = [s for s in samples if not s.ok]
    kinds = Counter(s.error or f"HTTP {s.status}" for s in failed)
    outage = [s for s in samples if killed is not None and s.started >= killed
              and (restart is None or s.started < restart)]
    detect = next((o.t - killed for o in observations if killed is not None and o.t >= killed
                   and (o.health in _OUT_OF_ROTATION or o.breaker == "open")), None)
    # a killed worker rejoins as a new process; a drained one as itself
    rejoin_obs = next((o for o in observations if restart is not None and o.t >= restart
                       and o.health == "healthy" and o.pid is not None
                       and (plan.drain is not None or o.pid != plan.victim)), None)
    back = next((s for s in sorted(samples, key=lambda s: s.started)
                 if restart is not None and s.started >= restart and s.ok
                 and s.served_by == options.region), None)
    acknowledged = [s.pitch_id for s in samples if s.kind == "write" and s.ok and s.pitch_id]
    requests = len(samples)
    failed_pct = 100.0 * len(failed) / requests if requests else 0.0
    reroute = _reroute_s(outage, killed)
    report = FailoverReport(
        region=options.region, url=options.url, duration_s=options.duration_s,
        health_interval_s=interval, killed_pid=plan.victim,
        kill_at_s=round((killed or started) - started, 3),
        restart_at_s=None if restart is None else round(restart - started, 3),
        restart_method=plan.restart_method, requests=requests, failed=len(failed),
        failed_pct=round(failed_pct, 4), failures_by_kind=dict(kinds),
        time_to_detect_s=_round(detect), time_to_reroute_s=_round(reroute),
        served_during_outage=dict(Counter(s.served_by or "none" for s in outage if s.ok)),
        time_to_rejoin_s=None if rejoin_obs is None or restart is None
        else round(rejoin_obs.t - restart, 3),
        time_to_traffic_back_s=None if back is None or restart is None
        else round(back.started - restart, 3),
        new_pid=None if rejoin_obs is None else rejoin_obs.pid,
        writes_acknowledged=len(acknowledged), writes_present=present,
        writes_missing=missing, acknowledged_ids=[i for i in acknowledged if i is not None],
        drained=plan.drain, notes=notes,
    )
    report.checks = {
        _failed_check(): requests > 0 and failed_pct <= FAILED_PCT_TARGET,
        "rerouted within 2 health-check intervals": reroute is not None
        and reroute <= 2 * interval,
        "every acknowledged write present": not missing and present == len(acknowledged),
        "region rejoined after restart": rejoin_obs is not None,
    }
    return report


def _failed_check() -> str:
    if FAILED_PCT_TARGET <= 0:
        return "no failed requests"
    return f"failed requests <= {FAILED_PCT_TARGET}%"


def _target() -> str:
    return "0" if FAILED_PCT_TARGET <= 0 else f"<= {FAILED_PCT_TARGET}%"


def _reroute_s(outage: list[Sample], killed: float | None) -> float | None:
    """From the kill to the first request after which every request of the outage
    succeeded, served by another region."""
    if killed is None or not outage:
        return None
    ordered = sorted(outage, key=lambda s: s.started)
    last_bad = max((i for i, s in enumerate(ordered) if not s.ok), default=-1)
    if last_bad == len(ordered) - 1:
        return None  # still failing when the worker was restarted
    return max(0.0, ordered[last_bad + 1].started - killed)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render(report: FailoverReport) -> list[str]:
    """The human report, one fact per line."""
    def seconds(value: float | None) -> str:
        return "not observed" if value is None else f"{value:.2f} s"

    rate = report.requests / report.duration_s if report.duration_s else 0.0
    served = ", ".join(f"{k} {v}" for k, v in sorted(report.served_during_outage.items()))
    lines = [
        f"pitchey failover: region {report.region} through {report.url}",
        f"  requests   {report.requests} in {report.duration_s:g} s ({rate:.1f}/s); failed "
        f"{report.failed} ({report.failed_pct:.3f}%)  [target {_target()}]",
        f"  killed     pid {report.killed_pid} at t={report.kill_at_s:.2f} s"
        if report.drained is None else
        f"  drained    set to {report.drained} at t={report.kill_at_s:.2f} s",
        f"  detected   {seconds(report.time_to_detect_s)} after the kill",
        f"  rerouted   {seconds(report.time_to_reroute_s)} after the kill  [target <= 2 health "
        f"intervals = {2 * report.health_interval_s:g} s]; served meanwhile by: "
        f"{served or 'nobody'}",
        f"  restarted  at t={report.restart_at_s} s via {report.restart_method}; healthy "
        f"again {seconds(report.time_to_rejoin_s)} later (pid {report.new_pid}); its "
        f"traffic back {seconds(report.time_to_traffic_back_s)} later",
        f"  writes     {report.writes_acknowledged} acknowledged, {report.writes_present} "
        f"present afterwards, {len(report.writes_missing)} missing",
    ]
    if report.failures_by_kind:
        lines.append("  failures   " + ", ".join(f"{k}: {v}" for k, v in
                                                   sorted(report.failures_by_kind.items())))
    lines += [f"  note       {note}" for note in report.notes]
    for check, ok in report.checks.items():
        lines.append(f"  {'PASS' if ok else 'FAIL'}       {check}")
    lines.append(f"  verdict    {'PASS' if report.passed else 'FAIL'}")
    return lines
