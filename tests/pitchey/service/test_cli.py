"""The `pitchey` command as a user runs it: real processes, port 0, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PITCHEY_SQLITE_PATH": str(tmp_path / "cli.db"),
            "PITCHEY_ARGON2_TIME_COST": "1", "PITCHEY_ARGON2_MEMORY_KIB": "8", **extra}


def test_dispatcher_help_imports_no_heavy_package() -> None:
    code = (
        "import sys, pitchey_cli; pitchey_cli.build_parser();"
        "heavy = sorted(m for m in ('locust', 'gevent', 'dash', 'pandas', 'aiohttp')"
        " if m in sys.modules); print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_seed_then_serve_on_port_zero_then_stop_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    seeded = subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "seed", "--users", "3", "--pitches", "5"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    server = subprocess.Popen(
        [sys.executable, "-m", "pitchey_cli", "serve", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = LISTENING.search(line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "/api/pitches", timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read())
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


@pytest.mark.parametrize(
    ("variable", "value"), [("PITCHEY_PORT", "abc"), ("OTEL_TRACES_SAMPLER", "nope")]
)
def test_bad_environment_is_one_line_and_exit_4(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "serve"], env=_env(tmp_path, **{variable: value}),
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 4
    assert variable in result.stderr and "Traceback" not in result.stderr
