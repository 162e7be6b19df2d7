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

from alerts.specload import load_spec
from pitchey_cli import main
from pitchey_cli.exitcodes import ExitCode
from testing.localstack import free_port

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
    assert main(["alerts", "render", "--out", str(tmp_path)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"pitchey-alerts.rules.yml ({rules} rules)" in out and "promtool test rules" in out
    assert len(list((tmp_path / "tests").glob("*.test.yml"))) == rules
    assert main(["alerts", "render", "--out", str(tmp_path / "x"), "--time-scale", "0"]) \
        == ExitCode.CONFIG
    assert "time scale must be positive" in capsys.readouterr().err


def test_check_runs_the_evaluator_over_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "check"]) == ExitCode.OK
    assert "embedded evaluator: every scenario passes" in capsys.readouterr().out


BAD_SPEC = """version: 1
rules:
  - name: HighErrorRate
    severity: critical
    measure: {kind: ratio, numerator: a_total, denominator: b_total}
    op: ">"
    threshold: 0.05
    window: 5 minutes
    annotations: {summary: s, runbook: r}
"""


@pytest.mark.parametrize("action", [["check"], ["render", "--out", "OUT"]])
def test_a_bad_spec_exits_4_naming_file_line_and_key(
        action: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "rules.yaml"
    spec.write_text(BAD_SPEC)
    argv = ["alerts", *[str(tmp_path / "out") if a == "OUT" else a for a in action],
            "--rules", str(spec)]
    assert main(argv) == ExitCode.CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pitchey alerts: {spec}:8: rule 'HighErrorRate': key 'window': "
                   "'5 minutes' is not a duration (write e.g. 30s, 5m, 1h30m: whole numbers, "
                   "units y, w, d, h, m, s, ms, largest first)"]
    assert not (tmp_path / "out").exists()


def test_a_missing_spec_file_or_run_directory_exits_4(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["alerts", "check", "--rules", str(missing)]) == ExitCode.CONFIG
    assert f"pitchey alerts: {missing}: cannot read the alert spec" in capsys.readouterr().err
    assert main(["alerts", "replay", str(tmp_path / "no-run")]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"pitchey alerts: {tmp_path / 'no-run'}") and "\n" not in err.strip()


@pytest.mark.parametrize(("argv", "message"), [
    (["alerts", "replay", "RUN", "--interval", "0s"], "--interval must be longer than 0s"),
    (["alerts", "replay", "RUN", "--interval", "soon"], "--interval: 'soon' is not a duration"),
    (["alerts", "receive", "--port", "70000"], "--port 70000 is not a TCP port"),
])
def test_bad_flag_values_exit_4_like_the_gate(argv: list[str], message: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # argparse's own usage errors exit 4 too: tests/pitchey_cli/test_exit_codes.py
    argv = [str(tmp_path / "no-run") if a == "RUN" else a for a in argv]
    assert main(argv) == ExitCode.CONFIG
    assert capsys.readouterr().err.startswith(f"pitchey alerts: {message}")


def test_alerts_without_an_action_prints_help_and_exits_4(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts"]) == ExitCode.CONFIG
    assert "render" in capsys.readouterr().err


def test_subprocess_exit_status_for_a_bad_flag_is_4() -> None:
    done = subprocess.run([sys.executable, "-m", "pitchey_cli", "alerts", "check", "--bogus"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.CONFIG
    assert "unrecognized arguments: --bogus" in done.stderr and "Traceback" not in done.stderr


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
    assert busy.returncode == ExitCode.CONFIG and "not a TCP port" in busy.stderr
