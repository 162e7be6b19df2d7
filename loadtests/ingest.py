"""Stream lines from the Locust master into the run directory (and the live views).

`StreamIngest.apply(items)` turns each line of the master's stream (see loadtests.stream)
into `RunWriter` calls, remembers what the terminal shows (the last progress line, the
whole-run cells, the final verdict, a stepped run's `step` and `breakpoint` events) and, when
a scenario has abort-on-fail thresholds, feeds each finished second to the gate's
`AbortMonitor`.

Every second the master hands out (a `load` line, zeros included) gives every region x
endpoint x user class seen so far a stats row: one that completed nothing in that second gets
a row of zero requests (percentiles NaN), so a stall is a run of zeros in every series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from collectors.hdr import Histogram

__all__ = ["RunSink", "StreamIngest", "WholeCell", "zero_stats_rows"]


def zero_stats_rows(t: float, scopes: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Stats rows for the scopes (region, endpoint, user class) that completed nothing in
    second `t`: zero requests and failures, no percentile (NaN)."""
    nan = float("nan")
    return [{"t": t, "region": region, "endpoint": endpoint, "user_class": user_class,
             "requests": 0, "failures": 0, "p50_ms": nan, "p95_ms": nan, "p99_ms": nan,
             "max_ms": nan} for region, endpoint, user_class in sorted(scopes)]


class RunSink(Protocol):
    """The part of collectors.rundir.RunWriter the ingest uses."""

    def add_stats(self, rows: Iterable[Mapping[str, Any]]) -> None: ...
    def add_load(self, t: float, users: int, rps: float, failures_per_s: float) -> None: ...
    def add_generator(self, t: float, worker: str, region: str, cpu_percent: float,
                      lag_ms: float) -> None: ...
    def add_histogram_interval(self, t: float, interval_s: float, region: str, endpoint: str,
                               user_class: str, kind: str, hist: Any) -> None: ...
    def set_whole_histogram(self, region: str, endpoint: str, user_class: str, kind: str,
                            hist: Any) -> None: ...
    def add_event(self, t: float, type: str, **fields: Any) -> None: ...  # noqa: A002


@dataclass
class WholeCell:
    region: str
    endpoint: str
    user_class: str
    kind: str
    requests: int
    failures: int
    hist: Histogram


@dataclass
class StreamIngest:
    sink: RunSink
    abort_monitor: Any = None  # gate.core.AbortMonitor when thresholds can abort
    meta: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    ended: str | None = None
    started_at: float | None = None  # epoch of the first stage (the plan's t = 0)
    whole: list[WholeCell] = field(default_factory=list)
    abort_reason: str | None = None
    seconds: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)  # judged steps, in order
    breakpoint: dict[str, Any] | None = None  # the stepped run's outcome
    _second_cells: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    _scopes: set[tuple[str, str, str]] = field(default_factory=set)  # seen so far
    _this_second: set[tuple[str, str, str]] = field(default_factory=set)  # with a row in it

    def apply(self, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            handler = getattr(self, f"_on_{item.get('k')}", None)
            if handler is not None:
                handler(item)

    def _on_meta(self, item: Mapping[str, Any]) -> None:
        self.meta = dict(item)

    def _on_hist(self, item: Mapping[str, Any]) -> None:
        t, kind = float(item["t"]), str(item["kind"])
        region, endpoint, user_class = item["region"], item["endpoint"], item["user_class"]
        self.sink.add_histogram_interval(t, float(item.get("interval_s", 1.0)), region,
                                         endpoint, user_class, kind, item["hist"])
        if kind == "service":
            self._scopes.add((region, endpoint, user_class))
            self._this_second.add((region, endpoint, user_class))
            self.sink.add_stats([{
                "t": t, "region": region, "endpoint": endpoint, "user_class": user_class,
                "requests": int(item["requests"]), "failures": int(item["failures"]),
                "p50_ms": float(item["p50_ms"]), "p95_ms": float(item["p95_ms"]),
                "p99_ms": float(item["p99_ms"]), "max_ms": float(item["max_ms"]),
            }])
        if self._monitoring:
            cell = self._second_cells.setdefault((region, endpoint, user_class), {})
            cell[kind] = item

    def _on_load(self, item: Mapping[str, Any]) -> None:
        t = float(item["t"])
        self.seconds += 1
        zeros = zero_stats_rows(t, self._scopes - self._this_second)
        if zeros:
            self.sink.add_stats(zeros)
        self._this_second.clear()
        self.sink.add_load(t, int(item["users"]), float(item["rps"]),
                           float(item["failures_per_s"]))
        if self._monitoring and self.started_at is not None and self.abort_reason is None:
            elapsed = t + 1.0 - self.started_at
            reason = self.abort_monitor.observe(elapsed, self._gate_cells(),
                                                int(item["users"]))
            if reason:
                self.abort_reason = reason
        self._second_cells.clear()

    def _on_gen(self, item: Mapping[str, Any]) -> None:
        self.sink.add_generator(float(item["t"]), str(item["worker"]), str(item["region"]),
                                float(item["cpu_percent"]), float(item["lag_ms"]))

    def _on_event(self, item: Mapping[str, Any]) -> None:
        fields = {k: v for k, v in item.items() if k not in ("k", "t", "type")}
        if item.get("type") == "stage" and self.started_at is None:
            self.started_at = float(item["t"])
        elif item.get("type") == "step":
            self.steps.append(fields)
        elif item.get("type") == "breakpoint":
            self.breakpoint = fields
        self.sink.add_event(float(item["t"]), str(item["type"]), **fields)

    def _on_progress(self, item: Mapping[str, Any]) -> None:
        self.progress = dict(item)

    def _on_whole(self, item: Mapping[str, Any]) -> None:
        self.sink.set_whole_histogram(item["region"], item["endpoint"], item["user_class"],
                                      item["kind"], item["hist"])
        self.whole.append(WholeCell(
            item["region"], item["endpoint"], item["user_class"], item["kind"],
            int(item["requests"]), int(item["failures"]), Histogram.decode(item["hist"]),
        ))

    def _on_final(self, item: Mapping[str, Any]) -> None:
        self.final = dict(item)

    def _on_end(self, item: Mapping[str, Any]) -> None:
        self.ended = str(item.get("reason", "completed"))

    @property
    def _monitoring(self) -> bool:
        return self.abort_monitor is not None and bool(self.abort_monitor.active)

    def _gate_cells(self) -> list[Any]:
        from gate.core import Cell

        cells = []
        for (region, endpoint, user_class), kinds in self._second_cells.items():
            service = kinds.get("service")
            if service is None:
                continue
            corrected = kinds.get("corrected")
            cells.append(Cell(
                region=region, endpoint=endpoint, user_class=user_class,
                requests=int(service["requests"]), failures=int(service["failures"]),
                service=Histogram.decode(service["hist"]),
                corrected=Histogram.decode(corrected["hist"]) if corrected else None,
            ))
        return cells
