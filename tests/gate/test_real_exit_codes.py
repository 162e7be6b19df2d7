"""Every exit code of the gate from real runs: real service, real Locust, real run directories.

0  the same service through a proxy without delay, gated at loose limits (and the smoke
   scenario on the embedded service: test_smoke_gate.py)
1  a Pitchey service behind a proxy that delays every answer by 600 ms, gated at p95 < 100ms
   (the product's target, here also the scenario's) with abort_on_fail (the run stops early
   and says so)
2  the same slow run against a baseline run through a proxy without delay, judged on loose
   thresholds without the product's targets
3  a run against a port nothing listens on (target unreachable)
4  a malformed threshold or unknown metric, from `pitchey run` and from `pitchey gate`
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gate.realruns import (
    ROOT,
    SEED_PITCHES,
    SEED_USERS,
    Result,
    answers,
    closed_port,
    free_port,
    pitchey,
    require_pitchey_run,
    run_dirs,
    scenario_yaml,
    start,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration

DELAY_MS = 600
LIMIT = "p95 < 100ms"


@dataclass
class Targets:
    fast: str
    slow: str
    scenario: Path  # p95 < 100ms, which aborts the run once breached
    baseline_scenario: Path  # the same without abort_on_fail


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    """A seeded Pitchey service, and two proxies in front of it: no delay, and 600 ms."""
    require_pitchey_run()
    root = tmp_path_factory.mktemp("targets")
    service_env = {"PITCHEY_SQLITE_PATH": str(root / "pitchey.db"),
                   "PITCHEY_ARGON2_TIME_COST": "1", "PITCHEY_ARGON2_MEMORY_KIB": "64"}
    seed = pitchey_seed(root, service_env)
    assert seed.returncode == 0, seed.stdout
    port = free_port()
    processes = [start([sys.executable, "-m", "pitchey_cli", "serve", "--port", str(port)],
                       root / "service.log", **service_env)]
    try:
        upstream = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(upstream + "/health"), 60, "pitchey serve", processes[0])
        urls = []
        for name, delay in (("fast", 0), ("slow", DELAY_MS)):
            port_file = root / f"{name}.port"
            proxy = start([sys.executable, str(ROOT / "tests/gate/slow_proxy.py"),
                           "--upstream", upstream, "--delay-ms", str(delay),
                           "--port-file", str(port_file)], root / f"{name}.log")
            processes.append(proxy)
            wait_for(port_file.exists, 30, f"{name} proxy", proxy)
            urls.append(f"http://127.0.0.1:{port_file.read_text().strip()}")
        scenario, baseline = root / "gated.yaml", root / "baseline.yaml"
        scenario.write_text(scenario_yaml("gated", [
            f'{{check: "{LIMIT}", abort_on_fail: true, grace: 2s}}', "error_rate < 5%"]))
        baseline.write_text(scenario_yaml("gated", [LIMIT, "error_rate < 5%"]))
        yield Targets(urls[0], urls[1], scenario, baseline)
    finally:
        for process in reversed(processes):
            stop(process)


def pitchey_seed(root: Path, service_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from tests.gate.realruns import env

    return subprocess.run(
        [sys.executable, "-m", "pitchey_cli", "seed", "--users", str(SEED_USERS),
         "--pitches", str(SEED_PITCHES), "--seed", "42"], cwd=ROOT, env=env(**service_env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, check=False)


@dataclass
class GatedRun:
    result: Result
    run_dir: Path
    junit: Path
    json: Path


def _run(scenario: Path, host: str, out: Path, *extra: str) -> GatedRun:
    """`pitchey run` of a gated scenario against `host` (8 s, 3 s of it warm-up)."""
    junit, verdict = out / "junit.xml", out / "gate.json"
    result = pitchey(["run", str(scenario), "--host", host, "--out", str(out / "runs"),
                      "--junit", str(junit), "--json", str(verdict), *extra], timeout_s=150)
    dirs = run_dirs(out / "runs")
    assert len(dirs) == 1, result.text
    return GatedRun(result, dirs[0], junit, verdict)


@pytest.fixture(scope="module")
def slow_run(targets: Targets, tmp_path_factory: pytest.TempPathFactory) -> GatedRun:
    return _run(targets.scenario, targets.slow, tmp_path_factory.mktemp("slow"), "--gate")


@pytest.fixture(scope="module")
def fast_run(targets: Targets, tmp_path_factory: pytest.TempPathFactory) -> GatedRun:
    return _run(targets.baseline_scenario, targets.fast, tmp_path_factory.mktemp("fast"))


LOOSE = ["--threshold", "p95 < 30s", "--threshold", "error_rate < 50%"]


def test_exit_0_fast_target(fast_run: GatedRun) -> None:
    """(The smoke scenario's own pass is test_smoke_gate.py.)"""
    result = pitchey(["gate", str(fast_run.run_dir), *LOOSE, "--no-product-targets"])
    assert result.code == 0, result.text
    assert "gate: PASS (exit 0)" in result.out


def test_exit_1_slow_target_breaches_p95(slow_run: GatedRun) -> None:
    assert slow_run.result.code == 1, slow_run.result.text
    suite = ET.parse(slow_run.junit).getroot()
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == LIMIT]
    failure = case.find("failure")
    assert failure is not None, ET.tostring(case, "unicode")
    verdict = json.loads(slow_run.json.read_text())
    (p95,) = [c for c in verdict["checks"] if c["name"] == LIMIT and not c["scope"]]
    assert p95["measured"] >= DELAY_MS  # every answer was held back that long
    assert p95["source"] == "scenario gated: thresholds[0], also a product target"
    assert failure.get("message") == p95["message"]
    assert p95["message"].startswith(f"p95 = {p95['measured_text']}, limit < 100 ms (")
    # abort_on_fail stopped the run early, and the verdict says so
    (stop,) = [c for c in verdict["checks"] if c["kind"] == "abort"]
    assert stop["note"].startswith("p95 < 100ms failed after"), stop
    assert "p95 < 100ms failed after" in slow_run.result.out, slow_run.result.text
    aborted = [c for c in suite.iter("testcase") if c.get("name") == stop["name"]]
    assert len(aborted) == 1 and aborted[0].find("failure") is not None


