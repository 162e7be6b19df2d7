"""Reading a run directory while its RunWriter is still writing it, a little at a time.

`load_run` re-reads everything: every part file, every line of histograms/intervals.jsonl
(decoding every histogram on first query) and events.jsonl. On a long run that grows with
the run's length, which is too slow to repeat every two seconds. `LiveRunReader` remembers
what it has read:

- histograms/intervals.jsonl and events.jsonl are append-only while a run is written: the
  reader keeps the byte offset just past the last complete line and reads only what follows.
  A partial last line (the writer is mid-append) is left for the next call;
- the per-second tables are flushed as immutable part files
  (timeseries/<table>.parts/part-NNNNNN.parquet, renamed into place whole), so the reader
  reads only part files it has not seen.

Each `refresh()` returns a `RunDelta` (what was appended since the previous call) and leaves
`reader.run` as a `Run` of everything read so far, whose interval histograms are decoded
already. Once the manifest says the run finished (its parts are then merged and removed),
`refresh()` reads it once with `load_run`, so a finished run is exactly what `load_run` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collectors._format import (
    EVENTS,
    HIST_INTERVALS,
    HIST_WHOLE,
    MANIFEST,
    PARTS_SUFFIX,
    SCHEMAS,
    TABLES,
    table_path,
)
from collectors.errors import RunDirError
from collectors.hdrbatch import BatchDecodeError, SparseBatch, decode_batch
from collectors.histindex import IntervalIndex
from collectors.histstore import HistogramKey, HistogramStore, _Line, _parse_line
from collectors.run import Run, _first_line, _json_line, _read_manifest, load_run

__all__ = ["LiveRunReader", "RunDelta"]

@dataclass(frozen=True)
class RunDelta:
    """What one `refresh()` found appended since the previous one."""

    status: str
    intervals: int = 0  # interval histograms added (each one seen exactly once)
    interval_keys: tuple[HistogramKey, ...] = ()  # their keys, in file order
    interval_t: tuple[float, ...] = ()  # their start times, in file order
    rows: dict[str, pd.DataFrame] = field(default_factory=dict)  # new rows per table
    events: tuple[dict[str, Any], ...] = ()
    reloaded: bool = False  # the run finished and was read whole with load_run

    @property
    def empty(self) -> bool:
        return not (self.intervals or self.events or self.reloaded
                    or any(len(rows) for rows in self.rows.values()))


class _Tail:
    """An append-only JSON-lines file read from where the last read stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # byte just past the last complete line read
        self.lines_read = 0
        self._pending = (0, 0)  # (offset, lines_read) once the caller accepts the new lines

    def new_lines(self) -> list[tuple[int, str]]:
        """(line number, text) of every complete line appended since the last `accept()`."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunDirError(self.path, f"unreadable ({exc})") from None
        end = data.rfind(b"\n") + 1  # a partial last line stays for the next call
        try:
            text = data[:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunDirError(self.path, f"unreadable ({exc})") from None
        raws = text.split("\n")[:-1]
        self._pending = (self.offset + end, self.lines_read + len(raws))
        return [(self.lines_read + n, raw) for n, raw in enumerate(raws, start=1) if raw.strip()]

    def accept(self) -> None:
        """The lines last returned were used: the next read starts after them. (A bad line is
        not accepted, so every refresh reports it again rather than skipping it.)"""
        self.offset, self.lines_read = self._pending


class _Growing:
    """An array appended to in place (capacity doubles), so an append costs what it adds.
    `view()` is a slice that later appends never change, so snapshots stay valid."""

    def __init__(self, dtype: type[np.generic]) -> None:
        self._data: npt.NDArray[Any] = np.zeros(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: npt.NDArray[Any]) -> None:
        needed = self.size + values.size
        if needed > self._data.size:
            grown = np.zeros(max(needed, 2 * self._data.size), dtype=self._data.dtype)
            grown[:self.size] = self._data[:self.size]
            self._data = grown
        self._data[self.size:needed] = values
        self.size = needed

    def view(self) -> npt.NDArray[Any]:
        return self._data[:self.size]


class LiveRunReader:
    """Incremental reader of one run directory; see the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not (self.path / MANIFEST).exists():
            load_run(self.path)  # raises the RunDirError that names what is wrong
        self._manifest: dict[str, Any] = {}
        self._intervals = _Tail(self.path / HIST_INTERVALS)
        self._events_tail = _Tail(self.path / EVENTS)
        self._parts_seen: dict[str, set[str]] = {table: set() for table in TABLES}
        self._tables: dict[str, pd.DataFrame] = {table: _empty_frame(table) for table in TABLES}
        self._events: list[dict[str, Any]] = []
        self._t = _Growing(np.float64)
        self._interval_s = _Growing(np.float64)
        self._key_id = _Growing(np.int64)
        self._hist, self._bucket, self._count = (_Growing(np.int64) for _ in range(3))
        self._keys: list[HistogramKey] = []
        self._key_number: dict[HistogramKey, int] = {}
        self._finished: Run | None = None

    @property
    def finished(self) -> bool:
        return self._finished is not None

    @property
    def run(self) -> Run:
        """Everything read so far, as a `Run` (a fresh object after each refresh)."""
        if self._finished is not None:
            return self._finished
        index = IntervalIndex(t=self._t.view(), interval_s=self._interval_s.view(),
                              key_id=self._key_id.view(), keys=list(self._keys))
        batch = SparseBatch(self._t.size, self._hist.view(), self._bucket.view(),
                            self._count.view())
        store = HistogramStore(self.path / HIST_WHOLE, self.path / HIST_INTERVALS, True, {},
                               _sparse=batch, _interval_index=index, _copy_checked=True)
        preloaded: dict[str, Any] = {**self._tables, "events": list(self._events)}
        return Run(self.path, dict(self._manifest), None, {t: [] for t in TABLES}, store,
                   preloaded=preloaded)

    def refresh(self) -> RunDelta:
        """Read what was appended since the last call; raises RunDirError on a bad file."""
        if self._finished is not None:
            return RunDelta(self._finished.status)
        manifest = _read_manifest(self.path / MANIFEST)
        if manifest["status"] != "running":
            self._finished = load_run(self.path)
            self._manifest = manifest
            return RunDelta(self._finished.status, reloaded=True)
        self._manifest = manifest
        rows = {table: frame for table in TABLES
                if len(frame := self._new_rows(table))}
        events = self._new_events()
        keys, times = self._new_intervals()
        return RunDelta("running", len(keys), tuple(keys), tuple(times), rows, tuple(events))

    # internals -------------------------------------------------------------------------------
    def _new_rows(self, table: str) -> pd.DataFrame:
        parts_dir = self.path / (table_path(table).removesuffix(".parquet") + PARTS_SUFFIX)
        try:
            names = sorted(p.name for p in parts_dir.glob("part-*.parquet"))
        except OSError:
            names = []  # the writer is merging the parts: the run is finishing
        fresh = [name for name in names if name not in self._parts_seen[table]]
        plain = _plain_schema(table)
        read: list[pa.Table] = []
        for name in fresh:
            file = parts_dir / name
            try:
                read.append(pq.read_table(file, columns=plain.names).cast(plain))
            except FileNotFoundError:
                break  # merged away by finish(); the next refresh reads the finished run
            except (OSError, pa.ArrowException) as exc:
                raise RunDirError(file, f"unreadable Parquet ({_first_line(exc)})") from None
        if not read:
            return _empty_frame(table)
        self._parts_seen[table].update(fresh[:len(read)])
        new = pa.concat_tables(read).to_pandas()
        self._tables[table] = pd.concat([self._tables[table], new], ignore_index=True)
        return new

    def _new_events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for number, raw in self._events_tail.new_lines():
            item = _json_line(self._events_tail.path, number, raw)
            if not isinstance(item.get("t"), int | float) or not isinstance(item.get("type"), str):
                raise RunDirError(self._events_tail.path, "an event needs a numeric t and a "
                                  "string type", line=number)
            events.append(item)
        self._events_tail.accept()
        self._events.extend(events)
        return events

    def _new_intervals(self) -> tuple[list[HistogramKey], list[float]]:
        path = self._intervals.path
        lines: list[_Line] = [_parse_line(path, number, raw, True)
                              for number, raw in self._intervals.new_lines()]
        if not lines:
            self._intervals.accept()  # blank lines only, or nothing new
            return [], []
        try:
            batch = decode_batch([line.text for line in lines])
        except BatchDecodeError as exc:
            raise RunDirError(path, f"bad histogram: {exc.reason}",
                              line=lines[exc.position].line) from None
        for line in lines:
            if line.key not in self._key_number:
                self._key_number[line.key] = len(self._keys)
                self._keys.append(line.key)
        self._hist.extend(batch.hist + self._t.size)
        self._bucket.extend(batch.index)
        self._count.extend(batch.count)
        self._t.extend(np.fromiter((line.t for line in lines), np.float64, len(lines)))
        self._interval_s.extend(np.fromiter((line.interval_s for line in lines), np.float64,
                                            len(lines)))
        self._key_id.extend(np.fromiter((self._key_number[line.key] for line in lines),
                                        np.int64, len(lines)))
        self._intervals.accept()
        return [line.key for line in lines], [line.t for line in lines]


def _plain_schema(table: str) -> pa.Schema:
    """The table's schema with dictionary columns as plain strings (as `Run` returns them)."""
    return pa.schema([
        pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
        for f in SCHEMAS[table]
    ])


def _empty_frame(table: str) -> pd.DataFrame:
    frame: pd.DataFrame = _plain_schema(table).empty_table().to_pandas()
    return frame
