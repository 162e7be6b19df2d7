"""Per-second HDR recording on workers and the master's lossless merge."""

from __future__ import annotations

import random

from collectors.hdr import Histogram
from loadtests.recording import IntervalMerger, WorkerRecorder, us

T0 = 1_700_000_000


def _record(recorder: WorkerRecorder, rng: random.Random, seconds: int) -> list[int]:
    values = []
    for second in range(seconds):
        for _ in range(200):
            ms = rng.choice((20.0, 120.0, 950.0)) + rng.random() * 3
            failed = rng.random() < 0.01
            recorder.record(T0 + second + rng.random(), "GET /api/pitches", "investor", ms,
                            failed, corrected_ms=ms + 5)
            values.append(us(ms))
    return values


def test_merged_histograms_equal_one_histogram_of_every_value() -> None:
    rng = random.Random(7)
    east, asia = WorkerRecorder("us-east"), WorkerRecorder("asia")
    truth = _record(east, rng, 5) + _record(asia, rng, 5)
    merger = IntervalMerger()
    merger.add("w1", "us-east", east.drain(T0 + 3), now=0)
    merger.add("w2", "asia", asia.drain(T0 + 2), now=0)
    first = merger.complete(now=0)
    assert [s.t for s in first] == [T0, T0 + 1]  # only seconds both workers have passed
    merger.add("w1", "us-east", east.drain(None), now=1)
    merger.add("w2", "asia", asia.drain(None), now=1)
    rest = merger.complete(now=1) + merger.drain_all()
    seconds = first + rest
    assert [s.t for s in seconds] == [T0 + i for i in range(5)]
    assert sum(s.requests() for s in seconds) == 2000
    whole = merger.whole()
    service = Histogram.merge(c.hist for k, c in whole.items() if k[3] == "service")
    assert service == Histogram.from_values_us(truth)  # bucket for bucket: nothing lost
    corrected = Histogram.merge(c.hist for k, c in whole.items() if k[3] == "corrected")
    assert corrected.total == 2000 and corrected.quantile(0.5) > service.quantile(0.5)
    assert {k[0] for k in whole} == {"us-east", "asia"}


def test_a_silent_worker_stops_holding_seconds_back() -> None:
    merger = IntervalMerger(stale_after_s=10)
    merger.join("quiet", now=0)
    live = WorkerRecorder("europe")
    live.record(T0, "GET /x", "browser", 5.0, False)
    merger.add("live", "europe", live.drain(T0 + 1), now=0)
    assert merger.complete(now=5) == []
    merger.add("live", "europe", live.drain(T0 + 2), now=11)  # still reporting, no traffic
    assert merger.stale_workers(now=11) == ["quiet"]
    assert [s.t for s in merger.complete(now=11)] == [T0]


def test_a_block_for_a_second_already_written_still_counts_in_the_whole_run() -> None:
    merger = IntervalMerger()
    one, two = WorkerRecorder("us-west"), WorkerRecorder("us-west")
    one.record(T0, "GET /x", "browser", 5.0, False)
    merger.add("one", "us-west", one.drain(T0 + 1), now=0)
    assert len(merger.complete(now=0)) == 1
    two.record(T0, "GET /x", "browser", 7.0, True)
    merger.add("two", "us-west", two.drain(T0 + 1), now=0)
    assert merger.late_blocks == 1
    cell = merger.whole()[("us-west", "GET /x", "browser", "service")]
    assert (cell.requests, cell.failures, cell.hist.total) == (2, 1, 2)
