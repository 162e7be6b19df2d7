"""Shared pieces for the benchmarks: start a server process, read its URL, load it with wrk.

Servers are pinned to one core and wrk to the other where `taskset` exists, so the generator
does not steal the server's CPU (this machine kind has two cores).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from collectors.units import parse_latency_ms

__all__ = [
    "Server", "WrkResult", "start_server", "run_wrk", "pin", "median", "process_cpu_seconds"
]

LISTENING = re.compile(r"listening on (http://[\w.:\[\]]+)")


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pin(command: Sequence[str], core: int) -> list[str]:
    """Prefix `command` with taskset when it is available and there are two cores or more."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core), *command]
    return list(command)


def start_server(
    command: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> Server:
    """Start `command` and wait for its 'listening on http://...' line."""
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = LISTENING.search(line)
        if match:
            return Server(process, match.group(1))
    process.kill()
    raise RuntimeError(f"{' '.join(command)} did not start:\n{''.join(seen)}")


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    # CPU seconds the server process spent per request (when a pid was given): far steadier
    # than throughput on a machine whose other core is busy, because time spent waiting for
    # the CPU does not count.
    server_cpu_us_per_request: float | None = None


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _ms(text: str) -> float:
    """A wrk latency ("812.00us", "1.23ms", "2.01s") in milliseconds."""
    return parse_latency_ms(text, what="wrk latency", bare=False)


def run_wrk(
    url: str,
    seconds: float = 5,
    connections: int = 32,
    threads: int = 1,
    core: int = 0,
    server_pid: int | None = None,
) -> WrkResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make sysdeps installs it)")
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds only
    command = pin(["wrk", f"-t{threads}", f"-c{connections}", duration, "--latency", url], core)
    cpu_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_after = process_cpu_seconds(server_pid) if server_pid else 0.0
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+) timeout"):
        found = re.search(pattern, output)
        if found:
            errors += int(found.group(1))
    cpu_us = 1e6 * (cpu_after - cpu_before) / requests if server_pid and requests else None
    return WrkResult(rps, p50, p99, errors, requests, cpu_us)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


PYTHON = sys.executable
