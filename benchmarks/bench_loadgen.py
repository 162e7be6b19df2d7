"""Issue 4: what the suite's accounting costs the load generator, and users per machine.

Part 1, side by side against the same tiny server (pinned to core 0, generators to core 1),
requests per second per CPU core of the generator:
  (a) plain Locust FastHttpUser, (b) the suite's users with all their accounting (region
  header, per-request context, per-second HDR cells, master merge and stream; local mode, so
  the master's work is counted too), (c) wrk. Requests are counted by the server, CPU is the
  generator process's own, both over the same window after a warm-up. Targets: b/a >= 0.95.

Part 2, users per machine: the suite's users at 30 s think time against a server that answers
in 100 ms (the latency target) and times itself on the wire; the largest user count where the
generator's CPU stays below 80% and its reported p95 is within 10% of the server-side p95;
memory per user from the growth of the generator's RSS between steps. Users are spawned over
one think time so their requests spread evenly. By default 10,000 and 100,000 users (the
target); `--full` (or BENCH_LOADGEN_FULL=1) sweeps on to 200,000, BENCH_LOADGEN_SWEEP=a,b,c
sets the steps.

`python -m benchmarks.bench_loadgen --serve` is the bench server itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARM_S = float(os.environ.get("BENCH_WARM_S", "3"))  # after the first requests arrive
WINDOW_S = float(os.environ.get("BENCH_SECONDS", "8"))
USERS = 64  # concurrent users / connections in part 1
QUICK_SWEEP = (10_000, 100_000)
FULL_SWEEP = (10_000, 50_000, 100_000, 150_000, 200_000)
THINK_S = 30.0
DELAY_MS = 100  # the latency target: 10% of it is the agreement asked for

PLAIN_LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Plain(FastHttpUser):
    wait_time = constant(0)

    @task
    def fast(self):
        self.client.get("/fast")
"""

SUITE_LOCUSTFILE = """
import os

import locust  # noqa: F401

from loadtests.control import ScenarioShape
from loadtests.hooks import install
from loadtests.journeys import PortalUser, journey

install()
PATH = os.environ["BENCH_PATH"]


class Bench(PortalUser):
    portal = "browser"

    @journey(1)
    def fetch(self):
        self.client.get(PATH, name=PATH)
"""


# --- the bench server ------------------------------------------------------------------------


class _BenchHttp(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: latency is timed from the request's bytes
    arriving to the response's bytes leaving, the closest a server gets to the wire."""

    served = 0
    latencies_us: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            method, path = head.split(b"\r\n", 1)[0].split(b" ")[:2]
            self._route(method.decode(), path.decode(), arrived)

    def _route(self, method: str, path: str, arrived: float) -> None:
        if path == "/fast":
            type(self).served += 1
            self._send(b"ok")
        elif path.startswith("/delay/"):
            delay_s = int(path.rsplit("/", 1)[-1]) / 1000
            asyncio.get_running_loop().call_later(delay_s, self._delayed, arrived)
        elif path == "/stats":
            from collectors.hdr import Histogram

            hist = Histogram.from_values_us(type(self).latencies_us)
            self._send(json.dumps({"count": type(self).served, "latency_count": hist.total,
                                   "p50_ms": hist.quantile(0.5),
                                   "p95_ms": hist.quantile(0.95)}).encode())
        elif path == "/reset" and method == "POST":
            type(self).latencies_us.clear()
            self._send(b"{}")
        else:
            self._send(b"not found", status=b"404 Not Found")

    def _delayed(self, arrived: float) -> None:
        type(self).served += 1
        self._send(b"ok")
        type(self).latencies_us.append(int((time.perf_counter() - arrived) * 1e6))

    def _send(self, body: bytes, status: bytes = b"200 OK") -> None:
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)


