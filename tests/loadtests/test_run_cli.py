"""`pitchey run` end to end: the embedded platform, a real Locust master and one worker per
region, a complete run directory; and a Ctrl-C that leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from collectors import load_run

ROOT = Path(__file__).resolve().parents[2]
REGIONS = {"us-east", "us-west", "europe", "asia"}
PORTALS = {"creator", "investor", "production", "browser"}


def pitchey_run(*args: str, out: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pitchey_cli", "run", *args, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # like a terminal: signals go to `pitchey run` alone
    )


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(process.cmdline()[:6]))
        except psutil.NoSuchProcess:
            pass
    return left


def kill_tree(process: subprocess.Popen[str]) -> None:
    for child in descendants(process.pid):
        child.kill()
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.mark.integration
def test_smoke_scenario_end_to_end(tmp_path: Path) -> None:
    process = pitchey_run("smoke", "--duration", "14", out=tmp_path,
                          env={"PITCHEY_TRACE_SAMPLE_RATIO": "0.2"})
    try:
        output, _ = process.communicate(timeout=110)
    finally:
        kill_tree(process)
    run_dirs = list(tmp_path.iterdir())
    assert len(run_dirs) == 1, output
    run = load_run(run_dirs[0])
    manifest = json.loads((run_dirs[0] / "manifest.json").read_text())
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    # `pitchey run` exits with the gate's verdict, recorded in summary.json and printed last
    # (3, invalid, is an honest verdict on a busy shared machine: the generator lagged)
    verdict = summary["verdict"]
    assert process.returncode == verdict["exit_code"], output
    assert output.rstrip().splitlines()[-1] == verdict["line"]
    assert verdict["status"] in (("pass", "breach") if run.validity.valid else ("invalid",))
    assert manifest["status"] == "complete" and summary["ended"] == "completed"
    # the summary's figures are those of the window the gate judged; the whole run's are kept
    assert summary["window"] == verdict["window"] and verdict["window"]["warmup_s"] > 0
    assert summary["whole_run"]["requests"] > summary["requests"]
    assert run.scenario["name"] == "smoke" and run.scenario["stages"][0]["duration"] < 5
    assert set(run.scopes("region")) == REGIONS
    assert set(run.scopes("user_class")) == PORTALS
    assert summary["requests"] > 100
    assert summary["failures"] == 0, run.stats[run.stats["failures"] > 0]  # journeys fit the API
    endpoints = set(run.scopes("endpoint"))
    assert {"GET /api/pitches", "GET /api/pitches/{id}", "POST /api/auth/creator/login",
            "GET /api/dashboard/creator/metrics"} <= endpoints
    assert all("?" not in e and not any(c.isdigit() for c in e) for e in endpoints)
    assert run.events_of("stage")[0]["stage"] == "1:ramp"
    assert set(run.generator["region"].astype(str)) == REGIONS
    assert len(run.service) > 0  # the collectors scraped the platform during the run
    # the embedded alert evaluator ran live over those scrapes, with its outbox in the run
    assert "alert rules evaluated live" in output
    assert (run_dirs[0] / "alerts-outbox.sqlite3").exists()
    # a sample of requests carried a sampled traceparent: the service recorded their spans
    spans = [json.loads(line) for line in
             (run_dirs[0] / "spans.jsonl").read_text().splitlines() if line.strip()]
    server_spans = [span for span in spans if span["kind"] == "SpanKind.SERVER"]
    # a server span with a parent continues a trace the load generator started
    assert any(span["parent_id"] for span in server_spans), server_spans[:3]
    assert "p95" in output and "run directory:" in output
    assert "target 35 ->" not in output and "MISSED" not in output  # no judgement of its own


@pytest.mark.integration
def test_ctrl_c_stops_every_process_and_keeps_the_data(tmp_path: Path) -> None:
    process = pitchey_run("smoke", out=tmp_path)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _load_running(tmp_path):
            children = descendants(process.pid) or children
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.3)
        children = descendants(process.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert names.count("--worker") == 4 and "--master" in names and "serve" in names
        os.kill(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        kill_tree(process)
    assert process.returncode == 130, output
    assert alive(children) == []
    run = load_run(next(tmp_path.iterdir()))
    assert run.complete and not run.validity.valid
    assert any("interrupted" in reason for reason in run.validity.reasons)
    assert run.histogram().total > 0  # what was measured before Ctrl-C is kept


def _load_running(root: Path) -> bool:
    for stream in root.glob("*/logs/locust-stream.jsonl"):
        for line in stream.read_text().splitlines():
            if '"k":"progress"' in line and json.loads(line).get("requests", 0) > 20:
                return True
    return False
