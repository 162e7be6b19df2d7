"""`pitchey dashboard` and `pitchey capacity` as the dispatcher registers them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collectors.run import load_run
from dashboards.cli import register
from gate.evaluation import evaluate_run, record_verdict, spec_from_run
from testing.rundirs import START, CellSpec, RunSpec, scenario, uniform, write_run

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
    estimate = report["estimate"]
    assert estimate["source"] == "knee" and estimate["knee"]["status"] in (
        "reached", "not_reached")


def test_capacity_text(demo_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["capacity", str(demo_run)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("gate: ")  # the gate's verdict line, no PASS/FAIL of its own
    assert "projections for the product targets (model, not measured" in out
    assert "  instances for 100,000 users: " in out
    assert "  knee: " in out and "  trusted: knee" in out
    assert "response time law X/N = 1/(R+Z): 100,000 users, Z = " in out
    assert "verdict: PASS" not in out and "verdict: FAIL" not in out


def test_capacity_on_a_run_without_steps_explains(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # eight seconds: no load step (10 s or more), and no CPU scraped: no X_max either
    short = write_run(tmp_path / "short", RunSpec(
        scenario(), {("us-east", "GET /", "x"): CellSpec(uniform(1, 5, 20))}, seconds=8))
    assert run(["capacity", str(short.path)]) == 3  # INVALID: the run cannot support an answer
    captured = capsys.readouterr()
    assert "no concurrency level long enough" in captured.out
    assert "no answer: the run held no concurrency level" in captured.err
    assert "no X_max" in captured.err
    # the only step already misses the p95 target: nothing held it
    slow = write_run(tmp_path / "slow", RunSpec(
        scenario(), {("us-east", "GET /", "x"): CellSpec(uniform(150, 300, 20))}, seconds=14))
    assert run(["capacity", str(slow.path)]) == 3
    assert "below the first step" in capsys.readouterr().err


def _breakpoint_run(root: Path) -> Path:
    medians = (10.0, 25.0, 50.0, 150.0)
    events = [(START + 10 * i + 9.5, "step", {"index": i, "rate": r, "start": START + 10 * i + 2,
                                               "end": START + 10 * i + 10})
              for i, r in enumerate((20, 40, 80, 160))]
    cell = CellSpec(lambda s, rng: rng.lognormal(np.log(medians[min(s // 10, 3)]), 0.3,
                                                 10 + 3 * s))
    written = write_run(root, RunSpec(scenario(think_time="2s", gate={"product_targets": False}),
                                      {("us-east", "GET /", "x"): cell}, seconds=40,
                                      events=events))
    run_ = load_run(written.path)
    record_verdict(written.path, evaluate_run(run_, spec_from_run(run_)))
    return written.path


def test_capacity_of_a_breakpoint_run_prints_the_recorded_projections(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _breakpoint_run(tmp_path)
    recorded = json.loads((path / "summary.json").read_text())["verdict"]["projections"]
    assert run(["capacity", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["projections"] == recorded
    (instances,) = [p for p in recorded if p["unit"] == "instances"]
    assert report["plan"]["instances"] == instances["value"]
    assert report["plan"]["instances_ci"] == [instances["low"], instances["high"]]
    assert report["estimate"]["knee"]["status"] == "reached"
    assert [s["rate"] for s in report["steps"]] == [20, 40, 80, 160]
    assert run(["capacity", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"  {instances['name']}: {instances['text']}" in out
    assert "  knee: " in out and "interpolated between 80 req/s offered" in out


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


def _walk(node: object) -> list[object]:
    children = getattr(node, "children", None)
    kids = children if isinstance(children, list) else [] if children is None else [children]
    return [node, *(n for child in kids for n in _walk(child))]


def _text(node: object) -> str:
    return " ".join(n for n in _walk(node) if isinstance(n, str))


def test_the_capacity_page_shows_measured_beside_projected(tmp_path: Path) -> None:
    from dashboards.analysis import Settings, capacity_for, cost_for
    from dashboards.data import build_view
    from dashboards.figures import capacity_figure
    from dashboards.pages import capacity_result, fit_table

    view = build_view(load_run(_breakpoint_run(tmp_path)))
    settings = Settings()
    result = capacity_for(view, settings)
    side = capacity_result(result, settings, view, cost_for(view, settings))
    parts = {getattr(n, "id", None): n for n in _walk(side)}
    measured, projected = parts["cap-measured"], parts["cap-projected"]
    assert side.children == [measured, projected]  # side by side, measured first
    rows = [n for n in _walk(parts["cap-steps"]) if type(n).__name__ == "Tr"]
    assert len(rows) == 1 + 4  # the header and one row per step
    assert "yes" in _text(rows[3]) and "no" in _text(rows[4])  # the last step missed p95
    assert result.estimate is not None and result.estimate.knee is not None
    assert result.estimate.knee.text in _text(measured)
    recorded = json.loads((Path(view.path) / "summary.json").read_text())["verdict"]
    for projection in recorded["projections"]:
        assert projection["text"] in _text(parts["gate-projections"])
    assert "Response time law" in _text(parts["cap-result"])
    assert result.sizing is not None and f"{result.sizing.instances:,}" in _text(
        parts["cap-result"])
    assert "trusted" in _text(fit_table(result))
    figure = capacity_figure(result, settings.p95_target_ms)
    assert [t["name"] for t in figure["data"]][:2] == ["measured throughput", "measured p95"]
    assert any(t["name"].startswith("knee") for t in figure["data"])
    assert figure["layout"]["shapes"][0]["y0"] == settings.p95_target_ms
