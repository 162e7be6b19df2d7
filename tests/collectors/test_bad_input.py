"""A truncated or foreign run directory is a RunDirError naming the file and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors import RunDirError, Validity, load_run
from testing.rundirs import fill, new_writer


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    writer = new_writer(tmp_path)
    fill(writer, 4)
    return writer.finish(Validity.ok())


def _error(path: Path) -> RunDirError:
    with pytest.raises(RunDirError) as caught:
        run = load_run(path)
        run.events  # noqa: B018 - lazily read parts are checked on use
        run.percentiles([0.5], start=0.0)
        run.stats  # noqa: B018
    return caught.value


def _edit_manifest(run_dir: Path, **changes: object) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(changes)
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def test_not_a_run_directory(tmp_path: Path) -> None:
    error = _error(tmp_path)
    assert error.path == tmp_path / "manifest.json" and "not a run directory" in str(error)
    assert "does not exist" in str(_error(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    assert "not a directory" in str(_error(tmp_path / "file"))


def test_foreign_format(run_dir: Path) -> None:
    _edit_manifest(run_dir, format="k6-summary")
    error = _error(run_dir)
    assert error.path.name == "manifest.json" and "foreign file" in error.reason


def test_newer_format_version(run_dir: Path) -> None:
    _edit_manifest(run_dir, format_version=2)
    assert "format_version 2 is not supported" in _error(run_dir).reason


def test_manifest_not_json(run_dir: Path) -> None:
    text = (run_dir / "manifest.json").read_text()
    (run_dir / "manifest.json").write_text(text[: len(text) // 2])
    error = _error(run_dir)
    assert error.path.name == "manifest.json" and "not valid JSON (line" in error.reason


def test_manifest_field_of_wrong_type(run_dir: Path) -> None:
    _edit_manifest(run_dir, validity={"valid": "yes"})
    assert "validity.valid" in _error(run_dir).reason


def test_truncated_parquet(run_dir: Path) -> None:
    stats = run_dir / "timeseries" / "stats.parquet"
    stats.write_bytes(stats.read_bytes()[:200])
    error = _error(run_dir)
    assert error.path == stats and "not a readable Parquet file" in error.reason


def test_parquet_of_another_table(run_dir: Path) -> None:
    timeseries = run_dir / "timeseries"
    (timeseries / "load.parquet").write_bytes((timeseries / "generator.parquet").read_bytes())
    error = _error(run_dir)
    assert error.path.name == "load.parquet" and "lacks column(s) users, rps" in error.reason


def test_missing_table_of_a_complete_run(run_dir: Path) -> None:
    (run_dir / "timeseries" / "service.parquet").unlink()
    error = _error(run_dir)
    assert error.path.name == "service.parquet" and "missing" in error.reason


def test_missing_summary_of_a_complete_run(run_dir: Path) -> None:
    (run_dir / "summary.json").unlink()
    assert _error(run_dir).path.name == "summary.json"


def test_bad_histogram_line_has_its_number(run_dir: Path) -> None:
    intervals = run_dir / "histograms" / "intervals.jsonl"
    lines = intervals.read_text().splitlines()
    item = json.loads(lines[6])
    item["hist"] = item["hist"][:-12]
    lines[6] = json.dumps(item)
    intervals.write_text("\n".join(lines) + "\n")
    error = _error(run_dir)
    assert (error.path, error.line) == (intervals, 7)
    assert "bad histogram: truncated" in str(error) and str(error).startswith(f"{intervals}:7:")


def test_histogram_line_missing_a_field(run_dir: Path) -> None:
    whole = run_dir / "histograms" / "whole.jsonl"
    lines = whole.read_text().splitlines()
    lines[1] = json.dumps({k: v for k, v in json.loads(lines[1]).items() if k != "kind"})
    whole.write_text("\n".join(lines) + "\n")
    error = _error(run_dir)
    assert (error.path, error.line) == (whole, 2) and "lacks kind" in error.reason


def test_torn_line_in_a_complete_run_is_an_error(run_dir: Path) -> None:
    events = run_dir / "events.jsonl"
    events.write_text('{"t": 1.0, "type": "stage"}\n{"t": 2.0, "ty')
    error = _error(run_dir)
    assert (error.path, error.line) == (events, 2) and "not valid JSON" in error.reason
