"""Series the embedded evaluator reads, and where they come from.

The evaluator needs one thing of a source (`SeriesSource`): the series of a metric name with
their points in a time range, timestamps in milliseconds like Prometheus. Three sources:

- `SeriesIndex`, an in-memory index fed with samples shaped like the collectors'
  `ServiceSample` (t, target, metric, labels, value) — what a live run or a replay uses; it
  keeps running counter-reset sums so a rate costs two binary searches, not a scan;
- `CollectorsStoreSource`, an adapter over `collectors.SeriesStore` (their live store);
- anything else with a `select()` of the same shape (tests build series directly).

A scraped sample gets `instance=<target>` and `job=<job>` unless it has them: what Prometheus
adds when it scrapes, so the same rules match both.
"""

from __future__ import annotations

import json
import struct
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from alerts.selectors import Selector

__all__ = [
    "STALE_NAN",
    "CollectorsStoreSource",
    "FanOut",
    "Labels",
    "Series",
    "SeriesIndex",
    "SeriesSource",
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
    return tuple(sorted((str(k), str(v)) for k, v in labels.items() if v != ""))


class Series:
    """Points of one series in time order, with running sums of counter resets.

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
    def times(self) -> list[int]:
        return self.data[0]

    @property
    def values(self) -> list[float]:
        return self.data[1]

    def snapshot(self) -> tuple[list[int], list[float], list[float], int]:
        times, values, resets = self.data
        return times, values, resets, min(len(times), len(values), len(resets))

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
    """What the evaluator reads: every series named `metric` (labels include `__name__`) with
    at least its points in [start_ms, end_ms]; more points are fine."""

    def select(self, metric: str, start_ms: int, end_ms: int) -> Sequence[Series]: ...


class SeriesIndex:
    """A thread-safe in-memory source, fed with collector-shaped samples.

    `add_many` takes mappings with t (epoch seconds), target, metric, labels (a mapping or
    canonical JSON text) and value — the collectors' `ServiceSample` — so a scraper can feed it
    directly, and `from_frame` builds it from a finished run's service.parquet frame.
    Points older than `retention_s` behind the newest one are dropped.
    """

    def __init__(self, *, job: str = "pitchey", retention_s: float = float("inf")) -> None:
        self.job = job
        self.retention_ms = retention_s * 1000
        self._lock = threading.Lock()
        self._series: dict[str, dict[Labels, Series]] = {}
        self._label_cache: dict[tuple[str, str], dict[str, str]] = {}
        self._newest_ms: int | None = None
        self._adds = 0
        self._listeners: list[Callable[[], None]] = []
        self._by_key: dict[tuple[str, str, object], Series] = {}
        self._matching: dict[Selector, tuple[int, list[Series]]] = {}

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` (no arguments, from the feeding thread) after every add."""
        self._listeners.append(listener)

    @classmethod
    def from_frame(cls, frame: Any, *, job: str = "pitchey") -> SeriesIndex:
        """From a DataFrame with columns t, target, metric, labels (JSON text), value — a
        finished run's service.parquet — built a series at a time with numpy."""
        import numpy as np

        index = cls(job=job)
        if not len(frame):
            return index
        ordered = frame.sort_values("t", kind="stable")
        groups = ordered.groupby(["target", "metric", "labels"], sort=False, observed=True)
        for (target, metric, labels_text), group in groups:
            labels = {**index._labels(str(target), str(labels_text)), "__name__": str(metric)}
            times = np.round(group["t"].to_numpy(dtype=float) * 1000).astype(np.int64)
            values = group["value"].to_numpy(dtype=float)
            series = Series.from_arrays(labels, times, values)
            index._series.setdefault(str(metric), {})[series.labels] = series
            index._by_key[(str(target), str(metric), str(labels_text))] = series
            newest = int(times.max())
            if index._newest_ms is None or newest > index._newest_ms:
                index._newest_ms = newest
        return index

    def add(self, t: float, target: str, metric: str, labels: Mapping[str, str] | str,
            value: float) -> None:
        self.add_many([{"t": t, "target": target, "metric": metric, "labels": labels,
                        "value": value}])

    def add_many(self, samples: Iterable[Mapping[str, Any]]) -> None:
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
            if self.retention_ms != float("inf") and self._adds % 64 == 0:
                self._trim()
        for listener in self._listeners:
            listener()

    @property
    def version(self) -> int:
        """Changes whenever samples were added."""
        return self._adds

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

    def select(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        """The live series (no copy: see Series on reading while the index is fed)."""
        with self._lock:
            return list(self._series.get(metric, {}).values())

    def matching(self, selector: Selector, start_ms: int, end_ms: int) -> list[Series]:
        """The series `selector` matches; the match is cached until the metric gains series."""
        with self._lock:
            by_metric = self._series.get(selector.metric, {})
            cached = self._matching.get(selector)
            if cached is not None and cached[0] == len(by_metric):
                return cached[1]
            found = [s for s in by_metric.values() if selector.matches(s.label_map)]
            self._matching[selector] = (len(by_metric), found)
            return found

    def metrics(self) -> list[str]:
        with self._lock:
            return sorted(self._series)

    def time_range_ms(self) -> tuple[int, int] | None:
        with self._lock:
            times = [s.times[0] for m in self._series.values() for s in m.values() if s.times]
            if not times or self._newest_ms is None:
                return None
            return min(times), self._newest_ms

    def _labels(self, target: str, raw: Mapping[str, str] | str) -> dict[str, str]:
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

    def _trim(self) -> None:
        if self._newest_ms is None:
            return
        horizon = int(self._newest_ms - self.retention_ms)
        for by_metric in self._series.values():
            for series in by_metric.values():
                if series.times and series.times[0] < horizon:
                    series.trim_before(horizon)


class _CollectorsStore(Protocol):
    def query(self, metric: str, labels: Mapping[str, str] | None = None,
              start: float | None = None, end: float | None = None,
              target: str | None = None) -> Sequence[Any]: ...


class FanOut:
    """One scraper feeding several stores: `Scraper(store=FanOut(series_store, index))`.

    `add_many` goes to every store; anything else (query, instant, version...) is the first
    store's, so readers of the scraper's store (live panels) see the collectors' own.
    """

    def __init__(self, *stores: Any) -> None:
        if not stores:
            raise ValueError("FanOut needs at least one store")
        self.stores = stores

    def add_many(self, samples: Iterable[Mapping[str, Any]]) -> None:
        batch = list(samples)
        for store in self.stores:
            store.add_many(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stores[0], name)


class CollectorsStoreSource:
    """Reads `collectors.SeriesStore` (their live store) through its `query()`.

    Converted series are reused while the store's `version` stays the same, but every change
    converts the requested range again; for hour-long runs with many series, feed a
    `SeriesIndex` from the scraper too (`FanOut`), which keeps reset sums incrementally and
    wakes the evaluator when samples land.
    """

    def __init__(self, store: _CollectorsStore, *, job: str = "pitchey") -> None:
        self.store = store
        self.job = job
        self._cache: dict[str, tuple[int | None, int, int, list[Series]]] = {}

    @property
    def version(self) -> int | None:
        """The store's change counter (collectors.SeriesStore.version), if it has one."""
        version = getattr(self.store, "version", None)
        return int(version) if isinstance(version, int) else None

    def select(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        version = self.version
        cached = self._cache.get(metric)
        if (cached is not None and version is not None and cached[0] == version
                and cached[1] <= start_ms and cached[2] >= end_ms):
            return cached[3]
        found = self._convert(metric, start_ms, end_ms)
        self._cache[metric] = (version, start_ms, end_ms, found)
        return found

    def _convert(self, metric: str, start_ms: int, end_ms: int) -> list[Series]:
        found = []
        for item in self.store.query(metric, None, start_ms / 1000, end_ms / 1000):
            labels = {str(k): str(v) for k, v in dict(item.labels).items()}
            if item.target:
                labels.setdefault("instance", str(item.target))
            if self.job:
                labels.setdefault("job", self.job)
            labels["__name__"] = metric
            found.append(Series.of(labels, ((round(t * 1000), float(v)) for t, v in
                                            zip(item.times, item.values, strict=True))))
        return found
