"""Issues 3 and 12: throughput through the HAProxy edge vs straight to one regional worker.

One geo topology (`python -m pitchey.geo.supervisor`: HAProxy as the edge, the edge's status
agent, four regional workers) pinned to core 1 (HAProxy and the workers are the
supervisor's children, so they inherit the pinning), wrk on core 0. The same request,
`GET /api/pitches` (answered from the worker's application cache) with
`X-Pitchey-Region: us-east`, is loaded through the edge and straight at the us-east worker
(its URL from the edge's /status) in alternating rounds, with the edge in two places:

- **apart** (the target's figure): HAProxy moved to core 0 beside wrk, as an edge tier runs
  on machines of its own; the worker keeps core 1 to itself in both paths, so the ratio is
  what putting the edge in front costs the platform (wrk and HAProxy share core 0, which
  handicaps the edge path, not the direct one);
- **shared**: HAProxy on the worker's core, the layout the hand-written Python edge was
  measured in (0.51-0.54): every CPU-µs the edge spends is taken from the worker.

Each round runs edge apart, edge shared, direct.

The headline topology has the edge cache tier off (`cache: {edge_ttl_s: 0}`), so HAProxy
proxies every request to the worker it is compared with; the latency model and the rate
limit are off too. Figures (medians over the rounds):

- the throughput ratio edge / direct for both layouts (target >= 0.85 with the edge apart;
  0.51-0.54 with the hand-written Python edge sharing the worker's core);
- the p50 the edge adds, with one connection (the hop itself, no queueing), and at the
  benchmark's concurrency;
- CPU time per request from /proc utime+stime: HAProxy's during the edge rounds divided by
  the requests wrk reported, and the worker's (direct and behind the edge). Time spent
  waiting for a CPU does not count, so this is the steadier view on a busy machine.

A second, separate topology keeps the default edge cache: HAProxy answers the same URL from
its own cache, and its throughput relative to direct is reported as its own figure. It is
not the ratio the target is about.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    PYTHON,
    _ms,  # wrk's latency units, parsed once for every bench
    median,
    pin,
    process_cpu_seconds,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
CACHE_ROUNDS = max(1, min(ROUNDS, 2))
LATENCY_SECONDS = 2
CONNECTIONS = 32
PATH = "/api/pitches"
REGION = "us-east"
REGION_HEADER = "X-Pitchey-Region"
TARGET_RATIO = 0.85
SERVER_CORE, WRK_CORE = 1, 0

# The edge cache off: HAProxy proxies every request. The cache-on topology omits the `cache`
# key so that it runs with the default edge cache.
_PROXY_REGIONS = "latency: {enabled: false}\ncache: {edge_ttl_s: 0}\n"
_CACHED_REGIONS = "latency: {enabled: false}\n"

_EDGE_LINE = re.compile(r"pitchey: listening on (http://\S+) \(edge\)")
_HAPROXY_PID = re.compile(r"^\s+edge\s+http://\S+\s+\(HAProxy pid (\d+)", re.M)
_WORKER_LINE = re.compile(r"^\s+([\w-]+)\s+(http://\S+)\s+\(pid (\d+)\)", re.M)


# -- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: dict[str, float]  # CPU-µs per request of each watched process


def _find(pattern: str, output: str) -> str:
    match = re.search(pattern, output, re.M)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return match.group(1)


def _load(url: str, pids: dict[str, int], seconds: float, connections: int) -> Load:
    """One wrk run against `url` with the region header, pinned to the wrk core; the CPU
    each process in `pids` spent meanwhile, per request wrk reported."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make sysdeps installs it)")
    command = pin(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                   "--latency", "-H", f"{REGION_HEADER}: {REGION}", url], WRK_CORE)
    before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    after = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    requests = int(_find(r"(\d+) requests in", output))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    if errors or not requests:
        raise RuntimeError(f"{url}: {errors} failed requests of {requests}:\n{output}")
    return Load(
        requests=requests,
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", output)),
        p50_ms=_ms(_find(r"^\s*50%\s+(\S+)", output)),
        p99_ms=_ms(_find(r"^\s*99%\s+(\S+)", output)),
        cpu_us={name: 1e6 * (after[name] - before[name]) / requests for name in pids},
    )


# -- the topology ------------------------------------------------------------------------------


def _get(url: str) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={REGION_HEADER: REGION})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return {k.lower(): v for k, v in response.headers.items()}, response.read()


