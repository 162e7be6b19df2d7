"""Write a run directory with RunWriter, read it back with load_run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collectors import Histogram, RunWriter, Validity, load_run, summarize
from testing.rundirs import KEYS, T0, fill, new_writer


def _expected(values_ms: np.ndarray, q: float) -> float:
    return Histogram.from_values_ms(values_ms).quantile(q)


def test_round_trip_of_every_file(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    recorded = fill(writer, 12)
    writer.add_event(T0 + 2, "stage", name="hold", users=12)
    path = writer.finish(Validity.ok())

    run = load_run(path)
    assert run.complete and run.validity == Validity.ok()
    assert path.name.startswith("20231114T221320Z-unit")
    assert run.manifest["format"] == "pitchey-run" and run.manifest["format_version"] == 1
    assert "locust" in run.manifest["packages"] and run.manifest["machine"]["cpu_count"]
    assert len(run.stats) == 12 * len(KEYS) and run.stats["t"].is_monotonic_increasing
    assert set(run.stats["region"]) == {"us-east", "eu-west"}
    assert int(run.stats["requests"].sum()) == recorded.select().size
    assert list(run.load["users"]) == [10 + s for s in range(12)]
    assert len(run.generator) == 12 and len(run.service) == 12
    assert run.events == [{"t": T0 + 2, "type": "stage", "name": "hold", "users": 12}]
    assert not list(path.glob("timeseries/*.parts"))  # parts merged away


def test_percentiles_come_from_merged_histograms(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    recorded = fill(writer, 20, seed=3)
    run = load_run(writer.finish(Validity.ok()))

    quantiles = (0.5, 0.95, 0.99, 0.999)
    whole = run.percentiles(quantiles)
    assert whole == {q: _expected(recorded.select(), q) for q in quantiles}
    scoped = run.percentiles(quantiles, region="eu-west", user_class="investor")
    expected = recorded.select(region="eu-west", user_class="investor")
    assert scoped == {q: _expected(expected, q) for q in quantiles}
    window = run.percentiles([0.95], endpoint="GET /api/pitches", start=T0 + 5, end=T0 + 15)
    in_window = recorded.select(endpoint="GET /api/pitches", seconds=range(5, 15))
    assert window == {0.95: _expected(in_window, 0.95)}
    several = run.percentiles([0.95], endpoint={"GET /api/pitches", "POST /api/pitches"})
    both = np.concatenate([recorded.select(endpoint="GET /api/pitches"),
                           recorded.select(endpoint="POST /api/pitches")])
    assert several == {0.95: _expected(both, 0.95)}
    # averaging the per-second p95 column gives a different (wrong) figure
    assert run.stats["p95_ms"].mean() != pytest.approx(whole[0.95], rel=1e-3)


def test_histograms_by_key_and_series(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    recorded = fill(writer, 6, seed=5)
    run = load_run(writer.finish(Validity.ok()))

    by_key = run.histograms_by_key(start=T0 + 2, end=T0 + 6)
    assert set(by_key) == {(*key, "service") for key in KEYS}
    region, endpoint, user_class = KEYS[0]
    assert by_key[(*KEYS[0], "service")] == Histogram.from_values_ms(
        recorded.select(region, endpoint, user_class, seconds=range(2, 6)))
    series = run.percentile_series([0.5, 0.99], by=["region"])
    assert list(series.columns) == ["t", "interval_s", "region", "requests", "p50_ms", "p99_ms"]
    row = series[(series["t"] == T0 + 3) & (series["region"] == "eu-west")].iloc[0]
    assert row["p99_ms"] == _expected(recorded.select(region="eu-west", seconds=[3]), 0.99)
    assert row["requests"] == recorded.select(region="eu-west", seconds=[3]).size


def test_explicit_whole_histogram_wins(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    fill(writer, 3)
    region, endpoint, user_class = KEYS[1]
    explicit = Histogram.from_values_ms([1.0, 2.0, 3.0])
    writer.set_whole_histogram(region, endpoint, user_class, "service", explicit.to_hdr())
    run = load_run(writer.finish(Validity.ok()))
    assert run.histogram(region, endpoint, user_class) == explicit


def test_summary_matches_recorded_values(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    recorded = fill(writer, 10, seed=9, corrected=True)
    invalid = Validity.invalid("generator CPU above 90%")
    path = writer.finish(invalid, summary_extra={"open_model": {"late_starts": 4}})
    summary = json.loads((path / "summary.json").read_text())

    requests = recorded.select().size
    failures = sum(f for per in recorded.failures.values() for f in per.values())
    assert summary["requests"] == requests and summary["failures"] == failures
    assert summary["error_rate"] == pytest.approx(failures / requests)
    assert summary["duration_s"] == 10.0 and summary["rps"] == pytest.approx(requests / 10)
    assert summary["users_max"] == 19
    assert summary["latency_ms"]["p99.9"] == _expected(recorded.select(), 0.999)
    assert summary["by_region"]["eu-west"]["latency_ms"]["p95"] == _expected(
        recorded.select(region="eu-west"), 0.95)
    assert set(summary["by_endpoint"]) == {key[1] for key in KEYS}
    assert summary["generator"]["cpu_percent_p95"] == pytest.approx(
        float(np.percentile(20.0 + np.arange(10), 95)))
    assert summary["open_model"]["late_starts"] == 4
    assert summary["open_model"]["corrected_latency_ms"]["p50"] == _expected(
        recorded.select() + 5.0, 0.5)
    assert summary["validity"] == {"valid": False, "reasons": ["generator CPU above 90%"]}
    assert load_run(path).validity == invalid
    windowed = summarize(load_run(path), start=T0 + 4, end=T0 + 10)
    assert windowed["requests"] == recorded.select(seconds=range(4, 10)).size
    assert windowed["latency_ms"]["p95"] == _expected(recorded.select(seconds=range(4, 10)), 0.95)


def test_unfinished_run_is_readable_and_incomplete(tmp_path: Path) -> None:
    clock = iter(float(n) for n in range(10_000))
    writer = new_writer(tmp_path, clock=lambda: next(clock), flush_interval_s=50.0)
    recorded = fill(writer, 8)
    writer.flush()
    fill(writer, 1, seed=99)  # buffered, never flushed: lost like in a crash
    with (writer.path / "histograms/intervals.jsonl").open("a") as handle:
        handle.write('{"t": 1, "interval_s": 1, "regi')  # torn last line of a killed writer

    run = load_run(writer.path)
    assert run.status == "running" and not run.complete
    assert not run.validity.valid and "incomplete" in run.validity.reasons[0]
    assert run.summary is None
    assert int(run.stats["requests"].sum()) == recorded.select().size
    assert run.percentiles([0.95]) == {0.95: _expected(recorded.select(), 0.95)}
    assert summarize(run)["requests"] == recorded.select().size


def test_flushes_on_the_injected_clock(tmp_path: Path) -> None:
    now = [0.0]
    writer = new_writer(tmp_path, clock=lambda: now[0], flush_interval_s=5.0)
    writer.add_load(T0, 1, 1.0, 0.0)
    assert load_run(writer.path).load.empty
    now[0] = 5.0
    writer.add_load(T0 + 1, 2, 1.0, 0.0)
    assert list(load_run(writer.path).load["users"]) == [1, 2]


def test_exception_in_context_marks_run_aborted(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), new_writer(tmp_path) as writer:
        fill(writer, 2)
        raise RuntimeError("master lost its workers")
    run = load_run(writer.path)
    assert run.status == "aborted" and len(run.load) == 2
    assert run.validity.reasons == ("aborted: RuntimeError: master lost its workers",)
    with pytest.raises(RuntimeError, match="finished"):
        writer.add_load(T0, 1, 1.0, 0.0)


def test_bad_rows_are_refused_with_the_reason(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    with pytest.raises(ValueError, match="lacks 'failures'"):
        writer.add_stats([{"t": T0, "region": "r", "endpoint": "e", "user_class": "u",
                           "requests": 1}])
    with pytest.raises(ValueError, match="not base64"):
        writer.add_histogram_interval(T0, 1.0, "r", "e", "u", "service", "garbage!")
    with pytest.raises(ValueError, match="finite"):
        writer.add_event(float("nan"), "stage")


def test_run_ids_do_not_collide(tmp_path: Path) -> None:
    first, second = new_writer(tmp_path, "same"), new_writer(tmp_path, "same")
    assert first.path != second.path and second.path.name.endswith("-same-2")
    weird = RunWriter.create(tmp_path, "geo 100k/../x", {}, "embedded")
    assert weird.path.parent == tmp_path and "/" not in weird.path.name


def test_histograms_coarsened_to_wider_windows(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, histogram_interval_s=5.0)
    recorded = fill(writer, 12, seed=4)
    run = load_run(writer.finish(Validity.ok()))
    lines = [json.loads(line) for line in
             (run.path / "histograms/intervals.jsonl").read_text().splitlines()]
    assert {(item["t"] - T0, item["interval_s"]) for item in lines} == {
        (0.0, 5.0), (5.0, 5.0), (10.0, 5.0)}
    assert len(lines) == 3 * len(KEYS)
    assert run.percentiles([0.99], start=T0, end=T0 + 10) == {
        0.99: _expected(recorded.select(seconds=range(10)), 0.99)}
    assert run.histogram() == Histogram.from_values_ms(recorded.select())
    with pytest.raises(ValueError, match="positive"):
        new_writer(tmp_path, histogram_interval_s=0.0)


def test_decoded_copy_of_intervals_agrees_and_is_optional(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    fill(writer, 8, seed=6)
    path = writer.finish(Validity.ok())
    copies = [path / "histograms" / name
              for name in ("intervals.index.parquet", "intervals.buckets.parquet")]
    assert all(copy.exists() for copy in copies)

    def figures() -> tuple[object, ...]:
        run = load_run(path)
        return (run.percentiles([0.5, 0.99], region="us-east", start=T0 + 2, end=T0 + 6),
                run.histograms_by_key(start=T0 + 1),
                run.percentile_series([0.95], by=["endpoint"]).to_dict())

    with_copy = figures()
    intervals = path / "histograms" / "intervals.jsonl"
    original = intervals.read_bytes()
    intervals.write_bytes(b" " * (len(original) - 1) + b"\n")  # same size: the copy answers
    assert figures() == with_copy
    intervals.write_bytes(original)
    copies[1].write_bytes(b"not parquet")  # unreadable copy: decoded from the JSON lines
    assert figures() == with_copy
    for copy in copies:
        copy.unlink()
    assert figures() == with_copy


# --- durations from the load's span; zero rows --------------------------------------------------


def test_duration_and_rate_come_from_the_load_span_not_the_rows(tmp_path: Path) -> None:
    """Rows for seconds 0..11 (12 rows) of a load that ran from T0 + 0.6 to T0 + 11.1: 10.5 s,
    and the rate is the requests over that, whatever the number of rows."""
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    recorded = fill(writer, 12)
    writer.add_event(T0 + 11.1, "load_span", start=T0 + 0.6, end=T0 + 11.1, duration_s=10.5,
                     cut_requests=3)
    run = load_run(writer.finish(Validity.ok()))
    summary = run.summary
    assert summary["duration_s"] == pytest.approx(10.5)
    assert summary["span"] == {"start": T0 + 0.6, "end": T0 + 11.1}
    assert summary["requests"] == recorded.select().size
    assert summary["rps"] == pytest.approx(recorded.select().size / 10.5)
    assert summary["cut_requests"] == 3
    region = summary["by_region"]["us-east"]
    assert region["rps"] == pytest.approx(region["requests"] / 10.5)
    # a window after a warm-up: from its start to the end of the load
    windowed = summarize(run, start=T0 + 4)
    assert windowed["duration_s"] == pytest.approx(7.1)
    assert windowed["rps"] == pytest.approx(windowed["requests"] / 7.1)
    assert summarize(run, start=T0 + 4, end=T0 + 6)["duration_s"] == 2.0


def test_without_a_load_span_the_rows_span_is_the_duration(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    fill(writer, 12)
    summary = load_run(writer.finish(Validity.ok())).summary
    assert summary["duration_s"] == 12.0
    assert "cut_requests" not in summary and "span" not in summary


def test_a_second_without_requests_is_a_row_of_zeros(tmp_path: Path) -> None:
    """What the ingest writes for a scope that completed nothing in a second: zero counts,
    no percentile (NaN), read back as such; counts and rates are unchanged by it."""
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    fill(writer, 3)
    nan = float("nan")
    writer.add_stats([{"t": T0 + 3, "region": r, "endpoint": e, "user_class": u,
                       "requests": 0, "failures": 0, "p50_ms": nan, "p95_ms": nan,
                       "p99_ms": nan, "max_ms": nan} for r, e, u in KEYS])
    writer.add_load(T0 + 3, 13, 0.0, 0.0)
    run = load_run(writer.finish(Validity.ok()))
    zero = run.stats[run.stats["t"] == T0 + 3]
    assert len(zero) == len(KEYS) and int(zero["requests"].sum()) == 0
    assert zero["p95_ms"].isna().all()
    assert list(run.load["rps"])[-1] == 0.0
    assert run.summary["duration_s"] == 4.0
    assert run.summary["requests"] == int(run.stats["requests"].sum())