def test_exit_2_regression_against_a_fast_baseline(slow_run: GatedRun, fast_run: GatedRun,
                                                   tmp_path: Path) -> None:
    assert fast_run.result.code in (0, 1), fast_run.result.text  # valid run, whatever its p95
    result = pitchey(["gate", str(slow_run.run_dir), "--baseline", str(fast_run.run_dir),
                      "--json", str(tmp_path / "gate.json"), *LOOSE, "--no-product-targets"],
                     timeout_s=60)
    assert result.code == 2, result.text
    verdict = json.loads((tmp_path / "gate.json").read_text())
    (p95,) = [c for c in verdict["comparisons"] if c["metric"] == "p95" and not c["scope"]]
    assert not p95["ok"] and p95["verdict"] == "regression"
    assert p95["current"] > p95["baseline"]
    assert p95["current_interval"][0] > p95["baseline_interval"][1]
    # (saved baseline files: tests/gate/test_gate_cli.py, over synthetic runs)


def test_exit_3_unreachable_target(targets: Targets, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{closed_port()}"
    result = pitchey(["run", str(targets.baseline_scenario), "--host", nowhere, "--duration", "4",
                      "--out", str(tmp_path / "runs"), "--gate"], timeout_s=120)
    assert result.code == 3, result.text
    assert "unreachable" in result.out + result.err


def test_exit_4_malformed_threshold_in_a_scenario(tmp_path: Path) -> None:
    require_pitchey_run()
    bad = tmp_path / "bad.yaml"
    bad.write_text(scenario_yaml("bad", ["p95 < 100", "error_rate < 1%"]))
    result = pitchey(["run", str(bad), "--out", str(tmp_path / "runs"), "--gate"], timeout_s=60)
    assert result.code == 4, result.text
    assert str(bad) in result.err and "'100' needs a time unit" in result.err
    assert "Traceback" not in result.err


def test_exit_4_unknown_metric_on_a_real_run(slow_run: GatedRun) -> None:
    result = pitchey(["gate", str(slow_run.run_dir), "--threshold", "latency < 100ms"])
    assert result.code == 4, result.text
    assert "unknown metric 'latency'" in result.err
    assert len(result.err.strip().splitlines()) == 1
