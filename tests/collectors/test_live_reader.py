"""collectors.live.LiveRunReader: incremental reads of a run directory being written."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.errors import RunDirError
from collectors.live import LiveRunReader
from collectors.run import load_run
from collectors.rundir import RunWriter
from collectors.validity import Validity
from testing.rundirs import KEYS, T0, CellSpec, new_writer, write_seconds

WINDOWS = ((None, None), (T0 + 3, T0 + 11), (T0 + 20, T0 + 21))


class Seconds:
    """Writes whole seconds of seeded load into a RunWriter, continuing where it stopped."""

    CELLS = {key: CellSpec(lambda second, rng: rng.lognormal(np.log(40), 0.9,
                                                             int(rng.integers(3, 30))),
                           failures=lambda second: 1) for key in KEYS}

    def __init__(self, writer: RunWriter, seed: int = 7) -> None:
        self.writer = writer
        self.rng = np.random.default_rng(seed)
        self.next_second = 0

    def write(self, count: int) -> None:
        for _ in range(count):
            write_seconds(self.writer, self.CELLS, [self.next_second], self.rng,
                          users=lambda second: 10 + second, generators=lambda second: ())
            self.writer.add_event(T0 + self.next_second, "stage", second=self.next_second)
            self.next_second += 1


def _seen(deltas: list[tuple[tuple[str, str, str, str], float]]) -> Counter[tuple[str, float]]:
    return Counter((key[0] + key[1] + key[2] + key[3], t) for key, t in deltas)


def _written(seconds: int) -> Counter[tuple[str, float]]:
    return Counter((r + e + u + "service", T0 + s) for s in range(seconds) for r, e, u in KEYS)


def _percentiles(run: object, region: str | None, start: float | None,
                 end: float | None) -> dict[float, float]:
    assert hasattr(run, "percentiles")
    result: dict[float, float] = run.percentiles(region=region, start=start, end=end)
    return result


def test_interleaved_refreshes_see_every_histogram_once(tmp_path: Path) -> None:
    now = [0.0]
    writer = new_writer(tmp_path, clock=lambda: now[0], flush_interval_s=1.0)
    source = Seconds(writer)
    reader = LiveRunReader(writer.path)
    seen: list[tuple[tuple[str, str, str, str], float]] = []
    events = 0
    for chunk in (1, 3, 0, 5, 2, 13):
        source.write(chunk)
        now[0] += 1.0 if chunk % 2 else 0.0  # some chunks stay buffered in the writer
        if chunk == 0:
            writer.flush()
        delta = reader.refresh()
        assert delta.status == "running"
        seen.extend(zip(delta.interval_keys, delta.interval_t, strict=True))
        events += len(delta.events)
    writer.flush()
    delta = reader.refresh()
    seen.extend(zip(delta.interval_keys, delta.interval_t, strict=True))
    events += len(delta.events)
    assert _seen(seen) == _written(source.next_second)
    assert events == source.next_second
    assert reader.refresh().empty  # nothing appended: nothing read again

    run = reader.run
    on_disk = load_run(writer.path)
    pd.testing.assert_frame_equal(run.load, on_disk.load)
    pd.testing.assert_frame_equal(run.stats, on_disk.stats)
    assert run.events == on_disk.events
    assert run.histogram_keys() == on_disk.histogram_keys()


def test_percentiles_equal_load_run_of_the_finished_run(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    source = Seconds(writer, seed=11)
    reader = LiveRunReader(writer.path)
    for chunk in (4, 9, 12):
        source.write(chunk)
        reader.refresh()
    writer.flush()
    reader.refresh()
    live = {(region, start): _percentiles(reader.run, region, start, end)
            for region in (None, "us-east", "eu-west") for start, end in WINDOWS}
    live_series = reader.run.percentile_series(by=("region",))

    writer.finish(Validity.ok())
    finished = load_run(writer.path)
    for region in (None, "us-east", "eu-west"):
        for start, end in WINDOWS:
            assert live[(region, start)] == _percentiles(finished, region, start, end)
    pd.testing.assert_frame_equal(live_series, finished.percentile_series(by=("region",)))

    delta = reader.refresh()  # the run finished: read once, whole, as load_run reads it
    assert delta.reloaded and reader.finished and reader.run.complete
    assert reader.run.percentiles() == finished.percentiles()
    assert reader.refresh().empty


def test_partial_last_line_is_kept_for_the_next_refresh(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    Seconds(writer).write(6)
    writer.flush()
    intervals = writer.path / "histograms" / "intervals.jsonl"
    events = writer.path / "events.jsonl"
    full_intervals, full_events = intervals.read_bytes(), events.read_bytes()
    lines = full_intervals.split(b"\n")
    cut = len(b"\n".join(lines[:5])) + 1 + len(lines[5]) // 2  # 5 lines and half of the 6th
    event_cut = full_events.index(b"\n") + 4
    intervals.write_bytes(full_intervals[:cut])
    events.write_bytes(full_events[:event_cut])

    reader = LiveRunReader(writer.path)
    first = reader.refresh()
    assert first.intervals == 5 and len(first.events) == 1
    assert reader.refresh().intervals == 0  # still torn: nothing new, nothing repeated

    intervals.write_bytes(full_intervals)  # the writer completes its append
    events.write_bytes(full_events)
    second = reader.refresh()
    assert second.intervals == len(KEYS) * 6 - 5
    assert len(second.events) == 5
    seen = [*zip(first.interval_keys, first.interval_t, strict=True),
            *zip(second.interval_keys, second.interval_t, strict=True)]
    assert _seen(seen) == _written(6)
    assert reader.run.percentiles() == load_run(writer.path).percentiles()


def test_writer_thread_and_reader_at_the_same_time(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)  # every add is flushed at once
    source = Seconds(writer, seed=3)
    reader = LiveRunReader(writer.path)
    done = threading.Event()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(40):
                source.write(1)
        except BaseException as exc:  # reported by the test below
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    seen: list[tuple[tuple[str, str, str, str], float]] = []
    thread.start()
    try:
        while not done.is_set():
            delta = reader.refresh()
            seen.extend(zip(delta.interval_keys, delta.interval_t, strict=True))
    finally:
        thread.join(timeout=60)
    assert not failure
    writer.flush()
    delta = reader.refresh()
    seen.extend(zip(delta.interval_keys, delta.interval_t, strict=True))
    assert _seen(seen) == _written(40)
    writer.finish(Validity.ok())
    assert reader.run.percentiles() == load_run(writer.path).percentiles()


def test_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    writer = new_writer(tmp_path, flush_interval_s=0.0)
    Seconds(writer).write(1)
    writer.flush()
    reader = LiveRunReader(writer.path)
    reader.refresh()
    with (writer.path / "histograms" / "intervals.jsonl").open("a") as handle:
        handle.write('{"region": "x"}\n')
    with pytest.raises(RunDirError) as caught:
        reader.refresh()
    assert caught.value.line == len(KEYS) + 1
    assert caught.value.path.name == "intervals.jsonl"
    with pytest.raises(RunDirError):  # reported again, never skipped
        reader.refresh()


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="manifest"):
        LiveRunReader(tmp_path)
