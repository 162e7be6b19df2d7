"""The live view of scraped service series, for the embedded alert evaluator and live panels.

`SeriesStore` keeps recent points of every (target, metric, label set) in memory, like a tiny
Prometheus TSDB: the scraper adds to it every second while a run goes on, and
`SeriesStore.from_frame(run.service)` builds the same thing from a finished run, so an
evaluator works unchanged live and in replay. It is thread-safe and uses no asyncio, so it is
shared between the gevent Locust master's scraper and whoever reads it.

Queries match a metric name exactly and labels by equality on the given subset:

    store.query("pitchey_db_up", {"region": "eu-west"}, start=t - 60, end=t)  # -> [Series]
    store.instant("up", at=t)                          # latest point per series within 5 min
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Sample", "Series", "SeriesStore"]

_SeriesKey = tuple[str, str, str]  # (metric, target, canonical labels JSON)


@dataclass(frozen=True)
class Series:
    """Points of one series in time order; `times` are epoch seconds."""

    target: str
    metric: str
    labels: Mapping[str, str]
    times: tuple[float, ...]
    values: tuple[float, ...]

    def latest(self) -> tuple[float, float] | None:
        return (self.times[-1], self.values[-1]) if self.times else None


@dataclass(frozen=True)
class Sample:
    """One value of one series at one time (an instant query's answer)."""

    target: str
    metric: str
    labels: Mapping[str, str]
    t: float
    value: float


class SeriesStore:
    """Recent points per series, trimmed to `retention_s` behind the newest point seen."""

    def __init__(self, retention_s: float = 3600.0) -> None:
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._points: dict[str, dict[tuple[str, str], deque[tuple[float, float]]]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._newest = float("-inf")
        self.version = 0  # increments on every add; a live reader can tell whether to re-query

    @classmethod
    def from_frame(cls, frame: Any, retention_s: float = float("inf")) -> SeriesStore:
        """From a DataFrame shaped like service.parquet (t, target, metric, labels, value)."""
        store = cls(retention_s)
        store.add_many(
            {"t": t, "target": target, "metric": metric, "labels": labels, "value": value}
            for t, target, metric, labels, value in zip(
                frame["t"], frame["target"], frame["metric"], frame["labels"], frame["value"],
                strict=True,
            )
        )
        return store

    # writing ---------------------------------------------------------------------------------
    def add(
        self, t: float, target: str, metric: str, labels: Mapping[str, str] | str, value: float
    ) -> None:
        self.add_many([{"t": t, "target": target, "metric": metric, "labels": labels,
                        "value": value}])

    def add_many(self, samples: Iterable[Mapping[str, Any]]) -> None:
        """Samples shaped like `collectors.ServiceSample` (labels a mapping or JSON text)."""
        with self._lock:
            for sample in samples:
                t = float(sample["t"])
                labels_text = self._intern_labels(sample["labels"])
                by_series = self._points.setdefault(str(sample["metric"]), {})
                points = by_series.setdefault((str(sample["target"]), labels_text), deque())
                if points and t < points[-1][0]:
                    continue  # out of order (a late scrape); series stay sorted
                points.append((t, float(sample["value"])))
                self._newest = max(self._newest, t)
                horizon = self._newest - self.retention_s
                while points and points[0][0] < horizon:
                    points.popleft()
            self.version += 1

    # reading ---------------------------------------------------------------------------------
    def metrics(self) -> list[str]:
        with self._lock:
            return sorted(self._points)

    def targets(self) -> list[str]:
        with self._lock:
            return sorted({target for series in self._points.values() for target, _ in series})

    def query(
        self, metric: str, labels: Mapping[str, str] | None = None, start: float | None = None,
        end: float | None = None, target: str | None = None,
    ) -> list[Series]:
        """Every series of `metric` whose labels include `labels`, points in [start, end]."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        result: list[Series] = []
        with self._lock:
            for (series_target, labels_text), points in self._points.get(metric, {}).items():
                series_labels = self._labels[labels_text]
                if not self._selected(series_target, series_labels, target, labels):
                    continue
                chosen = [(t, v) for t, v in points if lo <= t <= hi]
                result.append(Series(
                    series_target, metric, dict(series_labels),
                    tuple(t for t, _ in chosen), tuple(v for _, v in chosen),
                ))
        result.sort(key=lambda s: (s.target, sorted(s.labels.items())))
        return result

    def instant(
        self, metric: str, labels: Mapping[str, str] | None = None, at: float | None = None,
        lookback_s: float = 300.0, target: str | None = None,
    ) -> list[Sample]:
        """The latest point at or before `at` (default: newest) of each matching series, if it
        is at most `lookback_s` old (Prometheus' staleness rule)."""
        moment = self._newest if at is None else at
        samples = []
        for series in self.query(metric, labels, moment - lookback_s, moment, target):
            if series.times:
                samples.append(Sample(series.target, metric, series.labels, series.times[-1],
                                      series.values[-1]))
        return samples

    def newest_time(self) -> float | None:
        with self._lock:
            return None if self._newest == float("-inf") else self._newest

    # internals -------------------------------------------------------------------------------
    def _intern_labels(self, labels: Mapping[str, str] | str) -> str:
        if isinstance(labels, str):
            text = labels
            if text not in self._labels:
                self._labels[text] = {str(k): str(v) for k, v in json.loads(text or "{}").items()}
            return text
        text = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
        if text not in self._labels:
            self._labels[text] = {str(k): str(v) for k, v in labels.items()}
        return text

    @staticmethod
    def _selected(
        series_target: str, series_labels: Mapping[str, str], target: str | None,
        labels: Mapping[str, str] | None,
    ) -> bool:
        if target is not None and series_target != target:
            return False
        return all(series_labels.get(k) == v for k, v in (labels or {}).items())
