"""`pitchey gate RUN_DIR ...` in-process over synthetic run directories: every exit code,
every output file, baselines saved and used, and one-line errors for bad input."""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from collectors.validity import Validity
from gate.cli import evaluate_cli, main, register
from testing.rundirs import CellSpec, RunSpec, WrittenRun, lognormal, scenario, uniform

MakeRun = Callable[[RunSpec], WrittenRun]
CELL = ("europe", "GET /api/pitches", "browser")


def _run(make_run: MakeRun, thresholds: list[object], *, median_ms: float = 10.0,
         failures: int = 0, validity: Validity | None = None, seed: int = 1) -> Path:
    extra = {} if validity is None else {"validity": validity}
    written = make_run(RunSpec(
        scenario(thresholds, warmup="1s"),
        {CELL: CellSpec(lognormal(median_ms, 0.4, 200), failures=lambda s: failures)},
        seconds=4, seed=seed, **extra))
    return written.path


def test_exit_0_pass_with_every_output(make_run: MakeRun, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(make_run, ["p95 < 100ms", "error_rate < 1%"])
    junit, out_json, markdown = tmp_path / "o/junit.xml", tmp_path / "o/g.json", tmp_path / "g.md"
    code = main([str(run), "--junit", str(junit), "--json", str(out_json),
                 "--markdown", str(markdown)])
    assert code == 0
    assert "gate: PASS (exit 0)" in capsys.readouterr().out
    verdict = json.loads(out_json.read_text())
    assert verdict["exit_code"] == 0 and verdict["format"] == "pitchey-verdict"
    # the scenario's two thresholds, and the product's error rate (its p95 < 100ms is the
    # scenario's first threshold, judged once)
    assert [(c["name"], c["source"].split(":")[0]) for c in verdict["checks"]] == [
        ("p95 < 100ms", "scenario synthetic"), ("error_rate < 1%", "scenario synthetic"),
        ("error_rate < 0.1%", "product target")]
    cases = ET.parse(junit).getroot().findall("testcase[@classname='gate.checks']")
    assert [c.get("name") for c in cases] == [c["name"] for c in verdict["checks"]]
    assert markdown.read_text().startswith("### ✅")
    # the verdict was recorded in the run's summary.json, the same as the JSON output
    assert json.loads((run / "summary.json").read_text())["verdict"] == verdict


def test_exit_1_threshold_breached(make_run: MakeRun, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(make_run, ["p95 < 100ms"], median_ms=300.0)
    assert main([str(run)]) == 1
    assert "FAIL  p95" in capsys.readouterr().out


def test_exit_2_regression_against_a_saved_baseline(make_run: MakeRun, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fast = _run(make_run, ["p95 < 1s"], median_ms=10.0, seed=1)
    saved = tmp_path / "baselines/synthetic.json"
    assert main([str(fast), "--save-baseline", str(saved)]) == 0
    assert "baseline saved" in capsys.readouterr().err
    assert json.loads(saved.read_text())["format"] == "pitchey-gate-baseline"
    slower = _run(make_run, ["p95 < 1s"], median_ms=20.0, seed=2)
    assert main([str(slower), "--baseline", str(saved)]) == 2
    # the same comparison against the baseline run directory itself
    assert main([str(slower), "--baseline", str(fast)]) == 2
    # and a margin wide enough to tolerate it
    assert main([str(slower), "--baseline", str(saved), "--margin", "300%"]) == 0


def test_save_baseline_defaults_to_baselines_dir(make_run: MakeRun, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(make_run, ["p95 < 1s"])
    monkeypatch.chdir(tmp_path)
    assert main([str(run), "--save-baseline"]) == 0
    assert (tmp_path / "baselines/synthetic.json").is_file()


def test_failing_run_is_not_saved_as_baseline(make_run: MakeRun, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(make_run, ["p95 < 1ms"])
    saved = tmp_path / "b.json"
    assert main([str(run), "--save-baseline", str(saved)]) == 1
    assert not saved.exists()
    assert "baseline not saved" in capsys.readouterr().err


def test_exit_3_invalid_run(make_run: MakeRun, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(make_run, ["p95 < 1s"], validity=Validity.invalid("generator lag p95 80 ms"))
    assert main([str(run)]) == 3
    assert "INVALID: generator lag p95 80 ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--threshold", "latency < 100ms"], "unknown metric 'latency'"),
        (["--threshold", "p95 < 100"], "needs a time unit"),
        (["--threshold", "p95{region: mars} < 1s"], "region 'mars' matches nothing"),
        (["--threshold", "p95{tag: writes} < 1s"], "tag 'writes' is not declared"),
        (["--margin", "lots"], "--margin: 'lots' is not a percentage"),
        (["--warmup", "soon"], "--warmup: 'soon' is not a duration"),
        (["--baseline", "/nonexistent/base.json"], "does not exist"),
    ],
)
def test_exit_4_configuration_errors_name_the_problem(
        make_run: MakeRun, capsys: pytest.CaptureFixture[str], extra: list[str],
        phrase: str) -> None:
    run = _run(make_run, ["p95 < 1s"])
    assert main([str(run), *extra]) == 4
    err = capsys.readouterr().err
    assert err.startswith("pitchey gate: configuration error: ")
    assert phrase in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_exit_4_malformed_threshold_in_the_scenario(make_run: MakeRun,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # the scenario loader refuses such a file, so write the manifest the way a foreign tool might
    run = _run(make_run, ["p95 < 1s"])
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["scenario"]["thresholds"] = ["p95 < 1s", "p95 << 1s"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main([str(run)]) == 4
    err = capsys.readouterr().err
    assert "thresholds[1]" in err and "'<'" in err


def test_exit_4_bad_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 4
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/manifest.json").write_text('{"format": "k6"}')
    assert main([str(tmp_path / "foreign")]) == 4
    assert "foreign file" in capsys.readouterr().err


def test_exit_4_on_a_bad_flag_not_argparse_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["some-run", "--margn", "5%"])
    assert exit_info.value.code == 4
    assert "unrecognized arguments: --margn" in capsys.readouterr().err


def test_evaluate_cli_accepts_a_foreign_namespace(make_run: MakeRun) -> None:
    """`pitchey run --gate` hands over its own args, which may lack the gate's options."""
    run = _run(make_run, ["p95 < 1ms"])
    assert evaluate_cli(run, argparse.Namespace(users=10, duration=5)) == 1


def test_register_adds_the_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="pitchey")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gate", "runs/x", "--baseline", "b.json", "--junit", "j.xml",
                              "--margin", "5%", "--threshold", "p95 < 1s"])
    assert (args.run_dir, args.baseline, args.junit, args.margin, args.thresholds) == (
        "runs/x", "b.json", "j.xml", "5%", ["p95 < 1s"])
    assert callable(args.func)
    help_text = parser._subparsers._group_actions[0].choices["gate"].format_help()  # type: ignore
    for code in range(5):
        assert f"  {code}  " in help_text


def test_overrides_replace_scenario_thresholds(make_run: MakeRun) -> None:
    run = _run(make_run, ["p95 < 1ms"], median_ms=10)
    assert main([str(run)]) == 1
    assert main([str(run), "--threshold", "p95 < 1s", "--threshold", "failures == 0"]) == 0


def test_uniform_helper_is_used_consistently(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 1s"]), {CELL: CellSpec(uniform(1, 2, 5))},
                               seconds=2))
    assert main([str(written.path)]) == 0


def test_exit_4_on_an_invalid_baseline_run(make_run: MakeRun,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    invalid = _run(make_run, ["p95 < 1s"], validity=Validity.invalid("generator saturated"))
    current = _run(make_run, ["p95 < 1s"], seed=2)
    assert main([str(current), "--baseline", str(invalid)]) == 4
    assert "that run is invalid" in capsys.readouterr().err
