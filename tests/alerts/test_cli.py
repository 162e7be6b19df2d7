"""`pitchey alerts ...` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alerts.localstack import free_port
from alerts.specload import load_spec
from pitchey_cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_cli_pulls_in_nothing_heavy() -> None:
    code = ("import sys, alerts.cli; heavy = {'aiohttp', 'yaml', 'prometheus_client', "
            "'pandas', 'aiosqlite'}; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_render_writes_rules_and_one_test_file_per_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = len(load_spec().rules)
    assert main(["alerts", "render", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"pitchey-alerts.rules.yml ({rules} rules)" in out and "promtool test rules" in out
    assert len(list((tmp_path / "tests").glob("*.test.yml"))) == rules
    assert main(["alerts", "render", "--out", str(tmp_path / "x"), "--time-scale", "0"]) == 1
    assert "time scale must be positive" in capsys.readouterr().err


def test_check_runs_the_evaluator_over_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "check"]) == 0
    assert "embedded evaluator: every scenario passes" in capsys.readouterr().out


@pytest.mark.integration
def test_receive_serves_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PITCHEY_ALERTS_WEBHOOK_SECRET": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "pitchey_cli", "alerts", "receive", "--port", str(port),
         "--db", str(tmp_path / "r.sqlite3")], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=1) as r:
                    status = json.loads(r.read())
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
        assert status["notifications"] == 0 and status["signature_required"] is False
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
    busy = subprocess.run([sys.executable, "-m", "pitchey_cli", "alerts", "receive", "--port",
                           "70000"], cwd=ROOT, capture_output=True, text=True)
    assert busy.returncode == 1 and "not a TCP port" in busy.stderr
