"""A reference target that logs every delay it served: the truth a run is checked against.

Issue 16: the suite's percentiles, counts, gaps and corrected latency are compared with what
this server did, computed from its own log (tests/integration/test_truth.py,
benchmarks/bench_truth.py, docs/loadtests.md "How far to trust a run").

Command line (one process, one asyncio event loop; aiohttp, HTTP/1.1 keep-alive)::

    python -m testing.reference_target --port 0 --port-file F --log F --mode fixed --delay-ms 20
    python -m testing.reference_target ... --mode bimodal --fast-ms 10 --slow-ms 200 \\
        --slow-share 0.1 [--seed 16]
    python -m testing.reference_target ... --mode stall --delay-ms 10 --stall-ms 2000 \\
        --every-s 10
    (any mode) [--fail-share 0.02]   # that share of requests answers 500, seeded

- ``fixed``: every request is answered ``delay-ms`` after it arrived.
- ``bimodal``: ``slow-ms`` for a ``slow-share`` of the requests, ``fast-ms`` for the others,
  drawn in arrival order from ``random.Random(seed)`` (deterministic).
- ``stall``: ``delay-ms``, and the whole server stalls for ``stall-ms`` every ``every-s``
  seconds: stall k covers [origin + k × every-s, + stall-ms) for k ≥ 1, where the origin is
  the whole epoch second the server started in (stalls begin on whole seconds). Nothing is
  answered during a stall: a request arriving in one waits for its end before its delay, and
  a response that would be sent inside one is held to its end. The time held is logged as
  ``stall_ms``.

Every GET/POST/PUT/DELETE path answers with a small JSON body that the browsing journeys of
`loadtests.journeys` accept (200, or 500 for the ``fail-share``), except ``/health``,
``/status`` and ``/metrics`` (the orchestrator's scraper), which answer at once, never stall
and are neither logged nor counted.

``--log F`` receives one JSON line first, ``{"type": "start", "origin": epoch s, "config":
{...}}``, then one per request once it is done: ``{"type": "request", "method", "path",
"arrival"`` (epoch s, when the request was read), ``"delay_ms"`` (the delay drawn for it),
``"stall_ms"`` (time it was held by stalls, included in its response time), ``"sent"`` (epoch
s just before the response was handed to the socket, so that sent − arrival never exceeds what
the client can measure; null when the client had gone: a request cut), ``"status"`` (0 when
the server stopped with the request in hand), ``"intended"`` (the ``X-Intended-Start``
header as epoch s, when a client sent one), ``"region"`` (``X-Pitchey-Region``)``}``.
``--port-file F`` receives the bound port (atomically) once the server listens. SIGTERM or
SIGINT stops it cleanly.

`ReferenceTarget` runs one for a test or benchmark: in this process (a thread with its own
event loop; the default) or as a child process (``child=True``: its own interpreter, so the
test process's own work cannot delay the server's clock readings)::

    with ReferenceTarget(TargetConfig("bimodal"), log=tmp_path / "served.jsonl") as target:
        target.url, target.records(), target.origin
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from testing.children import start_child, stop_child

__all__ = [
    "INTENDED_HEADER",
    "REGION_HEADER",
    "Mode",
    "ReferenceTarget",
    "ServedRecord",
    "TargetConfig",
    "main",
    "read_log",
    "read_origin",
    "stall_end",
    "stall_windows",
]

Mode = Literal["fixed", "bimodal", "stall"]
INTENDED_HEADER = "X-Intended-Start"
REGION_HEADER = "X-Pitchey-Region"
_NOT_WORK = frozenset({"/health", "/status", "/metrics"})
_BODY = json.dumps({
    "id": 1, "ok": True, "pages": 1, "page": 1, "total": 1,
    "items": [{"id": 1, "title": "reference", "creator": {"id": 1}}],
}).encode()
_FAILED = json.dumps({"error": "reference target: a seeded failure"}).encode()


@dataclass(frozen=True)
class TargetConfig:
    mode: Mode = "fixed"
    delay_ms: float = 20.0  # fixed and stall modes
    fast_ms: float = 10.0  # bimodal
    slow_ms: float = 200.0
    slow_share: float = 0.1
    stall_ms: float = 2000.0  # stall mode
    every_s: float = 10.0
    fail_share: float = 0.0  # any mode: that share answers 500
    seed: int = 16

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "bimodal", "stall"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if min(self.delay_ms, self.fast_ms, self.slow_ms, self.stall_ms) < 0:
            raise ValueError("delays must be >= 0")
        if not 0 <= self.slow_share <= 1 or not 0 <= self.fail_share <= 1:
            raise ValueError("slow-share and fail-share must be in [0, 1]")
        if self.mode == "stall" and self.stall_ms / 1000.0 >= self.every_s:
            raise ValueError("stall-ms must be shorter than every-s")

    def args(self) -> list[str]:
        """The command-line flags that reproduce this configuration."""
        flags = ["--mode", self.mode, "--seed", str(self.seed)]
        if self.mode == "bimodal":
            flags += ["--fast-ms", f"{self.fast_ms:g}", "--slow-ms", f"{self.slow_ms:g}",
                      "--slow-share", f"{self.slow_share:g}"]
        else:
            flags += ["--delay-ms", f"{self.delay_ms:g}"]
        if self.mode == "stall":
            flags += ["--stall-ms", f"{self.stall_ms:g}", "--every-s", f"{self.every_s:g}"]
        if self.fail_share:
            flags += ["--fail-share", f"{self.fail_share:g}"]
        return flags


@dataclass(frozen=True)
class ServedRecord:
    method: str
    path: str
    arrival: float
    delay_ms: float
    stall_ms: float
    sent: float | None  # None: the client had gone before the answer (a cut request)
    status: int
    intended: float | None
    region: str | None = None  # the X-Pitchey-Region header the suite's users send

    @property
    def response_ms(self) -> float | None:
        """What the server took, arrival to response sent (None for a cut request)."""
        return None if self.sent is None else (self.sent - self.arrival) * 1000.0

    @property
    def failed(self) -> bool:
        return self.status >= 400


# --- the stall schedule (pure) -----------------------------------------------------------------


def stall_windows(config: TargetConfig, origin: float, until: float) -> list[tuple[float, float]]:
    """The stall windows [start, end) (epoch s) that begin before `until`."""
    if config.mode != "stall" or config.stall_ms <= 0:
        return []
    windows = []
    k = 1
    while origin + k * config.every_s < until:
        start = origin + k * config.every_s
        windows.append((start, start + config.stall_ms / 1000.0))
        k += 1
    return windows


def stall_end(config: TargetConfig, origin: float, t: float) -> float | None:
    """The end of the stall that `t` falls in, or None when the server is not stalled then."""
    if config.mode != "stall" or config.stall_ms <= 0 or t < origin + config.every_s:
        return None
    k = math.floor((t - origin) / config.every_s)
    start = origin + k * config.every_s
    end = start + config.stall_ms / 1000.0
    return end if start <= t < end else None


# --- the log -----------------------------------------------------------------------------------


def _record(item: dict[str, Any]) -> ServedRecord:
    return ServedRecord(str(item["method"]), str(item["path"]), float(item["arrival"]),
                        float(item["delay_ms"]), float(item["stall_ms"]),
                        None if item.get("sent") is None else float(item["sent"]),
                        int(item["status"]),
                        None if item.get("intended") is None else float(item["intended"]),
                        None if item.get("region") is None else str(item["region"]))


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    items = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if isinstance(item, dict):
            items.append(item)
    return items


def read_log(path: Path) -> list[ServedRecord]:
    """Every complete request line of a `--log` file, in the order they were written."""
    return [_record(item) for item in _lines(path) if item.get("type") == "request"]


def read_origin(path: Path) -> float | None:
    """The stall schedule's origin written at the top of a `--log` file."""
    return next((float(item["origin"]) for item in _lines(path) if item.get("type") == "start"),
                None)


