"""Start and stop the reference servers as child processes: one way, for both of them.

A child is started in its own session (so its whole process group can be killed), writes its
bound port to a file, and is waited for with a deadline; its output goes to a file that the
error quotes when it does not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["start_child", "stop_child"]

ROOT = Path(__file__).resolve().parent.parent


def start_child(module: str, args: Sequence[str], *, port_file: Path, output_path: Path,
                timeout_s: float, prefix: Sequence[str] = ()) -> tuple[subprocess.Popen[bytes],
                                                                       int]:
    """`python -m MODULE --port 0 --port-file F ARGS` (after `prefix`, e.g. taskset); returns
    the process and its port, or raises RuntimeError with its output."""
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [*prefix, sys.executable, "-m", module, "--port", "0",
               "--port-file", str(port_file), *args]
    with output_path.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return process, int(port_file.read_text())
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop_child(process)
    raise RuntimeError(f"{module} did not start:\n{output_path.read_text(errors='replace')}")


def stop_child(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the child's process group, SIGKILL it after 10 s."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
