"""The failover report (a pure summary of what the traffic saw), the command's error paths,
the geo serve entry point (a bad regions file, no HAProxy, a configuration HAProxy refuses),
and the shared request histogram."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pitchey.geo.failover import FailoverOptions, Observation, _Plan, main, render, summarize
from pitchey.geo.supervisor import HaproxyMissing, haproxy_binary, serve_geo
from pitchey.geo.traffic import Sample
from pitchey.metrics import DURATION_BUCKETS, RequestHistogram
from pitchey.settings import Settings
from pitchey_cli.exitcodes import ExitCode

KILL, RESTART = 10.0, 20.0


def sample(t: float, status: int | None, served_by: str | None, kind: str = "read",
           pitch_id: int | None = None) -> Sample:
    return Sample(t, t + 0.01, kind, status, served_by, None if status else "ClientError",
                  pitch_id)


def report_for(samples: list[Sample], observations: list[Observation],
               present: int, missing: list[int]) -> Any:
    plan = _Plan(victim=111, supervisor=222, killed_at=KILL, restart_requested_at=RESTART,
                 restart_method="SIGUSR1 to supervisor pid 222")
    return summarize(FailoverOptions(region="asia", duration_s=30), samples, observations,
                     plan, 0.0, 0.2, present, missing, [])


def test_a_clean_failover_passes_every_check() -> None:
    samples = [sample(t / 10, 200, "asia") for t in range(100)]            # before the kill
    samples += [sample(KILL + 0.05, 200, "us-west")]                       # retried by the edge
    samples += [sample(KILL + 0.1 + t / 10, 200, "us-west") for t in range(95)]
    samples += [sample(RESTART + 1 + t / 10, 200, "asia") for t in range(2000)]
    samples += [sample(5.0, 201, "asia", "write", 7), sample(25.0, 201, "asia", "write", 8)]
    observations = [Observation(KILL + 0.2, "down", "closed", 111),
                    Observation(RESTART + 1.5, "healthy", "closed", 333)]
    report = report_for(samples, observations, present=2, missing=[])
    assert report.failed == 0 and report.failed_pct == 0
    assert report.time_to_detect_s == pytest.approx(0.2)
    assert report.time_to_reroute_s == pytest.approx(0.05)
    assert report.served_during_outage == {"us-west": 96}
    assert report.time_to_rejoin_s == pytest.approx(1.5)
    assert report.new_pid == 333
    assert report.writes_acknowledged == 2 and report.acknowledged_ids == [7, 8]
    assert report.passed, report.checks
    text = "\n".join(render(report))
    assert "verdict    PASS" in text and "failed 0 (0.000%)  [target 0]" in text


def test_a_single_failed_request_fails_the_failover() -> None:
    samples = [sample(t / 10, 200, "asia") for t in range(100)]
    samples += [sample(KILL + 0.05, 502, None)]  # one write lost at the kill
    samples += [sample(KILL + 0.1 + t / 10, 200, "us-west") for t in range(2000)]
    report = report_for(samples, [], present=0, missing=[])
    assert report.failed == 1 and report.failed_pct < 0.1
    assert report.checks["no failed requests"] is False


def test_lost_writes_slow_reroute_and_no_rejoin_fail_their_checks() -> None:
    samples = [sample(KILL + t / 10, 502, None) for t in range(10)]  # a second of failures
    samples += [sample(KILL + 1 + t / 10, 200, "us-west") for t in range(20)]
    samples += [sample(1.0, 201, "asia", "write", 5)]
    report = report_for(samples, [], present=0, missing=[5])
    assert report.time_to_reroute_s == pytest.approx(1.0)
    assert report.checks == {
        "no failed requests": False,
        "rerouted within 2 health-check intervals": False,
        "every acknowledged write present": False,
        "region rejoined after restart": False,
    }
    assert "verdict    FAIL" in "\n".join(render(report))


def test_failover_without_an_edge_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    args = argparse.Namespace(region="asia", url=url, duration=1.0, json=False)
    assert main(args) == ExitCode.CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pitchey failover: no geo edge answers at ")


def test_failover_arguments_through_the_pitchey_command() -> None:
    result = subprocess.run([sys.executable, "-m", "pitchey_cli", "failover", "asia",
                             "--duration", "-3"], capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitCode.CONFIG
    assert "--duration: '-3' must be positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_geo_refuses_a_bad_regions_file(tmp_path: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "regions.yaml"
    bad.write_text("regions:\n  asia:\n    weight: heavy\n")
    assert serve_geo(Settings(), port=0, regions_file=str(bad)) == 4
    err = capsys.readouterr().err.strip()
    assert err == f"pitchey: {bad}:3: regions.asia.weight: must be a whole number, got 'heavy'"


def test_without_haproxy_the_message_says_how_to_install_it(tmp_path: Any) -> None:
    with pytest.raises(HaproxyMissing) as missing:
        haproxy_binary({"PATH": str(tmp_path)}, sbin=())
    assert "HAProxy is not installed" in str(missing.value)
    assert "apt-get install haproxy" in str(missing.value)
    # Debian's /usr/sbin is searched even when a user's PATH lacks it
    if os.path.exists("/usr/sbin/haproxy"):
        assert haproxy_binary({"PATH": str(tmp_path)}) == "/usr/sbin/haproxy"


def test_geo_with_a_missing_haproxy_exits_4_and_starts_nothing(tmp_path: Any) -> None:
    env = {**os.environ, "PITCHEY_HAPROXY": str(tmp_path / "no-haproxy"),
           "PITCHEY_SQLITE_PATH": str(tmp_path / "p.db")}
    result = subprocess.run([sys.executable, "-m", "pitchey_cli", "serve", "--topology", "geo",
                             "--port", "0"], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 4, result.stderr
    assert f"PITCHEY_HAPROXY={tmp_path / 'no-haproxy'} is not an executable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.db").exists()  # nothing started, not even a worker


def test_a_configuration_haproxy_refuses_starts_nothing(tmp_path: Any) -> None:
    regions = tmp_path / "regions.yaml"
    regions.write_text("edge: {threads: 1000}\n")  # valid YAML, beyond HAProxy's 64 threads
    env = {**os.environ, "PITCHEY_SQLITE_PATH": str(tmp_path / "p.db")}
    result = subprocess.run([sys.executable, "-m", "pitchey_cli", "serve", "--topology", "geo",
                             "--port", "0", "--regions", str(regions)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 4, result.stderr
    assert "HAProxy rejected the configuration generated from" in result.stderr
    assert "nbthread" in result.stderr  # HAProxy's own words
    assert not (tmp_path / "p.db").exists()


def test_the_edge_histogram_exposes_what_prometheus_client_would() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = RequestHistogram(DURATION_BUCKETS)
    ours_registry.register(ours)
    theirs = Histogram("http_server_request_duration_seconds", "Duration of HTTP server "
                       "requests.", ["http_route", "http_request_method",
                                     "http_response_status_code"],
                       buckets=DURATION_BUCKETS, registry=theirs_registry)
    for seconds in (0.001, 0.005, 0.0051, 0.1, 0.25, 3.0, 11.0):
        ours.observe("/api/pitches", "GET", 200, seconds)
        theirs.labels("/api/pitches", "GET", "200").observe(seconds)
    ours.observe("proxy", "POST", 502, 0.02)
    theirs.labels("proxy", "POST", "502").observe(0.02)

    def samples(registry: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines()
                      if line and not line.startswith("#") and "_created" not in line)

    assert samples(ours_registry) == samples(theirs_registry)



def test_a_pitch_deleted_by_someone_else_is_no_failed_request() -> None:
    # the failover's traffic reads pitches known at its start; a load test running beside it
    # may delete some: 404 is then the service's correct answer, not a failover failure
    assert Sample(0.0, 0.1, "item", 404, "asia").ok
    assert not Sample(0.0, 0.1, "read", 404, "asia").ok
    assert not Sample(0.0, 0.1, "item", 502, None).ok