# --- the server ---------------------------------------------------------------------------------


class _State:
    def __init__(self, config: TargetConfig, origin: float, log: IO[str] | None) -> None:
        self.config = config
        self.origin = origin
        self.log = log
        self.records: list[ServedRecord] = []
        self.lock = threading.Lock()
        self.delays = random.Random(config.seed)
        self.failures = random.Random(config.seed + 1)
        self.in_flight = 0
        if log is not None:
            log.write(json.dumps({"type": "start", "origin": origin,
                                  "config": asdict(config)}) + "\n")

    def draw(self) -> tuple[float, bool]:
        """The next request's delay (ms) and whether it fails, in arrival order."""
        config = self.config
        if config.mode == "bimodal":
            delay = config.slow_ms if self.delays.random() < config.slow_share else config.fast_ms
        else:
            delay = config.delay_ms
        return delay, config.fail_share > 0 and self.failures.random() < config.fail_share

    def done(self, record: ServedRecord) -> None:
        with self.lock:
            self.records.append(record)
        if self.log is not None:
            self.log.write(json.dumps({"type": "request", **asdict(record)}) + "\n")


async def _hold_through_stall(state: _State) -> float:
    """Wait out the stall the server is in now, if any; the seconds waited."""
    now = time.time()
    end = stall_end(state.config, state.origin, now)
    if end is None:
        return 0.0
    await asyncio.sleep(end - now)
    return time.time() - now


