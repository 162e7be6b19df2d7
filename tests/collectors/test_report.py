"""`pitchey report`: one self-contained HTML file, checked in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from collectors import Validity
from collectors.recorded_verdict import NO_VERDICT
from testing.rundirs import fill, new_writer
from tests.dashboards.verdicts import judge, report_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _pitchey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pitchey_cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    writer = new_writer(root)
    fill(writer, 15, corrected=True)
    writer.add_event(1_700_000_003.0, "stage", name="hold <b>", users=12)
    run_dir = writer.finish(Validity.invalid("generator lag p95 above 50 ms"))
    judge(run_dir)  # the verdict `pitchey run` records at the end of a run
    out = root / "out" / "report.html"
    result = _pitchey("report", str(run_dir), "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    return run_dir, out


def test_report_holds_the_runs_figures(report: tuple[Path, Path]) -> None:
    run_dir, out = report
    page = out.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run_dir.name in page and "Invalid run: generator lag p95 above 50 ms" in page
    assert "INVALID run:" not in page  # with a verdict, only the verdict says it is invalid
    assert "p95 (product target &lt; 100 ms)" in page and "class='bad'" not in page
    assert f"{summary['latency_ms']['p95']:,.3f}".rstrip("0").rstrip(".") in page
    for endpoint in summary["by_endpoint"]:
        assert f"<td>{endpoint}</td>" in page
    assert "hold &lt;b&gt;" in page and "hold <b>" not in page  # escaped


def test_report_opens_with_the_recorded_verdict(report: tuple[Path, Path]) -> None:
    run_dir, out = report
    page = out.read_text()
    verdict = json.loads((run_dir / "summary.json").read_text())["verdict"]
    parsed = report_rows(page, "check")
    assert verdict["status"] == "invalid"  # judge() saw the run's own validity
    assert parsed.by_id["verdict-status"] == verdict["headline"] == "INVALID"
    assert parsed.by_id["verdict-line"] == verdict["line"]
    assert "generator lag p95 above 50 ms" in parsed.by_id["verdict-validity"]
    assert parsed.rows == {
        f"{c['name']} {c['scope_label']}".strip(): [
            c["name"], c["scope_label"], c["measured_text"], c["limit_text"],
            "pass" if c["ok"] else "FAIL", f"{c['samples']:,}",
            c["source"] + (f" ({c['note']})" if c["note"] else "")]
        for c in verdict["checks"]}
    projections = report_rows(page, "projection")
    assert {name: cells[1] for name, cells in projections.rows.items()} == {
        p["name"]: p["text"] if p["available"] else f"not available: {p['reason']}"
        for p in verdict["projections"]}
    assert "Projections (model, not measured)" in page
    assert page.index("id=verdict-status") < page.index("Key figures") < page.index("By region")
    assert f"{verdict['window']['duration_s']:.3g} s judged" in parsed.by_id["verdict-window"]


def test_report_is_self_contained(report: tuple[Path, Path]) -> None:
    page = report[1].read_text()
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inlined, no CDN
    assert page.count("Plotly.newPlot") >= 5


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium is not installed")
def test_report_renders_in_chromium_without_errors(report: tuple[Path, Path]) -> None:
    page = report[1]
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count('class="main-svg"') >= 5  # plotly drew its figures
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Error" in line or "Uncaught" in line], console


def test_default_output_and_bad_input(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    fill(writer, 2)
    run_dir = writer.finish(Validity.ok())
    assert _pitchey("report", str(run_dir)).returncode == 0
    assert (run_dir / "report.html").stat().st_size > 100_000
    parsed = report_rows((run_dir / "report.html").read_text(), "check")
    assert parsed.by_id["verdict-status"] == "no verdict recorded"
    assert parsed.by_id["verdict-line"] == NO_VERDICT and not parsed.rows
    assert "the run recorded itself as <span class=ok>valid</span>" in (
        run_dir / "report.html").read_text()

    result = _pitchey("report", str(tmp_path / "missing"), "--html", str(tmp_path / "x.html"))
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"pitchey report: {tmp_path / 'missing'}: does not exist"
    bad_step = _pitchey("report", str(run_dir), "--prometheus-step", "-1")
    assert bad_step.returncode == 4 and "must be positive" in bad_step.stderr


def test_cli_module_imports_only_the_standard_library() -> None:
    code = ("import sys, collectors.cli, collectors.tracecontext; "
            "heavy = {'pandas', 'pyarrow', 'numpy', 'plotly', 'locust', 'gevent'} & "
            "set(sys.modules); print(sorted(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