class Topology:
    """The supervisor (and so HAProxy, the agent and the workers) pinned to SERVER_CORE, in a
    process group of its own so that stop() can reach every process it started."""

    def __init__(self, tmp: Path, env: dict[str, str], label: str, regions_text: str) -> None:
        self.label = label
        regions = tmp / f"regions-{label}.yaml"
        regions.write_text(regions_text)
        self.log = tmp / f"topology-{label}.log"
        self.pids: dict[str, int] = {}
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                pin([PYTHON, "-m", "pitchey.geo.supervisor", "--port", "0", "--regions",
                     str(regions)], SERVER_CORE),
                stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **env},
                start_new_session=True)
        try:
            self.edge = self._wait_for_edge()
            self._read_status()
        except BaseException:
            self.stop()
            raise

    def _wait_for_edge(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            found = _EDGE_LINE.search(text)
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the {self.label} geo topology did not start:\n"
                           f"{self.log.read_text(errors='replace')}")

    def _read_status(self) -> None:
        """HAProxy's pid and the us-east worker's URL and pid from the edge's /status (the
        agent fills a worker's pid from its first probe: wait for it), checked against the
        lines the supervisor printed."""
        text = self.log.read_text(errors="replace")
        printed_haproxy = _HAPROXY_PID.search(text)
        printed = {m.group(1): (m.group(2), int(m.group(3)))
                   for m in _WORKER_LINE.finditer(text)}
        deadline = time.monotonic() + 30
        while True:
            status = json.loads(_get(f"{self.edge}/status")[1])
            region = next(r for r in status["regions"] if r["name"] == REGION)
            haproxy_pid = status.get("balancer", {}).get("pid")
            if region.get("pid") and haproxy_pid and region.get("health") == "healthy":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label}: /status never showed a healthy {REGION} "
                                   f"with pids: {json.dumps(status)[:2000]}")
            time.sleep(0.3)
        self.haproxy_pid = int(haproxy_pid)
        self.worker = str(region["url"])
        self.worker_pid = int(region["pid"])
        if printed_haproxy and int(printed_haproxy.group(1)) != self.haproxy_pid:
            raise RuntimeError(f"/status says HAProxy is pid {self.haproxy_pid}, the supervisor "
                               f"printed {printed_haproxy.group(1)}")
        if REGION in printed and printed[REGION] != (self.worker, self.worker_pid):
            raise RuntimeError(f"/status says {REGION} is {self.worker} pid {self.worker_pid}, "
                               f"the supervisor printed {printed[REGION]}")
        self.pids = {"supervisor": self.process.pid, "haproxy": self.haproxy_pid,
                     **{name: pid for name, (_, pid) in printed.items()}}

    def check_route(self, expect_cache: str) -> None:
        """A request through the edge reaches the compared worker (or the edge cache)."""
        headers, _ = _get(self.edge + PATH)
        headers, _ = _get(self.edge + PATH)  # the second one can be a cache hit
        cache = headers.get("x-pitchey-edge-cache")
        if cache != expect_cache:
            raise RuntimeError(f"{self.label}: X-Pitchey-Edge-Cache is {cache!r}, expected "
                               f"{expect_cache!r}")
        pid = headers.get("x-pitchey-worker-pid")
        if pid != str(self.worker_pid):
            raise RuntimeError(f"{self.label}: the edge answered from worker pid {pid}, not "
                               f"{REGION}'s {self.worker_pid}")

    def stop(self) -> list[int]:
        """SIGTERM the supervisor (it stops its children), then SIGKILL whatever is left of
        its process group. Returns the pids that had to be killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        leftovers = [pid for pid in self.pids.values() if _alive_in_group(pid, self.process.pid)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return leftovers


def _alive_in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group and not _zombie(pid)
    except ProcessLookupError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# -- measuring ---------------------------------------------------------------------------------


def _alternate(topology: Topology, rounds: int, seconds: float,
               connections: int) -> dict[str, list[Load]]:
    """Rounds of: edge with HAProxy apart (on the wrk core), edge with HAProxy sharing the
    worker's core, direct. HAProxy is moved between cores with sched_setaffinity."""
    direct_url, edge_url = topology.worker + PATH, topology.edge + PATH
    pids = {"haproxy": topology.haproxy_pid, "worker": topology.worker_pid}
    loads: dict[str, list[Load]] = {"apart": [], "shared": [], "direct": []}
    try:
        for _ in range(rounds):
            _place_haproxy(topology, WRK_CORE)
            loads["apart"].append(_load(edge_url, pids, seconds, connections))
            _place_haproxy(topology, SERVER_CORE)
            loads["shared"].append(_load(edge_url, pids, seconds, connections))
            loads["direct"].append(_load(direct_url, pids, seconds, connections))
    finally:
        _place_haproxy(topology, SERVER_CORE)
    return loads


def _place_haproxy(topology: Topology, core: int) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(topology.haproxy_pid, {core})


def _warm(topology: Topology) -> None:
    pids: dict[str, int] = {}
    _load(topology.worker + PATH, pids, 1, CONNECTIONS)
    _load(topology.edge + PATH, pids, 1, CONNECTIONS)


def _rps(loads: list[Load]) -> float:
    return median([load.rps for load in loads])


