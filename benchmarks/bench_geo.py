"""Issue 3: throughput through the geo edge vs straight to one regional worker.

One geo topology (supervisor, edge, four workers; latency model off) pinned to one core, wrk
on the other. The same endpoint (GET /api/pitches, answered from the worker's application
cache) is loaded straight at the us-east worker and through the edge (which routes a request
without a region header to us-east), in alternating rounds. The edge's own cache tier and
coalescing are off for the headline figure, so every request really crosses the proxy hop;
a last round with them on shows what they save.

Figures: the throughput ratio edge / direct (target >= 0.5), the p50 the edge adds measured
with one connection (no queueing), and each process's CPU time per request from /proc (the
steadier view on a busy machine: time spent waiting for a CPU does not count).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks._harness import PYTHON, median, pin, process_cpu_seconds, run_wrk

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
PATH = "/api/pitches"
TARGET_RATIO = 0.5

_REGIONS = """
latency: {{enabled: false}}
cache: {{edge_ttl_s: {edge_ttl}}}
coalescing: {{enabled: {coalescing}}}
health: {{interval_s: 5}}
"""


class Topology:
    """`python -m pitchey.geo.supervisor --port 0`, pinned to core 1."""

    def __init__(self, tmp: Path, env: dict[str, str], tiers: bool) -> None:
        regions = tmp / f"regions-{'tiers' if tiers else 'proxy'}.yaml"
        regions.write_text(_REGIONS.format(edge_ttl=300 if tiers else 0,
                                           coalescing="true" if tiers else "false"))
        self.log = tmp / f"topology-{'tiers' if tiers else 'proxy'}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                pin([PYTHON, "-m", "pitchey.geo.supervisor", "--port", "0", "--regions",
                     str(regions)], 1),
                stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **env})
        self.edge = self._wait_for_edge()
        status = json.loads(urllib.request.urlopen(f"{self.edge}/status", timeout=10).read())
        self.edge_pid = int(status["pid"])
        us_east = next(r for r in status["regions"] if r["name"] == "us-east")
        self.worker = str(us_east["url"])
        self.worker_pid = int(us_east["pid"])

    def _wait_for_edge(self) -> str:
        deadline = time.monotonic() + 120
        pattern = re.compile(r"pitchey: listening on (http://\S+) \(edge\)")
        while time.monotonic() < deadline:
            found = pattern.search(self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the geo topology did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _round(url: str, pids: dict[str, int], seconds: float, connections: int) -> dict[str, Any]:
    before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    result = run_wrk(url, seconds=seconds, connections=connections, core=0)
    if result.errors:
        raise RuntimeError(f"{url}: {result.errors} failed requests")
    cpu = {name: 1e6 * (process_cpu_seconds(pid) - before[name]) / max(result.requests, 1)
           for name, pid in pids.items()}
    return {"rps": result.requests_per_s, "p50": result.p50_ms, "cpu": cpu}


def _measure(topology: Topology, rounds: int) -> dict[str, float]:
    direct_url, edge_url = topology.worker + PATH, topology.edge + PATH
    pids = {"edge": topology.edge_pid, "worker": topology.worker_pid}
    run_wrk(direct_url, seconds=1, core=0)  # warm caches and connections
    run_wrk(edge_url, seconds=1, core=0)
    samples: dict[str, list[float]] = {k: [] for k in (
        "direct_rps", "edge_rps", "worker_cpu", "edge_cpu", "edge_worker_cpu")}
    for _ in range(rounds):
        direct = _round(direct_url, pids, SECONDS, 32)
        through = _round(edge_url, pids, SECONDS, 32)
        samples["direct_rps"].append(direct["rps"])
        samples["edge_rps"].append(through["rps"])
        samples["worker_cpu"].append(direct["cpu"]["worker"])
        samples["edge_cpu"].append(through["cpu"]["edge"])
        samples["edge_worker_cpu"].append(through["cpu"]["worker"])
    latency: dict[str, list[float]] = {"direct_p50": [], "edge_p50": []}
    for _ in range(rounds):  # one connection: the hop's latency, not queueing
        latency["direct_p50"].append(_round(direct_url, pids, 2, 1)["p50"])
        latency["edge_p50"].append(_round(edge_url, pids, 2, 1)["p50"])
    return {k: median(v) for k, v in {**samples, **latency}.items()}


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {
            "PITCHEY_SQLITE_PATH": str(tmp / "bench.db"),
            "PITCHEY_RATE_LIMIT_PER_MINUTE": "1000000000",  # on the path, never refusing
        }
        subprocess.run([PYTHON, "-m", "pitchey_cli", "seed"], env={**os.environ, **env},
                       check=True, capture_output=True)
        topology = Topology(tmp, env, tiers=False)
        try:
            m = _measure(topology, ROUNDS)
        finally:
            topology.stop()
        tiers = Topology(tmp, env, tiers=True)
        try:
            t = _measure(tiers, 1)
        finally:
            tiers.stop()
    ratio = m["edge_rps"] / m["direct_rps"]
    added_p50 = m["edge_p50"] - m["direct_p50"]
    print(f"GET {PATH}, latency model off, edge cache and coalescing off, all servers on one "
          f"core, wrk -c32 on the other ({ROUNDS} alternating rounds of {SECONDS:g} s):")
    print(f"  straight to the us-east worker  {m['direct_rps']:8,.0f} req/s")
    print(f"  through the edge                {m['edge_rps']:8,.0f} req/s")
    print(f"  ratio edge/direct               {ratio:8.3f}   (target >= {TARGET_RATIO}) "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    print(f"  CPU per request: worker {m['worker_cpu']:.0f} µs, edge {m['edge_cpu']:.0f} µs "
          f"(CPU-bound ratio estimate worker/(worker+edge) = "
          f"{m['edge_worker_cpu'] / (m['edge_worker_cpu'] + m['edge_cpu']):.3f})")
    print(f"  p50 with one connection: direct {m['direct_p50']:.3f} ms, edge "
          f"{m['edge_p50']:.3f} ms -> the edge adds {added_p50:.3f} ms")
    print(f"  with the edge cache and coalescing on: {t['edge_rps']:,.0f} req/s through the "
          f"edge ({t['edge_rps'] / t['direct_rps']:.2f}x direct in the same round)")
    return {
        "direct_rps": round(m["direct_rps"], 1),
        "edge_rps": round(m["edge_rps"], 1),
        "edge_ratio": round(ratio, 3),
        "edge_added_p50_ms": round(added_p50, 3),
        "direct_p50_ms_one_connection": round(m["direct_p50"], 3),
        "edge_p50_ms_one_connection": round(m["edge_p50"], 3),
        "worker_cpu_us_per_request": round(m["worker_cpu"], 1),
        "edge_cpu_us_per_request": round(m["edge_cpu"], 1),
        "edge_with_tiers_rps": round(t["edge_rps"], 1),
        "edge_with_tiers_ratio": round(t["edge_rps"] / t["direct_rps"], 3),
    }


if __name__ == "__main__":
    main()
