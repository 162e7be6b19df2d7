"""`pitchey dashboard` and `pitchey capacity` as the dispatcher registers them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dashboards.cli import register

ROOT = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pitchey")
    register(top.add_subparsers(dest="command", required=True))
    return top


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


def test_registers_both_commands_with_their_defaults() -> None:
    args = parser().parse_args(["dashboard"])
    assert (args.host, args.port, args.runs) == ("127.0.0.1", 8050, Path("runs"))
    args = parser().parse_args(["capacity", "x"])
    # no what-if unless asked: the product's targets and the scenario's think time
    assert (args.users, args.think_time, args.p95_target, args.json) == (None, None, None, False)


def test_module_imports_only_the_standard_library() -> None:
    code = ("import sys, dashboards.cli; heavy = {'dash', 'pandas', 'numpy', 'scipy', 'plotly'}"
            " & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_capacity_json(demo_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["capacity", str(demo_run), "--users", "50000", "--think-time", "10",
                "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["run_id"] == demo_run.name
    # the gate's projections for the product's targets, and the what-if apart
    assert [p["kind"] for p in report["projections"]] == ["projection"] * 3
    assert report["what_if"]["inputs"]["origin"] == "what-if (your inputs)"
    assert report["what_if"]["projections"][0]["name"] == "instances for 50,000 users"
    assert len(report["steps"]) == 6
    law = report["response_time_law"]
    assert law["users"] == 50_000 and law["think_time_s"] == 10
    assert law["throughput_rps"] == pytest.approx(50_000 / (law["response_ms"] / 1000 + 10))
    usl = report["usl"]
    assert usl["sigma_ci"][0] <= usl["sigma"] <= usl["sigma_ci"][1]
    assert report["plan"]["instances"] >= 1


def test_capacity_text(demo_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["capacity", str(demo_run)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("gate: ")  # the gate's verdict line, no PASS/FAIL of its own
    assert "projections for the product targets (model, not measured" in out
    assert "  instances for 100,000 users: " in out
    assert "USL fit (95% CI): sigma = " in out
    assert "response time law N = X(R+Z): 100,000 users, Z = " in out
    assert "verdict: PASS" not in out and "verdict: FAIL" not in out


def test_capacity_on_a_run_without_steps_explains(sparse_runs: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    flat = next(p for p in sparse_runs.iterdir() if p.name.endswith("-flat"))
    assert run(["capacity", str(flat)]) == 3  # INVALID: the run cannot support an answer
    captured = capsys.readouterr()
    assert "no capacity model: a USL fit needs at least 3 distinct" in captured.out
    assert "no answer: a USL fit needs at least 3 distinct" in captured.err


@pytest.mark.parametrize("argv", [["capacity", "/nonexistent/run"],
                                  ["dashboard", "--runs", "/nonexistent/runs"]])
def test_user_errors_are_one_line_and_exit_4(argv: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("pitchey: /nonexistent/") and "\n" not in err


def test_broken_run_names_the_file(sparse_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["capacity", str(sparse_runs / "20250101T000000Z-broken")]) == 4
    assert "manifest.json: not valid JSON" in capsys.readouterr().err


def test_bad_numbers_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parser().parse_args(["capacity", "x", "--users", "-5"])
    assert info.value.code == 4
    assert "'-5' must be positive" in capsys.readouterr().err


def test_dashboard_on_a_busy_port_is_one_line(runs_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert run(["dashboard", "--runs", str(runs_dir), "--port", str(port)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pitchey: cannot listen on 127.0.0.1:{port}: ") and "\n" not in err