def serve() -> None:
    """/fast answers at once; /delay/{ms} waits and records its latency; /stats, POST /reset."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_BenchHttp, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        print(f"bench: listening on http://127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        server.close()

    asyncio.run(main())


def _get(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


# --- part 1: requests per core ----------------------------------------------------------------


def _env(extra: dict[str, str]) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
            **extra}


def _scenario(tmp: Path, users: int, think_s: float, hold_s: float, spawn_rate: float,
              connection_pool: int) -> Path:
    ramp = max(1.0, users / spawn_rate)
    path = tmp / f"bench-{users}.yaml"
    path.write_text(json.dumps({
        "name": "bench", "target": "http://127.0.0.1:1",
        "stages": [{"kind": "ramp", "duration": ramp, "users": users},
                   {"kind": "hold", "duration": hold_s}],
        "users": {"browser": {"weight": 1, "think_time": {"min": think_s * 5 / 6,
                                                           "max": think_s * 7 / 6}}},
        "regions": {"local": 1}, "connection_pool": connection_pool,
        "self_check": {"cpu_percent": 100, "cpu_sustain": "1h", "lag_p95": "1h"},
    }))
    return path


def _locust(tmp: Path, locustfile: str, url: str, extra: list[str], env: dict[str, str]
            ) -> subprocess.Popen[bytes]:
    from benchmarks._harness import pin

    file = tmp / f"{abs(hash(locustfile))}.py"
    file.write_text(locustfile)
    command = pin([PYTHON, "-m", "locust", "-f", str(file), "--headless", "--host", url,
                   "--only-summary", "--loglevel", "WARNING", *extra], 1)
    return subprocess.Popen(command, env=_env(env), cwd=tmp, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _measure_window(process: subprocess.Popen[bytes], url: str) -> tuple[float, float]:
    """(requests/s, CPU cores used) of `process` over a window after the warm-up."""
    import psutil

    watched = psutil.Process(process.pid)
    before = _get(url + "/stats")["count"]
    deadline = time.monotonic() + 60
    while _get(url + "/stats")["count"] <= before + 1 and time.monotonic() < deadline:
        time.sleep(0.2)  # still importing and spawning: not part of the steady state
    time.sleep(WARM_S)

    def sample() -> tuple[float, float, float]:
        cpu = watched.cpu_times()
        return time.monotonic(), cpu.user + cpu.system, float(_get(url + "/stats")["count"])

    t1, cpu1, count1 = sample()
    time.sleep(WINDOW_S)
    t2, cpu2, count2 = sample()
    if process.poll() is not None:
        raise RuntimeError("the load generator exited during the measurement")
    elapsed = t2 - t1
    return (count2 - count1 - 1) / elapsed, (cpu2 - cpu1) / elapsed


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _plain(tmp: Path, url: str) -> tuple[float, float]:
    seconds = int(WARM_S + WINDOW_S + 20)
    process = _locust(tmp, PLAIN_LOCUSTFILE, url, ["-u", str(USERS), "-r", str(USERS),
                                                   "-t", f"{seconds}s"], {})
    try:
        return _measure_window(process, url)
    finally:
        _stop(process)


def _suite(tmp: Path, url: str, path: str = "/fast") -> tuple[float, float]:
    # a connection per user, as plain Locust has: the difference is the accounting alone
    scenario = _scenario(tmp, USERS, 0.0, WARM_S + WINDOW_S + 20, USERS, connection_pool=0)
    process = _locust(tmp, SUITE_LOCUSTFILE, url, [
        "--pitchey-scenario", str(scenario), "--pitchey-stream", str(tmp / "suite.jsonl")],
        {"BENCH_PATH": path, "PITCHEY_LOAD_REGION": "local"})
    try:
        return _measure_window(process, url)
    finally:
        _stop(process)


def _wrk(url: str) -> tuple[float, float]:
    from benchmarks._harness import pin

    command = pin(["wrk", "-t1", f"-c{USERS}", f"-d{int(WARM_S + WINDOW_S + 20)}s",
                   url + "/fast"], 1)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return _measure_window(process, url)
    finally:
        _stop(process)


def requests_per_core(url: str, tmp: Path) -> dict[str, float]:
    per_core: dict[str, list[float]] = {"plain": [], "suite": [], "wrk": []}
    for _ in range(ROUNDS):
        for name, measure in (("plain", lambda: _plain(tmp, url)),
                              ("suite", lambda: _suite(tmp, url)),
                              ("wrk", lambda: _wrk(url))):
            rps, cores = measure()
            per_core[name].append(rps / cores if cores > 0 else 0.0)
            print(f"  {name:<5} {rps:8.0f} req/s on {cores:4.2f} core(s) = "
                  f"{per_core[name][-1]:8.0f} req/s per core", flush=True)
    return {name: statistics.median(values) for name, values in per_core.items()}


def accounting_us_per_request(requests: int = 200_000) -> float:
    """CPU microseconds the suite adds to one request, measured in this process: the request
    listener, the per-second HDR cells, the worker's report and the master's merge."""
    from loadtests.recording import IntervalMerger
    from loadtests.runtime import WorkerRuntime

    class Response:
        status_code = 200

    clock = [1_700_000_000.0]
    runtime = WorkerRuntime("us-east", clock=lambda: clock[0])
    merger, response = IntervalMerger(), Response()
    started = time.process_time()
    for i in range(requests):
        context = {"user_class": "browser", "lateness_ms": None}  # PortalUser.context()
        runtime.on_request("GET", "/api/pitches", 1.0 + (i % 97) / 10, response, context, None)
        if i % 3000 == 2999:  # a report every 3 s at 1,000 requests/s
            clock[0] += 3.0
            merger.add("w", "us-east", runtime.report(), clock[0])
            merger.complete(clock[0])
    merger.add("w", "us-east", runtime.report(final=True), clock[0])
    merger.drain_all()
    return (time.process_time() - started) / requests * 1e6


# --- part 2: users per machine ------------------------------------------------------------------


def _sweep_step(tmp: Path, url: str, users: int) -> dict[str, float]:
    import psutil

    from collectors.hdr import Histogram
    from loadtests.stream import StreamReader

    # spawning over one think time spreads the users' requests evenly, as real users are
    spawn_rate = users / THINK_S
    window = THINK_S
    # shared connections: 100k users must not need 100k sockets
    scenario = _scenario(tmp, users, THINK_S, window + 15, spawn_rate,
                         connection_pool=max(200, users // 150))
    stream = tmp / f"sweep-{users}.jsonl"
    process = _locust(tmp, SUITE_LOCUSTFILE, url, [
        "--pitchey-scenario", str(scenario), "--pitchey-stream", str(stream)],
        {"BENCH_PATH": f"/delay/{DELAY_MS}", "PITCHEY_LOAD_REGION": "local"})
    watched = psutil.Process(process.pid)
    try:
        time.sleep(THINK_S + 5)  # every user spawned and acting at its own pace
        _get(url + "/reset", "POST")
        cpu1, t1 = sum(watched.cpu_times()[:2]), time.monotonic()
        start_epoch = time.time()
        time.sleep(window)
        cpu2, t2 = sum(watched.cpu_times()[:2]), time.monotonic()
        end_epoch = time.time()
        server = _get(url + "/stats")
        rss_mb = watched.memory_info().rss / 2**20
    finally:
        _stop(process)
    hists = [Histogram.decode(item["hist"]) for item in StreamReader(stream).read()
             if item.get("k") == "hist" and item.get("kind") == "service"
             and start_epoch + 1 <= item["t"] < end_epoch - 1]
    client = Histogram.merge(hists)
    return {
        "users": float(users),
        "cpu_percent": 100.0 * (cpu2 - cpu1) / (t2 - t1),
        "client_p95_ms": client.quantile(0.95),
        "server_p95_ms": float(server["p95_ms"]),
        "requests": float(client.total),
        "rss_mb": rss_mb,
    }


def users_per_machine(url: str, tmp: Path, sweep: tuple[int, ...]) -> dict[str, float]:
    held, steps, misses = 0, [], 0
    for users in sweep:
        if misses >= 2 or (misses and len(steps) >= 2):
            break  # past the limit: bigger steps only fail slower
        step = _sweep_step(tmp, url, users)
        steps.append(step)
        gap = abs(step["client_p95_ms"] - step["server_p95_ms"]) / max(step["server_p95_ms"],
                                                                       1e-9)
        ok = step["cpu_percent"] < 80 and gap <= 0.10
        print(f"  {users:>7} users: generator CPU {step['cpu_percent']:5.1f}%, p95 reported "
              f"{step['client_p95_ms']:.1f} ms vs server {step['server_p95_ms']:.1f} ms "
              f"({gap:.1%} apart), RSS {step['rss_mb']:.0f} MB -> "
              f"{'holds' if ok else 'does not hold'}", flush=True)
        if ok:
            held = max(held, users)
        else:
            misses += 1
    per_user_kb = 0.0
    if len(steps) >= 2:
        first, last = steps[0], steps[-1]
        per_user_kb = (last["rss_mb"] - first["rss_mb"]) * 1024 / (last["users"] -
                                                                    first["users"])
    return {"users_held_per_core": float(held), "memory_per_user_kb": per_user_kb}


# --- main ---------------------------------------------------------------------------------------


def main(full: bool | None = None) -> dict[str, float]:
    from benchmarks._harness import pin, start_server

    full = full if full is not None else os.environ.get("BENCH_LOADGEN_FULL") == "1"
    server = start_server(pin([PYTHON, "-m", "benchmarks.bench_loadgen", "--serve"], 0))
    try:
        with tempfile.TemporaryDirectory() as tmp_text:
            tmp = Path(tmp_text)
            print(f"(a) plain Locust FastHttpUser, (b) the suite's users with all accounting, "
                  f"(c) wrk: {USERS} users/connections, {ROUNDS} round(s) of {WINDOW_S:g} s",
                  flush=True)
            per_core = requests_per_core(server.url, tmp)
            cost_us = accounting_us_per_request()
            # what the accounting alone would cost plain Locust, from its CPU per request
            b_over_a_accounting = 1 / (1 + cost_us * per_core["plain"] / 1e6)
            b_over_a = per_core["suite"] / per_core["plain"]
            b_over_c = per_core["suite"] / per_core["wrk"]
            print(f"requests/s per generator core: plain {per_core['plain']:.0f}, suite "
                  f"{per_core['suite']:.0f}, wrk {per_core['wrk']:.0f}")
            print(f"b/a = {b_over_a:.3f} (target >= 0.95: the accounting must be nearly free); "
                  f"b/c = {b_over_c:.3f}")
            print(f"the accounting costs {cost_us:.2f} us of CPU per request (measured alone), "
                  f"i.e. b/a = {b_over_a_accounting:.3f} at plain Locust's "
                  f"{1e6 / per_core['plain']:.0f} us per request; the side-by-side b/a above "
                  "carries this machine's noise")
            custom = os.environ.get("BENCH_LOADGEN_SWEEP")
            sweep = (tuple(int(n) for n in custom.split(",")) if custom
                     else FULL_SWEEP if full else QUICK_SWEEP)
            print(f"users per generator core at {THINK_S:g} s think time against a {DELAY_MS} ms "
                  f"server (CPU < 80%, p95 within 10% of the server's): sweep {sweep}"
                  + ("" if full else " (--full or BENCH_LOADGEN_FULL=1 sweeps to 200k)"),
                  flush=True)
            capacity = users_per_machine(server.url, tmp, sweep)
            cores = os.cpu_count() or 1
            held = capacity["users_held_per_core"]
            verdict = "meets" if held >= 100_000 else "MISSES"
            print(f"held {held:,.0f} users from one generator process on one core of this "
                  f"{cores}-core machine (the server on the other); memory per user "
                  f"{capacity['memory_per_user_kb']:.1f} KB -> {verdict} the target of "
                  "100,000 per machine")
    finally:
        server.stop()
    return {
        "plain_rps_per_core": per_core["plain"],
        "suite_rps_per_core": per_core["suite"],
        "wrk_rps_per_core": per_core["wrk"],
        "suite_over_plain": b_over_a,
        "suite_over_wrk": b_over_c,
        "accounting_us_per_request": cost_us,
        "suite_over_plain_from_cost": b_over_a_accounting,
        **capacity,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run the bench server")
    parser.add_argument("--full", action="store_true", help="sweep up to 100,000 users")
    args = parser.parse_args()
    if args.serve:
        serve()
    else:
        main(full=args.full)