def _p50(loads: list[Load]) -> float:
    return median([load.p50_ms for load in loads])


def _cpu(loads: list[Load], process: str) -> float:
    return median([load.cpu_us[process] for load in loads])


def _ratios(loads: dict[str, list[Load]], edge: str) -> list[float]:
    """Each round's edge/direct: adjacent runs, so slow drift cancels out."""
    return [e.rps / d.rps for e, d in zip(loads[edge], loads["direct"], strict=True)]


def _measure_proxy(topology: Topology) -> dict[str, Any]:
    topology.check_route("BYPASS")
    _warm(topology)
    load = _alternate(topology, ROUNDS, SECONDS, CONNECTIONS)
    one = _alternate(topology, ROUNDS, LATENCY_SECONDS, 1)  # the hop, without queueing
    edge, shared, direct = load["apart"], load["shared"], load["direct"]
    return {
        "edge_rps": _rps(edge), "direct_rps": _rps(direct),
        "ratio": median(_ratios(load, "apart")), "ratios": _ratios(load, "apart"),
        "shared_rps": _rps(shared), "shared_ratio": median(_ratios(load, "shared")),
        "shared_ratios": _ratios(load, "shared"),
        "edge_p50": _p50(edge), "direct_p50": _p50(direct),
        "edge_p50_1": _p50(one["apart"]), "direct_p50_1": _p50(one["direct"]),
        "haproxy_cpu": _cpu(edge, "haproxy"), "haproxy_cpu_shared": _cpu(shared, "haproxy"),
        "worker_cpu_direct": _cpu(direct, "worker"),
        "worker_cpu_edge": _cpu(edge, "worker"),
        # ~0 unless something else talks to HAProxy during the direct rounds
        "haproxy_cpu_direct": _cpu(direct, "haproxy"),
    }


def _measure_cached(topology: Topology) -> dict[str, Any]:
    _get(topology.edge + PATH)  # fills the edge cache
    headers, _ = _get(topology.edge + PATH)
    served = headers.get("x-pitchey-edge-cache", "absent")
    _warm(topology)
    load = _alternate(topology, CACHE_ROUNDS, SECONDS, CONNECTIONS)
    edge = load["apart"]
    return {"edge_rps": _rps(edge), "direct_rps": _rps(load["direct"]),
            "ratio": median(_ratios(load, "apart")), "haproxy_cpu": _cpu(edge, "haproxy"),
            "worker_cpu_edge": _cpu(edge, "worker"), "served": served,
            "vary": headers.get("vary")}


