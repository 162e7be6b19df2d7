"""`pitchey alerts replay RUN_DIR` over a run directory written by the collectors' RunWriter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.replay import load_service_frame, replay
from alerts.specload import load_spec
from collectors.rundir import RunWriter
from collectors.validity import Validity
from pitchey_cli import main

START = 1_767_261_600.0
SPIKE = (120, 300)  # seconds into the run with 20% of requests failing


def write_run(root: Path, seconds: int = 900) -> Path:
    writer = RunWriter.create(root, "replay-test", {"name": "replay-test"}, "embedded")
    ok = errors = fast = 0.0
    for second in range(seconds):
        failing = SPIKE[0] <= second < SPIKE[1]
        ok += 8.0 if failing else 10.0
        errors += 2.0 if failing else 0.0
        fast = ok + errors
        t = START + second
        base = {"http_route": "/api/pitches", "http_request_method": "GET"}
        writer.add_service_samples([
            {"t": t, "target": "pitchey", "metric": "http_server_request_duration_seconds_count",
             "labels": {**base, "http_response_status_code": "200"}, "value": ok},
            {"t": t, "target": "pitchey", "metric": "http_server_request_duration_seconds_count",
             "labels": {**base, "http_response_status_code": "500"}, "value": errors},
            {"t": t, "target": "pitchey", "metric": "http_server_request_duration_seconds_bucket",
             "labels": {**base, "http_response_status_code": "200", "le": "0.1"}, "value": fast},
            {"t": t, "target": "pitchey", "metric": "pitchey_db_up", "labels": {}, "value": 1.0},
            {"t": t, "target": "pitchey", "metric": "up", "labels": {"endpoint": "/metrics"},
             "value": 1.0},
        ])
    return writer.finish(Validity.ok())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("runs"))


def test_replay_finds_when_the_error_spike_fired_and_resolved(run_dir: Path) -> None:
    spec = load_spec()
    result = replay(spec, load_service_frame(run_dir))
    assert result.evaluations == 900 and result.interval_ms == 1000
    by_kind: dict[str, dict[str, float]] = {}
    for t in result.transitions:
        by_kind.setdefault(t.kind, {}).setdefault(t.rule, t.at_ms / 1000 - START)
    rule = spec.rule("HighErrorRate")
    fired, resolved = by_kind["firing"]["HighErrorRate"], by_kind["resolved"]["HighErrorRate"]
    # The 5 m ratio crosses 5% some time into the spike, then `for` (1 m) must pass.
    assert SPIKE[0] + rule.for_ms / 1000 <= fired <= SPIKE[0] + 300 + rule.for_ms / 1000
    # The ratio falls back under 5% before the spike has left the window; then
    # keep_firing_for (2 m) holds it.
    keep = rule.keep_firing_for_ms / 1000
    assert SPIKE[1] + keep < resolved <= SPIKE[1] + 300 + keep
    assert "AvailabilityBudgetBurn1h" in by_kind["firing"]
    assert "PrimaryDatabaseUnavailable" not in by_kind["firing"]
    assert not [r for r in by_kind["firing"] if "Absent" in r]


def test_cli_prints_fired_and_resolved_lines(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "replay", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "FIRING    HighErrorRate [critical]" in out
    assert "RESOLVED  HighErrorRate [critical]" in out
    assert out.splitlines()[0].startswith("replayed 899 s of scraped series: 900 evaluations")
    assert main(["alerts", "replay", str(run_dir), "--json", "--interval", "5s"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"firing", "resolved"} == {line["kind"] for line in lines}
    assert all(line["t"] % 5 == 0 for line in lines)


def test_a_missing_or_foreign_run_directory_is_one_error_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "replay", str(tmp_path / "nope")]) == 4  # ExitCode.CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pitchey alerts: ") and "nope" in err[0]
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "manifest.json").write_text('{"format": "other"}')
    assert main(["alerts", "replay", str(tmp_path / "foreign")]) == 4  # ExitCode.CONFIG
    assert "manifest.json" in capsys.readouterr().err
    assert main(["alerts", "replay", str(tmp_path), "--interval", "soon"]) == 4  # CONFIG
    assert "not a duration" in capsys.readouterr().err
