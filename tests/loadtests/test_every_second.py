"""Every second of the load is a row (zeros included), durations come from the load's span,
and requests in flight at the stop are counted as cut: the pure pieces, and the master's
stream through the ingest into a real run directory (no processes)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from collectors import load_run
from collectors.report_figures import every_second, load_figure
from collectors.rundir import RunWriter
from collectors.validity import Validity
from loadtests.console import summary_text
from loadtests.ingest import StreamIngest, zero_stats_rows
from loadtests.master import MasterBook
from loadtests.recording import WorkerRecorder
from loadtests.runtime import WorkerRuntime, generator_rows
from loadtests.selfcheck import Limits
from loadtests.stream import StreamReader, StreamWriter

T0 = 1_800_000_000


def test_a_sampler_held_up_leaves_no_second_without_a_generator_row() -> None:
    assert generator_rows(None, 10, 30.0, 2.0) == [{"t": 10.0, "cpu_percent": 30.0,
                                                    "lag_ms": 2.0}]
    # the event loop stalled through seconds 11 and 12: the sample taken in 13 covers them
    assert [r["t"] for r in generator_rows(10, 13, 55.0, 2400.0)] == [11.0, 12.0, 13.0]
    assert {r["lag_ms"] for r in generator_rows(10, 13, 55.0, 2400.0)} == {2400.0}
    assert generator_rows(13, 13, 20.0, 1.0) == []  # a second sampled twice: one row


def test_the_worker_runtime_samples_every_second_once() -> None:
    now = [T0 + 0.2]
    runtime = WorkerRuntime("us-east", clock=lambda: now[0])
    for moment in (T0 + 0.2, T0 + 1.2, T0 + 4.1, T0 + 4.3, T0 + 5.2):
        now[0] = moment
        runtime.sample_generator(20.0)
    rows = runtime.report()["gen"]
    assert [r["t"] - T0 for r in rows] == [0, 1, 2, 3, 4, 5]


def test_the_worker_reports_the_requests_it_began_and_did_not_complete() -> None:
    runtime = WorkerRuntime("us-east", clock=lambda: T0 + 0.5)
    runtime.requests_started += 5  # what PortalUser.context() counts as requests begin
    for _ in range(3):
        runtime.on_request("GET", "/x", 12.0, context={"user_class": "browser"})
    report = runtime.report(final=True)
    assert (report["requests_started"], report["requests_completed"]) == (5, 3)
    assert report["in_flight"] == runtime.in_flight == 2


def test_zero_stats_rows_name_every_silent_scope() -> None:
    rows = zero_stats_rows(5.0, {("asia", "GET /x", "browser"), ("us-east", "GET /x", "b")})
    assert [(r["region"], r["requests"], r["failures"]) for r in rows] == [
        ("asia", 0, 0), ("us-east", 0, 0)]
    assert all(math.isnan(r["p95_ms"]) for r in rows)


def test_old_runs_with_missing_seconds_plot_zeros_not_a_line_across() -> None:
    load = pd.DataFrame({"t": [10.0, 11.0, 14.0, 15.0], "users": [5, 6, 6, 7],
                         "rps": [20.0, 21.0, 19.0, 20.0], "failures_per_s": [0.0] * 4})
    filled = every_second(load)
    assert list(filled["t"]) == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert list(filled["rps"]) == [20.0, 21.0, 0.0, 0.0, 19.0, 20.0]
    assert list(filled["users"]) == [5, 6, 6, 6, 6, 7]
    assert every_second(filled).equals(filled)  # a run with every second: as it is


def _report(recorder: WorkerRecorder, before: float | None, in_flight: int) -> dict[str, object]:
    report = recorder.drain(before)
    report.update(region=recorder.region, unreachable=0, lag=[], gen=[], in_flight=in_flight)
    return report


@pytest.fixture
def stalled_run(tmp_path: Path) -> Path:
    """Two workers, 10 seconds of load from T0 + 0.5 to T0 + 10.3 (the users stopped then);
    nothing completes in seconds 4 and 5 (a stall) nor 9 and 10 (requests held to the end:
    3 + 2 of them were in flight at the stop)."""
    stream_path = tmp_path / "stream.jsonl"
    book = MasterBook(StreamWriter(stream_path), Limits())
    recorders = {"w1": WorkerRecorder("us-east"), "w2": WorkerRecorder("asia")}
    for worker, recorder in recorders.items():
        book.hello(worker, recorder.region, now=T0)
    book.start(T0 + 0.5)
    book.stream.write("event", t=T0 + 0.5, type="stage", stage="1:hold", users=4)
    for recorder in recorders.values():
        for second in (0, 1, 2, 3, 6, 7, 8):
            for i in range(10):
                endpoint = "GET /a" if i % 2 else "GET /b"
                recorder.record(T0 + second + 0.5 + i / 100, endpoint, "browser", 8.0, False)
    for worker, recorder in recorders.items():
        book.report(worker, _report(recorder, T0 + 7, in_flight=1), now=T0 + 7)
    book.tick(T0 + 7.1, users=4, elapsed_s=6.6, planned_s=10)
    book.tick(T0 + 10.4, users=4, elapsed_s=9.9, planned_s=10, load_end=T0 + 10.3)
    for (worker, recorder), cut in zip(recorders.items(), (3, 2), strict=True):
        book.report(worker, _report(recorder, None, in_flight=cut), now=T0 + 12)
    book.finish(T0 + 12.5, "completed")
    book.stream.close()

    writer = RunWriter.create(tmp_path / "runs", "unit", {"name": "unit"}, "embedded")
    ingest = StreamIngest(writer)
    ingest.apply(StreamReader(stream_path).read())
    assert ingest.final is not None and ingest.final["cut_requests"] == 5
    assert ingest.final["span"] == {"start": T0 + 0.5, "end": T0 + 10.3}
    return writer.finish(Validity.ok(), summary_extra={"ended": "completed"})


def test_every_second_of_the_load_has_a_row_in_every_series(stalled_run: Path) -> None:
    run = load_run(stalled_run)
    load = run.load
    assert list(load["t"] - T0) == list(range(11))  # from the start's second to the end's
    zero = {4, 5, 9, 10}
    assert [int(t - T0) for t, rps in zip(load["t"], load["rps"], strict=True)
            if rps == 0] == sorted(zero)
    stats = run.stats
    scopes = stats.groupby(["region", "endpoint"], observed=True)
    assert len(scopes) == 4
    for _scope, rows in scopes:
        assert list(rows["t"] - T0) == list(range(11))  # each scope: every second a row
        silent = rows[rows["requests"] == 0]
        assert set((silent["t"] - T0).astype(int)) == zero
        assert silent["p95_ms"].isna().all()
    assert int(stats["requests"].sum()) == 140
    # the report's requests/s line drops to 0 in the stall
    figure = load_figure(run, float(load["t"].min()))
    rps_trace = next(trace for trace in figure.data if trace.name == "requests/s")
    assert min(rps_trace.y) == 0.0


def test_duration_rate_and_cut_requests_come_from_the_span(stalled_run: Path) -> None:
    run = load_run(stalled_run)
    summary = run.summary
    assert summary["duration_s"] == pytest.approx(9.8)
    assert summary["rps"] == pytest.approx(140 / 9.8)
    assert summary["cut_requests"] == 5
    text = summary_text(scenario_name="unit", run_dir=None, summary=summary, final=None)
    first = text.splitlines()[0]
    assert first == ("== unit: 140 requests in 10s (whole run) (14.3 req/s), 0 failures "
                     "(0.00%), 5 cut (in flight when the load stopped)")
    span = run.events_of("load_span")
    assert len(span) == 1 and span[0]["t"] == T0 + 10.3 and span[0]["cut_requests"] == 5
