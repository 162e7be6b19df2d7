"""Master book -> stream file -> ingest -> RunWriter -> collectors.load_run, without processes."""

from __future__ import annotations

import random
from pathlib import Path

from collectors import load_run
from collectors.hdr import Histogram
from collectors.rundir import RunWriter
from collectors.validity import Validity
from loadtests.ingest import StreamIngest
from loadtests.master import MasterBook
from loadtests.recording import WorkerRecorder, us
from loadtests.selfcheck import Limits
from loadtests.stream import StreamReader, StreamWriter, request_stop, stop_requested

T0 = 1_800_000_000


def _worker_report(recorder: WorkerRecorder, before: float | None, cpu: float) -> dict:
    report = recorder.drain(before)
    report.update(region=recorder.region, unreachable=0, lag=[[float(T0), [1.0, 2.0, 1.5]]],
                  gen=[{"t": float(T0), "cpu_percent": cpu, "lag_ms": 2.0}])
    return report


def test_a_run_flows_from_worker_reports_into_a_readable_run_directory(tmp_path: Path) -> None:
    rng = random.Random(3)
    stream_path = tmp_path / "stream.jsonl"
    book = MasterBook(StreamWriter(stream_path), Limits())
    book.start(T0)
    recorders = {"w-east": WorkerRecorder("us-east"), "w-asia": WorkerRecorder("asia")}
    truth: dict[str, list[int]] = {"us-east": [], "asia": []}
    for worker, recorder in recorders.items():
        book.hello(worker, recorder.region, now=T0)
        for i in range(600):
            ms = rng.lognormvariate(3, 0.6)
            recorder.record(T0 + i / 100, f"GET /api/{'pitches' if i % 3 else 'messages'}",
                            "investor" if i % 2 else "browser", ms, failed=i % 50 == 0)
            truth[recorder.region].append(us(ms))
    book.stream.write("event", t=T0, type="stage", stage="1:ramp", users=10)
    for worker, recorder in recorders.items():
        book.report(worker, _worker_report(recorder, T0 + 4, cpu=20.0), now=T0 + 4)
    book.tick(T0 + 4, users=10, elapsed_s=4, planned_s=6)
    for worker, recorder in recorders.items():
        book.report(worker, _worker_report(recorder, None, cpu=25.0), now=T0 + 7)
    book.finish(T0 + 7, "completed")
    book.stream.close()

    writer = RunWriter.create(tmp_path / "runs", "unit", {"name": "unit"}, "embedded")
    ingest = StreamIngest(writer)
    reader = StreamReader(stream_path)
    ingest.apply(reader.read())
    assert ingest.ended == "completed" and ingest.final is not None
    assert ingest.final["validity"] == {"valid": True, "reasons": []}
    assert ingest.progress["requests"] == 800  # seconds 0-3, written at the tick
    run_dir = writer.finish(Validity(True, ()))

    run = load_run(run_dir)
    every = Histogram.from_values_us(truth["us-east"] + truth["asia"])
    assert run.percentiles() == {q: every.quantile(q) for q in run.percentiles()}
    stats = run.stats
    assert int(stats["requests"].sum()) == 1200
    assert int(stats["failures"].sum()) == 24
    assert set(stats["region"].astype(str)) == {"us-east", "asia"}
    # the load ran from T0 to T0 + 7 (the finish): seconds 0-5 completed requests, second 6
    # none, and it has a row too (zeros)
    assert list(run.load["t"]) == [T0 + i for i in range(7)]
    assert list(run.load["rps"])[-1] == 0.0
    assert set(run.generator["worker"].astype(str)) == {"w-east", "w-asia"}


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    reader = StreamReader(path)
    assert reader.read() == []
    path.write_text('{"k": "load", "t": 1}\n{"k": "lo')
    assert reader.read() == [{"k": "load", "t": 1}]
    with path.open("a") as handle:
        handle.write('ad", "t": 2}\n')
    assert reader.read() == [{"k": "load", "t": 2}]


def test_a_stop_request_travels_through_a_file(tmp_path: Path) -> None:
    stream = tmp_path / "s.jsonl"
    assert stop_requested(stream) is None
    request_stop(stream, "interrupted: Ctrl-C")
    assert stop_requested(stream) == "interrupted: Ctrl-C"