def _run(tmp: Path, env: dict[str, str], label: str, regions: str,
         measure: Callable[[Topology], dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    topology = Topology(tmp, env, label, regions)
    try:
        return measure(topology)
    finally:
        leftovers = topology.stop()
        if leftovers:
            problems.append(f"{label}: pids {leftovers} outlived the supervisor's stop and "
                            "were SIGKILLed")


def _report_proxy(m: dict[str, Any]) -> dict[str, Any]:
    ratio = m["ratio"]
    added_p50_1 = m["edge_p50_1"] - m["direct_p50_1"]
    added_p50 = m["edge_p50"] - m["direct_p50"]
    estimate = m["worker_cpu_direct"] / (m["worker_cpu_edge"] + m["haproxy_cpu_shared"])
    print(f"GET {PATH} with {REGION_HEADER}: {REGION}, from the worker's application cache; "
          f"latency model and rate limit off; the topology on core {SERVER_CORE}, wrk -c"
          f"{CONNECTIONS} on core {WRK_CORE}; {ROUNDS} alternating rounds of {SECONDS:g} s "
          f"(edge apart, edge sharing the worker's core, direct), medians:")
    print(f"  edge cache OFF (HAProxy proxies every request to the {REGION} worker):")
    print(f"    straight to the {REGION} worker  {m['direct_rps']:8,.0f} req/s  "
          f"(p50 {m['direct_p50']:.2f} ms)")
    print(f"    through the HAProxy edge, apart {m['edge_rps']:8,.0f} req/s  "
          f"(p50 {m['edge_p50']:.2f} ms; HAProxy on core {WRK_CORE} beside wrk)")
    print(f"    throughput ratio edge/direct    {ratio:8.3f}   (target >= {TARGET_RATIO}) "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}  (median of the per-round ratios "
          f"{', '.join(f'{r:.3f}' for r in m['ratios'])})")
    print(f"    through the edge, shared core   {m['shared_rps']:8,.0f} req/s  ratio "
          f"{m['shared_ratio']:.3f} (HAProxy on the worker's core {SERVER_CORE}, the layout "
          f"the Python edge measured 0.51-0.54 in; per round "
          f"{', '.join(f'{r:.3f}' for r in m['shared_ratios'])})")
    print(f"    p50 the edge adds: {added_p50_1:.3f} ms with one connection (direct "
          f"{m['direct_p50_1']:.3f} ms, edge {m['edge_p50_1']:.3f} ms); {added_p50:.3f} ms at "
          f"-c{CONNECTIONS}")
    print(f"    CPU per request: HAProxy {m['haproxy_cpu']:.1f} µs per proxied request on a "
          f"core of its own, {m['haproxy_cpu_shared']:.1f} µs sharing the worker's core; the "
          f"worker {m['worker_cpu_direct']:.1f} µs direct, {m['worker_cpu_edge']:.1f} µs "
          f"behind the edge (shared-core CPU-bound estimate worker_direct/(worker_behind_edge"
          f" + HAProxy) = {estimate:.3f})", flush=True)
    return {
        "direct_rps": round(m["direct_rps"], 1),
        "edge_rps": round(m["edge_rps"], 1),
        "edge_ratio": round(ratio, 3),
        "edge_ratio_per_round": [round(r, 3) for r in m["ratios"]],
        "edge_ratio_target": TARGET_RATIO,
        "edge_added_p50_ms_one_connection": round(added_p50_1, 3),
        "edge_added_p50_ms_under_load": round(added_p50, 3),
        "direct_p50_ms_one_connection": round(m["direct_p50_1"], 3),
        "edge_p50_ms_one_connection": round(m["edge_p50_1"], 3),
        "edge_layout": f"HAProxy on core {WRK_CORE} beside wrk, the worker alone on core "
                       f"{SERVER_CORE}",
        "edge_shared_core_rps": round(m["shared_rps"], 1),
        "edge_shared_core_ratio": round(m["shared_ratio"], 3),
        "haproxy_cpu_us_per_proxied_request": round(m["haproxy_cpu"], 1),
        "haproxy_cpu_us_per_proxied_request_shared_core": round(m["haproxy_cpu_shared"], 1),
        "worker_cpu_us_per_request_direct": round(m["worker_cpu_direct"], 1),
        "worker_cpu_us_per_request_behind_edge": round(m["worker_cpu_edge"], 1),
        "cpu_bound_ratio_estimate": round(estimate, 3),
    }


def _report_cached(c: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    hit = c["served"] == "HIT"
    label = ("HAProxy answers from its own cache" if hit else
             f"BUT HAProxy did NOT answer from its cache: X-Pitchey-Edge-Cache: {c['served']}, "
             "so this is the proxy path with cache lookups, not a cache figure")
    print(f"  edge cache ON (a separate figure, not the target's ratio; {label}): "
          f"{c['edge_rps']:,.0f} req/s through the edge vs {c['direct_rps']:,.0f} req/s "
          f"direct = {c['ratio']:.2f}x direct ({CACHE_ROUNDS} alternating rounds; HAProxy "
          f"{c['haproxy_cpu']:.1f} CPU-µs per request, worker {c['worker_cpu_edge']:.1f})")
    if not hit:
        problems.append(f"with the default edge cache, a repeated GET {PATH} through the edge "
                        f"was {c['served']}, not HIT (the worker answers Vary: {c['vary']})")
    return {
        "edge_cache_on_served": c["served"],
        "edge_cache_on_rps": round(c["edge_rps"], 1),
        "edge_cache_on_direct_rps": round(c["direct_rps"], 1),
        "edge_cache_on_vs_direct": round(c["ratio"], 3),
        "edge_cache_on_haproxy_cpu_us_per_request": round(c["haproxy_cpu"], 1),
    }


def main() -> dict[str, Any]:
    problems: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {"PITCHEY_SQLITE_PATH": str(tmp / "bench.db"),
               "PITCHEY_RATE_LIMIT_PER_MINUTE": "0"}  # off: no limiter on either path
        subprocess.run([PYTHON, "-m", "pitchey_cli", "seed"], env={**os.environ, **env},
                       check=True, capture_output=True)
        m = _run(tmp, env, "proxy", _PROXY_REGIONS, _measure_proxy, problems)
        figures = _report_proxy(m)  # printed before the second topology starts
        if m["haproxy_cpu_direct"] > 0.05 * m["haproxy_cpu"]:
            problems.append(f"HAProxy used {m['haproxy_cpu_direct']:.1f} CPU-µs per request "
                            "during the direct rounds (health checks or stray traffic)")
        try:
            c = _run(tmp, env, "edge-cache", _CACHED_REGIONS, _measure_cached, problems)
            figures.update(_report_cached(c, problems))
        except Exception as exc:  # the headline figures stand without it
            problems.append(f"the edge-cache-on topology failed: {exc}")
    for problem in problems:
        print(f"  problem: {problem}")
    print(f"  (bench wall time {time.monotonic() - started:.0f} s)")
    figures["problems"] = problems
    return figures


if __name__ == "__main__":
    main()
