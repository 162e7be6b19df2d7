"""Child processes that always go away: each in its own session (process group), output to a
log file, stopped with SIGTERM to the whole group, then SIGKILL after a grace period.

A process group per child means a service that forks its own workers (the geo topology) is
stopped with all of them, and a Ctrl-C in the terminal reaches only `pitchey run`, which then
stops its children in order instead of all at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["Child", "free_port", "wait_http"]


class Child:
    """One started command; `stop()` ends its whole process group."""

    def __init__(self, name: str, command: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM the group, wait `grace_s`, then SIGKILL it; returns the exit code.

        Descendants are listed first and killed by their own pid if they outlive the leader
        (a forked worker that missed the signal), never by a group id that may be reused.
        """
        descendants = self._descendants()
        if self.running():
            self.signal(signal.SIGTERM)
            if self.wait(grace_s) is None:
                self.signal(signal.SIGKILL)
                self.process.wait()
        for process in descendants:
            with contextlib.suppress(Exception):
                if process.is_running():
                    process.kill()
                    process.wait(timeout=5)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def _descendants(self) -> list[Any]:
        import psutil

        try:
            return list(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.Error:
            return []

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _load_prctl() -> Any:
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved once here: between fork and exec the child must do as little as possible.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)


def _die_with_parent() -> None:
    """Linux: SIGTERM this child if `pitchey run` itself dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, deadline_s: float, *, alive: Child | None = None,
              poll_s: float = 0.2) -> bool:
    """Poll `url` until it answers 2xx, `alive` exits, or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if alive is not None and not alive.running():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:  # noqa: S310 - local URL
                if 200 <= response.status < 300:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(poll_s)
    return False
