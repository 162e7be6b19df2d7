"""The histograms of a run directory: whole-run and per-interval, decoded lazily.

Interval histograms are kept as their encoded text until a query needs them; each one is then
decoded once into a sparse (bucket index, count) pair, so that merging any set of intervals is
one `numpy.bincount` rather than thousands of array additions.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from collectors.errors import RunDirError
from collectors.hdr import Histogram, HistogramDecodeError
from collectors.hdrbatch import BatchDecodeError, SparseBatch, decode_batch
from collectors.histindex import IntervalIndex, read_index

__all__ = ["HistogramKey", "HistogramStore", "Scope", "read_histogram_lines"]

HistogramKey = tuple[str, str, str, str]  # (region, endpoint, user_class, kind)
Scope = str | Collection[str] | None  # one value, any of several, or everything

_KEY_FIELDS = ("region", "endpoint", "user_class", "kind")


def _matches(value: str, scope: Scope) -> bool:
    if scope is None:
        return True
    if isinstance(scope, str):
        return value == scope
    return value in scope


def key_matches(
    key: HistogramKey, region: Scope, endpoint: Scope, user_class: Scope, kind: Scope
) -> bool:
    return (_matches(key[0], region) and _matches(key[1], endpoint)
            and _matches(key[2], user_class) and _matches(key[3], kind))


@dataclass
class _Line:
    key: HistogramKey
    text: str
    line: int
    t: float = 0.0
    interval_s: float = 0.0


def read_histogram_lines(path: Path, *, intervals: bool, tolerate_torn_tail: bool) -> list[_Line]:
    """Parse a histograms/*.jsonl file; a bad line is a RunDirError with its line number.

    `tolerate_torn_tail`: a run still being written (or killed) may end in a partial line; it is
    skipped instead of reported.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(path, f"unreadable ({exc})") from None
    lines = text.split("\n")
    torn = lines[-1] != ""  # the file does not end with a newline
    result: list[_Line] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if torn and number == len(lines) and tolerate_torn_tail:
            break
        result.append(_parse_line(path, number, raw, intervals))
    return result


def _parse_line(path: Path, number: int, raw: str, intervals: bool) -> _Line:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunDirError(path, f"not a JSON object ({exc.msg})", line=number) from None
    if not isinstance(item, dict):
        raise RunDirError(path, "not a JSON object", line=number)
    needed = (*_KEY_FIELDS, "hist", *(("t", "interval_s") if intervals else ()))
    missing = [name for name in needed if name not in item]
    if missing:
        raise RunDirError(path, f"lacks {', '.join(missing)}", line=number)
    key_values = tuple(item[name] for name in _KEY_FIELDS)
    if not all(isinstance(value, str) for value in key_values) or not isinstance(
        item["hist"], str
    ):
        raise RunDirError(path, "region, endpoint, user_class, kind and hist must be strings",
                          line=number)
    parsed = _Line(key=(key_values[0], key_values[1], key_values[2], key_values[3]),
                   text=item["hist"], line=number)
    if intervals:
        try:
            parsed.t = float(item["t"])
            parsed.interval_s = float(item["interval_s"])
        except (TypeError, ValueError):
            raise RunDirError(path, "t and interval_s must be numbers", line=number) from None
    return parsed


@dataclass
class HistogramStore:
    """Whole-run histograms by key plus interval histograms, for one run directory."""

    whole_path: Path
    intervals_path: Path
    tolerate_torn_tail: bool
    whole_lines: dict[HistogramKey, _Line]
    _intervals: list[_Line] | None = None
    _decoded_whole: dict[HistogramKey, Histogram] = field(default_factory=dict)
    _sparse: SparseBatch | None = None
    _interval_index: IntervalIndex | None = None
    _copy_checked: bool = False

    @classmethod
    def open(cls, whole_path: Path, intervals_path: Path, *, incomplete: bool) -> HistogramStore:
        lines = read_histogram_lines(whole_path, intervals=False, tolerate_torn_tail=incomplete)
        whole: dict[HistogramKey, _Line] = {}
        for line in lines:
            if line.key in whole:
                raise RunDirError(whole_path, f"duplicate histogram for {line.key}", line=line.line)
            whole[line.key] = line
        return cls(whole_path, intervals_path, incomplete, whole)

    # keys ------------------------------------------------------------------------------------
    def keys(self) -> list[HistogramKey]:
        """Every key with a histogram (whole-run, or intervals when no whole-run file exists)."""
        if self.whole_lines:
            return sorted(self.whole_lines)
        index = self._index()
        return sorted(index.keys[k] for k in set(index.key_id.tolist()))

    def intervals(self) -> list[_Line]:
        if self._intervals is None:
            self._intervals = read_histogram_lines(
                self.intervals_path, intervals=True, tolerate_torn_tail=self.tolerate_torn_tail
            )
        return self._intervals

    # queries ---------------------------------------------------------------------------------
    def whole(self, region: Scope, endpoint: Scope, user_class: Scope, kind: Scope) -> Histogram:
        """Merged whole-run histogram of every matching key."""
        if not self.whole_lines:
            return self.window(region, endpoint, user_class, kind, None, None)
        chosen = [k for k in self.whole_lines if key_matches(k, region, endpoint, user_class, kind)]
        return Histogram.merge(self._whole_histogram(k) for k in chosen)

    def window(
        self, region: Scope, endpoint: Scope, user_class: Scope, kind: Scope,
        start: float | None, end: float | None,
    ) -> Histogram:
        """Merged interval histograms of matching keys whose interval midpoint is in
        [start, end)."""
        rows = self._rows(region, endpoint, user_class, kind, start, end)
        return self._merge_rows(rows)

    def grouped_windows(
        self, group_fields: tuple[str, ...], region: Scope, endpoint: Scope, user_class: Scope,
        kind: Scope, start: float | None, end: float | None,
    ) -> Iterator[tuple[float, float, tuple[str, ...], Histogram]]:
        """(t, interval_s, group values, merged histogram) per interval start and group."""
        positions = [_KEY_FIELDS.index(name) for name in group_fields]
        index = self._index()
        key_group = [tuple(key[p] for p in positions) for key in index.keys]
        rows = self._rows(region, endpoint, user_class, kind, start, end)
        labels: dict[tuple[float, float, tuple[str, ...]], int] = {}
        group_of_row = np.full(index.t.size, -1, dtype=np.int64)
        for row, t, interval_s, key_id in zip(rows, index.t[rows], index.interval_s[rows],
                                             index.key_id[rows], strict=True):
            label = (float(t), float(interval_s), key_group[key_id])
            group_of_row[row] = labels.setdefault(label, len(labels))
        merged = self._batch().merged_by_group(group_of_row, len(labels))
        for label, number in sorted(labels.items()):
            yield label[0], label[1], label[2], merged[number]

    def window_by_key(
        self, kind: Scope, start: float | None, end: float | None
    ) -> dict[HistogramKey, Histogram]:
        """One merged histogram per key over the window (what a gate's cells need)."""
        index = self._index()
        rows = self._rows(None, None, None, kind, start, end)
        group_of_row = np.full(index.t.size, -1, dtype=np.int64)
        group_of_row[rows] = index.key_id[rows]
        merged = self._batch().merged_by_group(group_of_row, len(index.keys))
        present = set(index.key_id[rows].tolist())
        return {key: merged[n] for n, key in enumerate(index.keys) if n in present}

    def has_intervals(self) -> bool:
        return bool(self._index().t.size)

    # internals -------------------------------------------------------------------------------
    def _decoded_copy(self) -> None:
        """Adopt intervals.index/buckets.parquet when they match intervals.jsonl."""
        if not self._copy_checked:
            self._copy_checked = True
            found = read_index(self.intervals_path)
            if found is not None:
                self._interval_index, self._sparse = found

    def _index(self) -> IntervalIndex:
        self._decoded_copy()
        if self._interval_index is None:
            lines = self.intervals()
            keys = sorted({line.key for line in lines})
            ids = {key: number for number, key in enumerate(keys)}
            self._interval_index = IntervalIndex(
                t=np.fromiter((line.t for line in lines), np.float64, len(lines)),
                interval_s=np.fromiter((line.interval_s for line in lines), np.float64, len(lines)),
                key_id=np.fromiter((ids[line.key] for line in lines), np.int64, len(lines)),
                keys=keys,
            )
        return self._interval_index

    def _rows(
        self, region: Scope, endpoint: Scope, user_class: Scope, kind: Scope,
        start: float | None, end: float | None,
    ) -> npt.NDArray[np.int64]:
        index = self._index()
        midpoint = index.t + index.interval_s / 2.0
        selected = np.ones(index.t.size, dtype=bool)
        if start is not None:
            selected &= midpoint >= start
        if end is not None:
            selected &= midpoint < end
        wanted = [number for number, key in enumerate(index.keys)
                  if key_matches(key, region, endpoint, user_class, kind)]
        if len(wanted) != len(index.keys):
            selected &= np.isin(index.key_id, np.asarray(wanted, dtype=np.int64))
        return np.flatnonzero(selected)

    def _merge_rows(self, rows: npt.NDArray[np.int64]) -> Histogram:
        batch = self._batch()
        selected = np.zeros(batch.size, dtype=bool)
        selected[rows] = True
        return batch.merged(selected)

    def _batch(self) -> SparseBatch:
        """Every interval histogram, decoded together on first use."""
        self._decoded_copy()
        if self._sparse is None:
            lines = self.intervals()
            try:
                self._sparse = decode_batch([line.text for line in lines])
            except BatchDecodeError as exc:
                raise RunDirError(self.intervals_path, f"bad histogram: {exc.reason}",
                                  line=lines[exc.position].line) from None
        return self._sparse

    def _whole_histogram(self, key: HistogramKey) -> Histogram:
        hist = self._decoded_whole.get(key)
        if hist is None:
            hist = self._decode(self.whole_path, self.whole_lines[key])
            self._decoded_whole[key] = hist
        return hist

    @staticmethod
    def _decode(path: Path, line: _Line) -> Histogram:
        try:
            return Histogram.decode(line.text)
        except HistogramDecodeError as exc:
            raise RunDirError(path, f"bad histogram: {exc}", line=line.line) from None


def describe(key: HistogramKey) -> dict[str, Any]:
    return dict(zip(_KEY_FIELDS, key, strict=True))