def _intended(request: Any) -> float | None:
    value = request.headers.get(INTENDED_HEADER)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _app(state: _State) -> Any:
    from aiohttp import web

    async def work(request: web.Request) -> web.StreamResponse:
        arrival = time.time()
        state.in_flight += 1
        delay_ms, fail = state.draw()
        held = 0.0
        try:
            if request.can_read_body:
                await request.read()
            held += await _hold_through_stall(state)
            await asyncio.sleep(delay_ms / 1000.0)
            held += await _hold_through_stall(state)
            status = 500 if fail else 200
            response = web.Response(body=_FAILED if fail else _BODY, status=status,
                                    content_type="application/json")
            sent: float | None = None
            try:
                await response.prepare(request)
                # stamped before the body goes out: the send can wake the client and the
                # scheduler may run it first, so a stamp after the write could come later
                # than the client's own end; this one is never later (truth <= measured)
                stamp = time.time()
                await response.write_eof()
                sent = stamp
            except (ConnectionError, RuntimeError):  # the client had gone: a cut request
                sent = None
            state.done(ServedRecord(request.method, request.path, arrival, delay_ms,
                                    round(held * 1000.0, 3), sent, status, _intended(request),
                                    request.headers.get(REGION_HEADER)))
        except asyncio.CancelledError:  # the server stops with the request in hand: cut
            state.done(ServedRecord(request.method, request.path, arrival, delay_ms,
                                    round(held * 1000.0, 3), None, 0, _intended(request),
                                    request.headers.get(REGION_HEADER)))
            raise
        finally:  # after the log line: in_flight 0 means every request is logged
            state.in_flight -= 1
        return response

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "mode": state.config.mode,
                                  "requests": len(state.records),
                                  "in_flight": state.in_flight})

    async def metrics(_: web.Request) -> web.Response:
        text = ("# TYPE reference_requests_total counter\n"
                f"reference_requests_total {len(state.records)}\n"
                "# TYPE reference_in_flight gauge\n"
                f"reference_in_flight {state.in_flight}\n")
        return web.Response(text=text, content_type="text/plain")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", work)
    return app


