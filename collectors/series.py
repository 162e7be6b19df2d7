"""The one in-memory time-series store: the scraped service series of a run.

`SeriesStore` keeps every series' points in memory, like a tiny Prometheus TSDB. The scraper
(`collectors.scrape.Scraper`) feeds it samples shaped like `collectors.ServiceSample`
(t in epoch seconds, target, metric, labels, value) while a run goes on, and
`SeriesStore.from_frame(run.service)` builds the same from a finished run, so the embedded
alert evaluator (`alerts`) reads it unchanged live and in replay:

    store = SeriesStore(retention_s=3600)
    store.add(t, "edge", "pitchey_db_up", {"region": "eu-west"}, 1.0)
    store.select("pitchey_db_up", start_ms, end_ms)   # -> [Series]: what the evaluator reads
    store.find("pitchey_db_up", {"instance": "edge"})  # -> [Series] whose labels include these

Like Prometheus when it scrapes, a series is named by its labels plus `__name__=<metric>`,
`instance=<target>` and `job=<job>` (unless the sample has them); timestamps are kept in
milliseconds. Every series keeps running sums of counter resets, so a rate over any window
costs two binary searches, not a scan. Writers take the store's lock; readers of a `Series`
need none (see `Series`). Points older than `retention_s` behind the newest one are dropped.
"""

from __future__ import annotations

import json
import struct
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "STALE_NAN",
    "Labels",
    "Series",
    "SeriesSelector",
    "SeriesSource",
    "SeriesStore",
    "freeze_labels",
    "is_stale",
]

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs; "__name__" holds the metric

_STALE_BITS = 0x7FF0000000000002  # Prometheus' staleness marker, a NaN with this payload
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", _STALE_BITS))[0]


def is_stale(value: float) -> bool:
    # NaN first: the common case (a number) costs one comparison
    return value != value and struct.unpack("<Q", struct.pack("<d", value))[0] == _STALE_BITS


def freeze_labels(labels: Mapping[str, str]) -> Labels:
    """Sorted pairs without empty values (an empty label is no label, as in Prometheus)."""
    return tuple(sorted((str(k), str(v)) for k, v in labels.items() if v != ""))


class Series:
    """Points of one series in time order (ms), with running sums of counter resets.

    `resets[i]` is the sum, over points 1..i, of the previous value wherever a value dropped:
    Prometheus' counter correction for points i0..i1 is `resets[i1] - resets[i0]`.

    One writer appends while evaluators read without a lock: appends only extend the three
    lists (readers use the common prefix, `snapshot()`), and trimming swaps in new lists as
    one tuple, so a reader always sees a consistent state.
    """

    __slots__ = ("labels", "label_map", "unnamed", "data", "stale_points", "_last_real")

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels: Labels = freeze_labels(labels)
        self.label_map: dict[str, str] = dict(self.labels)
        self.unnamed: Labels = tuple(p for p in self.labels if p[0] != "__name__")
        self.data: tuple[list[int], list[float], list[float]] = ([], [], [])
        self.stale_points = 0
        self._last_real: float | None = None

    @classmethod
    def of(cls, labels: Mapping[str, str], points: Iterable[tuple[int, float]]) -> Series:
        series = cls(labels)
        for t, v in points:
            series.append(t, v)
        return series

    @classmethod
    def from_arrays(cls, labels: Mapping[str, str], times: Any, values: Any) -> Series:
        """Bulk construction from time-ordered numpy arrays (ms, float)."""
        import numpy as np

        keep = np.concatenate(([True], np.diff(times) > 0)) if len(times) else times
        times, values = times[keep], values[keep]
        if any(is_stale(float(v)) for v in values[np.isnan(values)]):
            return cls.of(labels, zip(times.tolist(), values.tolist(), strict=True))
        series = cls(labels)
        previous, current = values[:-1], values[1:]
        dropped = np.where(current < previous, previous, 0.0)
        resets = np.concatenate(([0.0], np.cumsum(dropped))) if len(values) else dropped
        series.data = (times.tolist(), values.tolist(), resets.tolist())
        series._last_real = float(values[-1]) if len(values) else None
        return series

    @property
    def metric(self) -> str:
        return self.label_map.get("__name__", "")

    @property
    def target(self) -> str:
        """The scraped target the series came from (its `instance` label)."""
        return self.label_map.get("instance", "")

    @property
    def times(self) -> list[int]:
        return self.data[0]

    @property
    def values(self) -> list[float]:
        return self.data[1]

    def snapshot(self) -> tuple[list[int], list[float], list[float], int]:
        times, values, resets = self.data
        return times, values, resets, min(len(times), len(values), len(resets))

    def points(self, start_ms: float | None = None,
               end_ms: float | None = None) -> list[tuple[int, float]]:
        """A copy of the points in [start_ms, end_ms] (either end open when None)."""
        times, values, _, n = self.snapshot()
        lo = 0 if start_ms is None else bisect_left(times, start_ms, 0, n)
        hi = n if end_ms is None else bisect_right(times, end_ms, 0, n)
        return list(zip(times[lo:hi], values[lo:hi], strict=True))

    def latest(self) -> tuple[int, float] | None:
        """The newest point (ms, value), if any."""
        times, values, _, n = self.snapshot()
        return (times[n - 1], values[n - 1]) if n else None

    def append(self, t_ms: int, value: float) -> None:
        times, values, resets = self.data
        if times and t_ms <= times[-1]:
            return  # out of order or duplicate: Prometheus rejects it too
        stale = is_stale(value)
        last = self._last_real
        dropped = last if (not stale and last is not None and value < last) else 0.0
        if stale:
            self.stale_points += 1  # before the point is visible: readers take the slow path
        else:
            self._last_real = value
        resets.append((resets[-1] if resets else 0.0) + dropped)
        values.append(value)
        times.append(t_ms)

    def trim_before(self, t_ms: int) -> None:
        times, values, resets = self.data
        cut = bisect_left(times, t_ms)
        if cut:
            gone_stale = sum(1 for v in values[:cut] if is_stale(v))
            self.data = (times[cut:], values[cut:], resets[cut:])
            self.stale_points -= gone_stale


