"""Reference servers whose service demand and contention are known by construction.

The capacity method (service demand, breakpoint steps, the knee, the USL fit) is validated
against these: a test or benchmark loads one, then compares what the suite measured with what
the server was built to do (tests/integration/test_capacity_validation.py,
benchmarks/bench_capacity.py).

Command line (one process, one thread, one asyncio event loop; aiohttp)::

    python -m testing.reference_server --port 0 --port-file F --mode burn --burn-ms 4
    python -m testing.reference_server --port 0 --port-file F --mode contention \\
        --base-ms 10 --sigma 0.05 --kappa 0.002 [--log requests.jsonl]

- ``--mode burn``: every work request costs exactly ``burn-ms`` of the process's CPU time.
  The handler busy-loops on ``time.process_time()`` until the process has spent ``burn-ms``
  of CPU since the previous work request finished burning, so the HTTP parsing, the response
  writes, the log line and any /metrics scrape in between are counted inside each request's
  budget, not on top of it (as long as they cost less than ``burn-ms``, which they do by a
  wide margin). The handler blocks the event loop, so requests are served one at a time:
  the service demand is D = burn-ms and one core's X_max = 1000 / burn-ms requests per second,
  exactly.
- ``--mode contention``: every work request SLEEPS (no CPU) for
  ``base × (1 + σ(n−1) + κ·n(n−1))`` where n is the number of work requests in flight when it
  starts (itself included). N closed-loop clients with no think time therefore get the
  Universal Scalability Law, X(N) = N / (base × (1 + σ(N−1) + κN(N−1))), by construction
  (`usl_truth`).

Every GET/POST/PUT/DELETE path answers 200 with a small JSON body that the browsing journeys
of `loadtests.journeys` accept (`items` with a pitch id and creator, `pages`, `id`). Except:

- ``GET /health``: ``{"status": "ok"}``;
- ``GET /status``: ``{"status": "ok", "mode": ..., "requests": ..., "in_flight": ...}``;
- ``GET /metrics``: Prometheus text from the server's own registry:
  ``process_cpu_seconds_total`` (prometheus_client's default process collector, with
  ``process_resident_memory_bytes`` and the rest of that family) and
  ``reference_requests_total`` (a counter of completed work requests; /health, /status and
  /metrics are not work and not counted), ``reference_in_flight`` (work requests in flight)
  and ``reference_burn_seconds`` / ``reference_base_seconds`` (the configured cost).

``--log F`` appends one JSON line per completed work request: ``{"method", "path",
"start", "end"`` (epoch seconds), ``"cpu_ms"`` (process CPU charged to it), ``"in_flight"``
(n when it started), ``"delay_ms"`` (contention mode: the sleep it was given)``}``, so a test
knows the truth. ``--port-file F`` receives the bound port (written atomically) once the
server listens; the server also prints ``reference: listening on http://127.0.0.1:PORT``.
SIGTERM or SIGINT stops it cleanly.

`ReferenceServer` starts one as a child process for tests and benchmarks (port 0, port file
polled with a deadline, the process group killed on exit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from testing.children import start_child, stop_child

__all__ = [
    "Mode",
    "ReferenceConfig",
    "ReferenceServer",
    "RequestRecord",
    "contention_delay_s",
    "main",
    "read_log",
    "usl_truth",
]

Mode = Literal["burn", "contention"]
_NOT_WORK = frozenset({"/health", "/status", "/metrics"})
_BODY = json.dumps({
    "id": 1, "ok": True, "pages": 1, "page": 1, "total": 1,
    "items": [{"id": 1, "title": "reference", "creator": {"id": 1}}],
}).encode()


@dataclass(frozen=True)
class ReferenceConfig:
    mode: Mode = "burn"
    burn_ms: float = 4.0
    base_ms: float = 10.0
    sigma: float = 0.05
    kappa: float = 0.002

    def __post_init__(self) -> None:
        if self.burn_ms <= 0 or self.base_ms <= 0:
            raise ValueError("burn-ms and base-ms must be positive")
        if not 0 <= self.sigma <= 1 or self.kappa < 0:
            raise ValueError("sigma must be in [0, 1] and kappa >= 0")

    def args(self) -> list[str]:
        """The command-line flags that reproduce this configuration."""
        if self.mode == "burn":
            return ["--mode", "burn", "--burn-ms", f"{self.burn_ms:g}"]
        return ["--mode", "contention", "--base-ms", f"{self.base_ms:g}",
                "--sigma", f"{self.sigma:g}", "--kappa", f"{self.kappa:g}"]


def contention_delay_s(config: ReferenceConfig, in_flight: int) -> float:
    """The sleep of a request that starts with `in_flight` work requests in flight (itself
    included): base × (1 + σ(n−1) + κ·n(n−1))."""
    n = max(1, in_flight)
    return config.base_ms / 1000.0 * (1.0 + config.sigma * (n - 1) + config.kappa * n * (n - 1))


def usl_truth(config: ReferenceConfig, users: float) -> tuple[float, float]:
    """(throughput req/s, response time s) of `users` closed-loop clients with no think time
    against a contention-mode server, by construction."""
    n = max(1.0, users)
    response_s = config.base_ms / 1000.0 * (1.0 + config.sigma * (n - 1) + config.kappa * n
                                            * (n - 1))
    return users / response_s, response_s


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    start: float
    end: float
    cpu_ms: float
    in_flight: int
    delay_ms: float | None


def read_log(path: Path) -> list[RequestRecord]:
    """Every complete line of a `--log` file (a torn last line is skipped)."""
    records: list[RequestRecord] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        records.append(RequestRecord(str(item["method"]), str(item["path"]),
                                     float(item["start"]), float(item["end"]),
                                     float(item["cpu_ms"]), int(item["in_flight"]),
                                     None if item.get("delay_ms") is None
                                     else float(item["delay_ms"])))
    return records


# --- the server ---------------------------------------------------------------------------------


class _State:
    def __init__(self, config: ReferenceConfig, log: IO[str] | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

        self.config = config
        self.log = log
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter("reference_requests", "Completed work requests.",
                                registry=self.registry)
        self.in_flight_gauge = Gauge("reference_in_flight", "Work requests in flight.",
                                     registry=self.registry)
        Gauge("reference_burn_seconds", "CPU seconds each work request costs (burn mode).",
              registry=self.registry).set(config.burn_ms / 1000.0 if config.mode == "burn"
                                          else 0.0)
        Gauge("reference_base_seconds", "Sleep of a lone work request (contention mode).",
              registry=self.registry).set(config.base_ms / 1000.0
                                          if config.mode == "contention" else 0.0)
        self.in_flight = 0
        self.completed = 0
        self.cpu_mark = time.process_time()  # end of the previous work request's budget

    def record(self, method: str, path: str, start: float, cpu_ms: float, in_flight: int,
               delay_ms: float | None) -> None:
        self.completed += 1
        self.requests.inc()
        if self.log is not None:
            self.log.write(json.dumps({
                "method": method, "path": path, "start": start, "end": time.time(),
                "cpu_ms": round(cpu_ms, 4), "in_flight": in_flight, "delay_ms": delay_ms,
            }) + "\n")


def _burn(state: _State) -> float:
    """Busy-loop until `burn_ms` of process CPU has passed since the previous budget ended;
    returns the CPU milliseconds charged to this request."""
    budget = state.config.burn_ms / 1000.0
    deadline = state.cpu_mark + budget
    now = time.process_time()
    while now < deadline:
        now = time.process_time()
    charged = now - state.cpu_mark
    state.cpu_mark = now
    return charged * 1000.0


def _app(state: _State) -> Any:
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def work(request: web.Request) -> web.Response:
        start = time.time()
        state.in_flight += 1
        state.in_flight_gauge.set(state.in_flight)
        n = state.in_flight
        delay_ms: float | None = None
        try:
            if state.config.mode == "burn":
                cpu_ms = _burn(state)
            else:
                cpu_before = time.process_time()
                delay = contention_delay_s(state.config, n)
                delay_ms = delay * 1000.0
                await asyncio.sleep(delay)
                cpu_ms = (time.process_time() - cpu_before) * 1000.0
            if request.can_read_body:
                await request.read()
        finally:
            state.in_flight -= 1
            state.in_flight_gauge.set(state.in_flight)
        state.record(request.method, request.path, start, cpu_ms, n, delay_ms)
        return web.Response(body=_BODY, content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "mode": state.config.mode,
                                  "requests": state.completed, "in_flight": state.in_flight})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(state.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", work)
    return app


async def _serve(config: ReferenceConfig, host: str, port: int, port_file: Path | None,
                 log_path: Path | None) -> None:
    from aiohttp import web

    log = log_path.open("a", encoding="utf-8", buffering=1) if log_path else None
    state = _State(config, log)
    runner = web.AppRunner(_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    if port_file is not None:
        partial = port_file.with_name(port_file.name + ".partial")
        partial.write_text(str(bound))
        os.replace(partial, port_file)
    print(f"reference: listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    state.cpu_mark = time.process_time()
    await stop.wait()
    await runner.cleanup()
    if log is not None:
        log.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m testing.reference_server",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--mode", choices=("burn", "contention"), default="burn")
    parser.add_argument("--burn-ms", type=float, default=4.0)
    parser.add_argument("--base-ms", type=float, default=10.0)
    parser.add_argument("--sigma", type=float, default=0.05)
    parser.add_argument("--kappa", type=float, default=0.002)
    parser.add_argument("--log", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = ReferenceConfig(args.mode, args.burn_ms, args.base_ms, args.sigma, args.kappa)
    except ValueError as exc:
        print(f"reference: {exc}", file=sys.stderr)
        return 4
    asyncio.run(_serve(config, args.host, args.port, args.port_file, args.log))
    return 0


# --- the child process for tests and benchmarks -------------------------------------------------


class ReferenceServer:
    """A reference server as a child process::

        with ReferenceServer(ReferenceConfig("burn", burn_ms=4), tmp_path) as server:
            server.url, server.pid, server.records()
    """

    def __init__(self, config: ReferenceConfig, workdir: Path, *, core: int | None = None,
                 timeout_s: float = 20.0) -> None:
        self.config = config
        self.workdir = workdir
        self.core = core
        self.timeout_s = timeout_s
        self.log_path = workdir / f"reference-{config.mode}.jsonl"
        self.port_file = workdir / f"reference-{config.mode}.port"
        self.output_path = workdir / f"reference-{config.mode}.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> ReferenceServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = (["taskset", "-c", str(self.core)]
                  if self.core is not None and hasattr(os, "sched_setaffinity") else [])
        self.process, port = start_child(
            "testing.reference_server", ["--log", str(self.log_path), *self.config.args()],
            port_file=self.port_file, output_path=self.output_path, timeout_s=self.timeout_s,
            prefix=prefix)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def records(self) -> list[RequestRecord]:
        return read_log(self.log_path)

    def stop(self) -> None:
        stop_child(self.process)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
