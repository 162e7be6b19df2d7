"""A throwaway local Prometheus + Alertmanager (Debian packages) around rendered rules.

For the integration tests and the benchmark: temporary configs, free ports on 127.0.0.1,
short intervals when asked, and both processes killed on exit.

    with LocalStack(tmp, rules_file, scrape_targets=["127.0.0.1:8001"],
                    webhook_url="http://127.0.0.1:9095/webhook") as stack:
        stack.prometheus_url, stack.alertmanager_url
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

__all__ = ["LocalStack", "StackMissing", "StackTimings", "free_port"]

PROMETHEUS = os.environ.get("PITCHEY_PROMETHEUS", "/usr/bin/prometheus")
ALERTMANAGER = os.environ.get("PITCHEY_ALERTMANAGER", "/usr/bin/prometheus-alertmanager")


class StackMissing(RuntimeError):
    """prometheus or prometheus-alertmanager is not installed."""


@dataclass(frozen=True)
class StackTimings:
    """Prometheus' and Alertmanager's intervals (their defaults: 1m, 1m, 30s, 5m)."""

    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    group_wait: str = "1s"
    group_interval: str = "1s"
    repeat_interval: str = "1h"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(path: str) -> str:
    found = path if Path(path).exists() else shutil.which(Path(path).name)
    if not found:
        raise StackMissing(f"{path} not found: install the Debian packages prometheus and "
                           "prometheus-alertmanager")
    return found


class LocalStack:
    def __init__(self, workdir: Path, rules_file: Path | None, *,
                 scrape_targets: Sequence[str], webhook_url: str,
                 timings: StackTimings = StackTimings(), job: str = "pitchey") -> None:
        self.workdir = workdir
        self.rules_file = rules_file
        self.scrape_targets = list(scrape_targets)
        self.webhook_url = webhook_url
        self.timings = timings
        self.job = job
        self.prometheus_port = free_port()
        self.alertmanager_port = free_port()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._log: IO[bytes] | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def _write_configs(self) -> tuple[Path, Path]:
        t = self.timings
        alertmanager = {
            "route": {"receiver": "pitchey", "group_by": ["alertname"],
                      "group_wait": t.group_wait, "group_interval": t.group_interval,
                      "repeat_interval": t.repeat_interval},
            "receivers": [{"name": "pitchey", "webhook_configs": [
                {"url": self.webhook_url, "send_resolved": True}]}],
        }
        prometheus = {
            "global": {"scrape_interval": t.scrape_interval,
                       "evaluation_interval": t.evaluation_interval},
            "rule_files": [str(self.rules_file)] if self.rules_file else [],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{self.alertmanager_port}"]}]}]},
            "scrape_configs": [{"job_name": self.job,
                                "static_configs": [{"targets": self.scrape_targets}]}],
        }
        am_file, prom_file = self.workdir / "alertmanager.yml", self.workdir / "prometheus.yml"
        am_file.write_text(yaml.safe_dump(alertmanager))
        prom_file.write_text(yaml.safe_dump(prometheus))
        return am_file, prom_file

    def start(self, timeout_s: float = 30.0) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        am_file, prom_file = self._write_configs()
        log = self._log = (self.workdir / "stack.log").open("ab")
        self._processes.append(subprocess.Popen(
            [_binary(ALERTMANAGER), f"--config.file={am_file}",
             f"--storage.path={self.workdir / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
             "--cluster.listen-address=", "--log.level=warn"],
            stdout=log, stderr=log))
        self._processes.append(subprocess.Popen(
            [_binary(PROMETHEUS), f"--config.file={prom_file}",
             f"--storage.tsdb.path={self.workdir / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{self.prometheus_port}", "--log.level=warn"],
            stdout=log, stderr=log))
        try:
            self._wait_ready(f"{self.alertmanager_url}/-/ready", timeout_s)
            self._wait_ready(f"{self.prometheus_url}/-/ready", timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    name = str(process.args[0]) if isinstance(process.args, list) else "server"
                    raise RuntimeError(f"{name} exited with {process.returncode}; "
                                       f"see {self.workdir / 'stack.log'}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not ready within {timeout_s:g} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._processes = []
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "stack.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
            if path.exists() else ""

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