class SeriesSource(Protocol):
    """What the alert evaluator reads: every series named `metric` (labels include `__name__`)
    with at least its points in [start_ms, end_ms]; more points are fine."""

    def select(self, metric: str, start_ms: int, end_ms: int) -> Sequence[Series]: ...


class SeriesSelector(Hashable, Protocol):
    """A metric name plus label matchers (`alerts.selectors.Selector` is one)."""

    @property
    def metric(self) -> str: ...

    def matches(self, labels: Mapping[str, str]) -> bool: ...


class SeriesStore:
    """The thread-safe store: fed with collector-shaped samples, read as `Series`."""

    def __init__(self, *, job: str = "pitchey", retention_s: float = float("inf")) -> None:
        self.job = job
        self.retention_s = retention_s
        self._retention_ms = retention_s * 1000
        # trim when the newest point has moved on by a sixteenth of the retention (>= 1 s)
        self._trim_every_ms = max(1000.0, self._retention_ms / 16)
        self._next_trim_ms = float("-inf")
        self._lock = threading.Lock()
        self._series: dict[str, dict[Labels, Series]] = {}
        self._label_cache: dict[tuple[str, str], dict[str, str]] = {}
        self._by_key: dict[tuple[str, str, object], Series] = {}
        self._matching: dict[SeriesSelector, tuple[int, list[Series]]] = {}
        self._newest_ms: int | None = None
        self._adds = 0
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def from_frame(cls, frame: Any, *, job: str = "pitchey") -> SeriesStore:
        """From a DataFrame with columns t, target, metric, labels (JSON text), value — a
        finished run's service.parquet — built a series at a time with numpy."""
        import numpy as np

        store = cls(job=job)
        if not len(frame):
            return store
        ordered = frame.sort_values("t", kind="stable")
        groups = ordered.groupby(["target", "metric", "labels"], sort=False, observed=True)
        for (target, metric, labels_text), group in groups:
            labels = {**store._labels(str(target), str(labels_text)), "__name__": str(metric)}
            times = np.round(group["t"].to_numpy(dtype=float) * 1000).astype(np.int64)
            values = group["value"].to_numpy(dtype=float)
            series = Series.from_arrays(labels, times, values)
            store._series.setdefault(str(metric), {})[series.labels] = series
            store._by_key[(str(target), str(metric), str(labels_text))] = series
            newest = int(times.max())
            if store._newest_ms is None or newest > store._newest_ms:
                store._newest_ms = newest
        return store

    # writing ---------------------------------------------------------------------------------
    def add(self, t: float, target: str, metric: str, labels: Mapping[str, str] | str,
            value: float) -> None:
        self.add_many([{"t": t, "target": target, "metric": metric, "labels": labels,
                        "value": value}])

    def add_many(self, samples: Iterable[Mapping[str, Any]]) -> None:
        """Samples shaped like `collectors.ServiceSample`: t (epoch seconds), target, metric,
        labels (a mapping or canonical JSON text), value. Out-of-order points are dropped."""
        with self._lock:
            newest = self._newest_ms
            for sample in samples:
                raw = sample.get("labels", {})
                key = (sample.get("target", ""), sample["metric"],
                       raw if isinstance(raw, str) else tuple(sorted(raw.items())))
                series = self._by_key.get(key)
                if series is None:
                    series = self._new_series(key, raw)
                t_ms = round(float(sample["t"]) * 1000)
                series.append(t_ms, float(sample["value"]))
                if newest is None or t_ms > newest:
                    newest = t_ms
            self._newest_ms = newest
            self._adds += 1
            if newest is not None and newest >= self._next_trim_ms:
                self._trim(newest)
        for listener in self._listeners:
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` (no arguments, from the feeding thread) after every add."""
        self._listeners.append(listener)

    @property
    def version(self) -> int:
        """Changes whenever samples were added."""
        return self._adds

    # reading ---------------------------------------------------------------------------------
    def select(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        """The live series of `metric` (no copy: see Series on reading while it is fed)."""
        with self._lock:
            return list(self._series.get(metric, {}).values())

    def matching(self, selector: SeriesSelector, start_ms: int, end_ms: int) -> list[Series]:
        """The series `selector` matches; the match is cached until the metric gains series."""
        with self._lock:
            by_metric = self._series.get(selector.metric, {})
            cached = self._matching.get(selector)
            if cached is not None and cached[0] == len(by_metric):
                return cached[1]
            found = [s for s in by_metric.values() if selector.matches(s.label_map)]
            self._matching[selector] = (len(by_metric), found)
            return found

    def find(self, metric: str, labels: Mapping[str, str] | None = None) -> list[Series]:
        """The series of `metric` whose labels include `labels`, sorted by their labels."""
        wanted = dict(labels or {}).items()
        with self._lock:
            found = [s for s in self._series.get(metric, {}).values()
                     if wanted <= s.label_map.items()]
        return sorted(found, key=lambda s: s.labels)

    def metrics(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def targets(self) -> list[str]:
        with self._lock:
            return sorted({s.target for by_metric in self._series.values()
                           for s in by_metric.values() if s.target})

    def time_range_ms(self) -> tuple[int, int] | None:
        """(oldest, newest) point time in ms, or None while the store is empty."""
        with self._lock:
            times = [s.times[0] for m in self._series.values() for s in m.values() if s.times]
            if not times or self._newest_ms is None:
                return None
            return min(times), self._newest_ms

    # internals -------------------------------------------------------------------------------
    def _new_series(self, key: tuple[str, str, object], raw: Mapping[str, str] | str) -> Series:
        target, metric = str(key[0]), str(key[1])
        labels = {**self._labels(target, raw), "__name__": metric}
        by_metric = self._series.setdefault(metric, {})
        frozen = freeze_labels(labels)
        series = by_metric.get(frozen)
        if series is None:
            series = by_metric[frozen] = Series(labels)
        self._by_key[key] = series
        return series

    def _labels(self, target: str, raw: Mapping[str, str] | str) -> dict[str, str]:
        """The sample's labels plus `instance` and `job`, as Prometheus adds them."""
        text = raw if isinstance(raw, str) else json.dumps(dict(raw), sort_keys=True)
        cached = self._label_cache.get((target, text))
        if cached is None:
            parsed = json.loads(text or "{}") if isinstance(raw, str) else dict(raw)
            cached = {str(k): str(v) for k, v in parsed.items()}
            if target:
                cached.setdefault("instance", target)
            if self.job:
                cached.setdefault("job", self.job)
            self._label_cache[(target, text)] = cached
        return cached

    def _trim(self, newest_ms: int) -> None:
        self._next_trim_ms = newest_ms + self._trim_every_ms
        if self._retention_ms == float("inf"):
            return
        horizon = int(newest_ms - self._retention_ms)
        for by_metric in self._series.values():
            for series in by_metric.values():
                if series.times and series.times[0] < horizon:
                    series.trim_before(horizon)