async def _start(state: _State, host: str, port: int) -> tuple[Any, int]:
    from aiohttp import web

    runner = web.AppRunner(_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    return runner, int(bound)


def _write_port(port_file: Path, port: int) -> None:
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(str(port))
    os.replace(partial, port_file)


async def _serve(config: TargetConfig, host: str, port: int, port_file: Path | None,
                 log_path: Path | None) -> None:
    log = log_path.open("a", encoding="utf-8", buffering=1) if log_path else None
    state = _State(config, float(int(time.time())), log)
    runner, bound = await _start(state, host, port)
    if port_file is not None:
        _write_port(port_file, bound)
    print(f"reference target: listening on http://{host}:{bound} ({config.mode})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    if log is not None:
        log.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m testing.reference_target",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--mode", choices=("fixed", "bimodal", "stall"), default="fixed")
    defaults = TargetConfig()
    parser.add_argument("--delay-ms", type=float, default=defaults.delay_ms)
    parser.add_argument("--fast-ms", type=float, default=defaults.fast_ms)
    parser.add_argument("--slow-ms", type=float, default=defaults.slow_ms)
    parser.add_argument("--slow-share", type=float, default=defaults.slow_share)
    parser.add_argument("--stall-ms", type=float, default=defaults.stall_ms)
    parser.add_argument("--every-s", type=float, default=defaults.every_s)
    parser.add_argument("--fail-share", type=float, default=defaults.fail_share)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = TargetConfig(args.mode, args.delay_ms, args.fast_ms, args.slow_ms,
                              args.slow_share, args.stall_ms, args.every_s, args.fail_share,
                              args.seed)
    except ValueError as exc:
        print(f"reference target: {exc}", file=sys.stderr)
        return 4
    asyncio.run(_serve(config, args.host, args.port, args.port_file, args.log))
    return 0


# --- for tests and benchmarks -------------------------------------------------------------------


class ReferenceTarget:
    """A reference target for a test or benchmark (port 0), stopped on exit.

    In-process (default): the server runs on an event loop in a daemon thread of this
    process; `records()` is read from memory (and `log`, when given, is written too). A
    process that gevent has monkey-patched (one that imported Locust) cannot host it: use
    ``child=True``, which starts ``python -m testing.reference_target`` in its own process
    group and reads `records()` from its log (under `workdir`, or `log`).
    """

    def __init__(self, config: TargetConfig | None = None, *, log: Path | None = None,
                 child: bool = False, workdir: Path | None = None,
                 timeout_s: float = 20.0) -> None:
        self.config = config or TargetConfig()
        self.child = child
        self.timeout_s = timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if child and log is None:
            if workdir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="reference-target-")
                workdir = Path(self._tmp.name)
            log = workdir / f"reference-target-{self.config.mode}.jsonl"
        self.log_path = log
        self.url = ""
        self.origin = 0.0
        self.process: subprocess.Popen[bytes] | None = None
        self._state: _State | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._log: IO[str] | None = None
        self._kept: list[ServedRecord] | None = None  # a child's log, read before cleanup

    # in-process ---------------------------------------------------------------------------------
    def _start_thread(self) -> None:
        if "gevent.monkey" in sys.modules:
            from gevent import monkey

            if monkey.is_module_patched("threading"):
                raise RuntimeError("this process is gevent-patched (Locust imported): use "
                                   "ReferenceTarget(..., child=True)")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", encoding="utf-8", buffering=1)
        self.origin = float(int(time.time()))
        state = self._state = _State(self.config, self.origin, self._log)
        loop = self._loop = asyncio.new_event_loop()
        ready: list[int] = []
        failure: list[BaseException] = []
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._runner, port = loop.run_until_complete(_start(state, "127.0.0.1", 0))
                ready.append(port)
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="reference-target", daemon=True)
        self._thread.start()
        if not started.wait(self.timeout_s) or not ready:
            raise RuntimeError(f"the reference target did not start: {failure or 'timeout'}")
        self.url = f"http://127.0.0.1:{ready[0]}"

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # child process ------------------------------------------------------------------------------
    def _start_child(self) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process, port = start_child(
            "testing.reference_target", ["--log", str(self.log_path), *self.config.args()],
            port_file=self.log_path.with_suffix(".port"),
            output_path=self.log_path.with_suffix(".out"), timeout_s=self.timeout_s)
        self.url = f"http://127.0.0.1:{port}"
        self.origin = read_origin(self.log_path) or 0.0

    def _stop_child(self) -> None:
        stop_child(self.process)

    # both ---------------------------------------------------------------------------------------
    def start(self) -> ReferenceTarget:
        if self.child:
            self._start_child()
        else:
            self._start_thread()
        return self

    def stop(self) -> None:
        if self.child:
            self._stop_child()
        else:
            self._stop_thread()

    def in_flight(self) -> int:
        """Requests the server holds now (its /status)."""
        if self._state is not None:
            return self._state.in_flight
        import urllib.request

        with urllib.request.urlopen(self.url + "/status", timeout=5) as reply:  # noqa: S310
            return int(json.loads(reply.read())["in_flight"])

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no request is in hand (every one logged); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.in_flight() == 0:
                return True
            time.sleep(0.05)
        return False

    def records(self) -> list[ServedRecord]:
        """Every request served so far (cut ones included, with `sent` None)."""
        if self._state is not None:
            with self._state.lock:
                return list(self._state.records)
        if self._kept is not None:
            return list(self._kept)
        return read_log(self.log_path) if self.log_path is not None else []

    def stalls(self, until: float | None = None) -> list[tuple[float, float]]:
        """The stall windows since the server started, up to `until` (default: now)."""
        return stall_windows(self.config, self.origin, time.time() if until is None else until)

    def __enter__(self) -> ReferenceTarget:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        if self._tmp is not None:
            self._kept = self.records()
            self._tmp.cleanup()
            self._tmp = None


if __name__ == "__main__":
    sys.exit(main())
