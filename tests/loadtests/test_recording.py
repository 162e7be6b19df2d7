"""Per-second HDR recording on workers and the master's lossless merge."""

from __future__ import annotations

import random

from collectors.hdr import Histogram
from loadtests.recording import IntervalMerger, WorkerRecorder, seconds_to_hand_out, us

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
    seconds = merger.complete(now=11)  # the live worker passed T0 + 1 with nothing: a zero
    assert [(s.t, s.requests()) for s in seconds] == [(T0, 1), (T0 + 1, 0)]


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


# --- every second a row ---------------------------------------------------------------------


def test_the_seconds_handed_out_fill_every_gap_between_start_and_stop() -> None:
    assert seconds_to_hand_out([5, 8], start=3, stop=10) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert seconds_to_hand_out([], start=3, stop=5) == [3, 4, 5]  # nothing completed at all
    assert seconds_to_hand_out([5, 8], start=None, stop=None) == [5, 6, 7, 8]
    assert seconds_to_hand_out([], start=None, stop=9) == []  # the load has not begun
    assert seconds_to_hand_out([12], start=3, stop=5) == [3, 4, 5, 12]  # no zeros after stop
    assert seconds_to_hand_out([2], start=3, stop=4) == [2, 3, 4]  # a second before the start
    assert seconds_to_hand_out([], start=6, stop=5) == []  # everything handed out already


def _stalled_worker(recorder: WorkerRecorder, seconds: range, stalled: set[int]) -> None:
    for second in seconds:
        if second not in stalled:
            for i in range(10):
                recorder.record(T0 + second + i / 10, "GET /x", "browser", 5.0, False)


def test_a_stall_is_a_run_of_zero_seconds_not_a_gap() -> None:
    """Seconds 3 and 4 complete nothing on either worker: they are handed out, empty."""
    merger = IntervalMerger()
    merger.begin(T0 + 0.4)
    one, two = WorkerRecorder("us-east"), WorkerRecorder("asia")
    _stalled_worker(one, range(8), {3, 4})
    _stalled_worker(two, range(8), {3, 4})
    merger.add("one", "us-east", one.drain(T0 + 6), now=0)
    merger.add("two", "asia", two.drain(T0 + 6), now=0)
    first = merger.complete(now=0)
    assert [(s.t - T0, s.requests()) for s in first] == [
        (0, 20), (1, 20), (2, 20), (3, 0), (4, 0), (5, 20)]
    merger.end(T0 + 9.5)  # the users stopped in second 9: seconds 8 and 9 completed nothing
    merger.add("one", "us-east", one.drain(None), now=1)
    merger.add("two", "asia", two.drain(None), now=1)
    rest = merger.drain_all()
    assert [(s.t - T0, s.requests()) for s in rest] == [(6, 20), (7, 20), (8, 0), (9, 0)]


def test_no_zero_second_is_made_up_before_the_load_began_or_after_it_ended() -> None:
    merger = IntervalMerger()
    idle = WorkerRecorder("us-east")
    merger.add("w", "us-east", idle.drain(T0 + 5), now=0)  # reporting before the first stage
    assert merger.complete(now=0) == []
    merger.begin(T0 + 5.2)
    merger.end(T0 + 8.0)  # a whole second: second 8 holds no load
    merger.add("w", "us-east", idle.drain(T0 + 20), now=1)
    assert [s.t - T0 for s in merger.complete(now=1)] == [5, 6, 7]
    assert merger.drain_all() == []
