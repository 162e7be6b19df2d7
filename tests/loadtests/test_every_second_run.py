"""A real run against a target that stalls completely for 2 s every 6 s and, near the end,
holds every request past the stop: the run directory has a row for every second (zeros in the
stalls), the console's duration and rate are the load's span, and the requests the stop cut
are counted. The truth is the target's own log (arrivals and response times)."""

from __future__ import annotations

import io
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from collectors import load_run
from collectors.units import format_duration
from loadtests.orchestrator import RunOptions, run

HERE = Path(__file__).resolve().parent
PLANNED_S = 16.0
STALL_EVERY_S, STALL_S = 6, 2
HOLD_BEFORE_END_S = 2.5  # requests arriving this long before the planned end are held
USERS = 6

SCENARIO = f"""\
name: seconds
target: http://127.0.0.1:1
stages:
  - {{kind: ramp, duration: 1s, users: {USERS}}}
  - {{kind: hold, duration: {PLANNED_S - 1:g}s}}
users:
  browser: {{weight: 1, think_time: 0.1s}}
regions: {{us-east: 1}}
# this test is about the time series, not about how busy the shared machine is
self_check: {{cpu_percent: 100, cpu_sustain: 1h, lag_p95: 1h}}
"""


@dataclass
class Target:
    """Stalls on whole epoch seconds [origin + 6k, + 2 s) (k >= 1): nothing is answered in
    one. From `hold_from` on, every request is held until `release` (the stop cuts them)."""

    origin: float = field(default_factory=lambda: float(int(time.time())))
    hold_from: float = math.inf
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrivals: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # when each answered response was sent

    def stall_end(self, t: float) -> float | None:
        k = math.floor((t - self.origin) / STALL_EVERY_S)
        start = self.origin + k * STALL_EVERY_S
        return start + STALL_S if k >= 1 and start <= t < start + STALL_S else None

    def stalls(self, until: float) -> list[float]:
        return [self.origin + k * STALL_EVERY_S
                for k in range(1, int((until - self.origin) // STALL_EVERY_S) + 1)]

    def wait_out_stall(self) -> None:
        end = self.stall_end(time.time())
        while end is not None and time.time() < end:
            time.sleep(max(0.0, end - time.time()))


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/work":  # the scraper's /metrics, /status: at once
                self._answer(b"{}")
                return
            arrival = time.time()
            with target.lock:
                target.arrivals.append(arrival)
            if arrival >= target.hold_from:
                target.release.wait(60.0)
                return
            target.wait_out_stall()
            time.sleep(0.02)
            target.wait_out_stall()
            if self._answer(b'{"ok": true}'):
                with target.lock:
                    target.sent.append(time.time())

        def _answer(self, body: bytes) -> bool:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return True
            except OSError:
                return False

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def target() -> Iterator[tuple[Target, str]]:
    state = Target()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10.0)


def _arm_hold(state: Target, runs: Path, stop: threading.Event) -> None:
    """Once the run's first stage is in its events.jsonl, hold requests near its planned end."""
    deadline = time.monotonic() + 120.0
    while not stop.is_set() and time.monotonic() < deadline:
        for events in runs.glob("*/events.jsonl"):
            for line in events.read_text().splitlines():
                event = json.loads(line) if line.strip() else {}
                if event.get("type") == "stage":
                    state.hold_from = float(event["t"]) + PLANNED_S - HOLD_BEFORE_END_S
                    return
        stop.wait(0.1)


@pytest.mark.integration
def test_a_stalling_target_gives_zero_rows_the_span_and_cut_requests(
        target: tuple[Target, str], tmp_path: Path) -> None:
    state, url = target
    scenario = tmp_path / "seconds.yaml"
    scenario.write_text(SCENARIO)
    stop = threading.Event()
    watcher = threading.Thread(target=_arm_hold, args=(state, tmp_path / "runs", stop),
                               daemon=True)
    watcher.start()
    try:
        outcome = run(RunOptions(scenario=scenario, host=url, out=tmp_path / "runs",
                                 locustfile=HERE / "seconds_locustfile.py"), out=io.StringIO())
    finally:
        stop.set()
        watcher.join(5.0)
    assert outcome.ended == "completed", outcome.summary
    measured = load_run(outcome.run_dir)
    summary = measured.summary
    start, end = summary["span"]["start"], summary["span"]["end"]
    assert PLANNED_S <= end - start <= PLANNED_S + 2.0, summary["span"]

    # every second of the span has a load row; a second in which the target answered
    # nothing (its own log) is a row of 0 requests/s, and there are stall seconds among them
    load = measured.load
    seconds = [int(t) for t in load["t"]]
    assert seconds == list(range(int(start), math.ceil(end))), seconds
    answered = {int(t) for t in state.sent}
    rps = dict(zip(seconds, load["rps"], strict=True))
    silent = [s for s in seconds if s not in answered and s + 1 not in answered
              and s - 1 not in answered]  # a neighbour's response may land across the edge
    stall_seconds = {int(s) + 1 for s in state.stalls(state.hold_from)
                     if start + 1 <= s + 1 < state.hold_from - 1}
    assert stall_seconds, (state.origin, start)
    assert stall_seconds <= set(seconds)
    for second in stall_seconds:
        assert rps[second] == 0.0, (second, rps)
    assert all(rps[s] == 0.0 for s in silent)
    # per scope too: the stall seconds are stats rows of zero requests
    stats = measured.stats[measured.stats["endpoint"] == "GET /work"]
    per_second = dict(zip(stats["t"].astype(int), stats["requests"], strict=True))
    assert all(per_second.get(s) == 0 for s in stall_seconds), per_second
    # the generator reported every second of the span (one worker)
    generator = sorted({int(t) for t in measured.generator["t"]})
    assert set(range(int(start) + 1, math.ceil(end) - 1)) <= set(generator)

    # the console's duration and rate are summary.json's, from the span
    assert summary["duration_s"] == pytest.approx(end - start)
    assert summary["window"]["duration_s"] == pytest.approx(end - start)  # the gate's too
    first = next(line for line in outcome.summary.splitlines() if line.startswith("== seconds"))
    shown = re.match(r"== seconds: (\d+) requests in (\S+) .*\(([\d.]+) req/s\)", first)
    assert shown is not None, first
    requests = int(summary["requests"])
    assert int(shown.group(1)) == requests
    assert shown.group(2) == format_duration(end - start)
    assert float(shown.group(3)) == pytest.approx(requests / (end - start), abs=0.051)

    # the requests held past the stop are counted as cut: every request the target saw is
    # either counted or cut
    cut = int(summary["cut_requests"])
    assert 1 <= cut <= USERS
    assert len(state.arrivals) == requests + cut, (len(state.arrivals), requests, cut)
    assert f"{cut} cut (in flight when the load stopped)" in first
    print(f"span {end - start:.2f} s, {requests} requests, {cut} cut, "
          f"zero seconds {sorted(s - seconds[0] for s in seconds if rps[s] == 0)}")
