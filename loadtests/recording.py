"""Every request's latency, per second and per region x endpoint x user class, losslessly.

Workers append each latency (whole microseconds) to a per-second list: that is all the
request path pays. Every report (Locust's `report_to_master`, every 3 s) turns the completed
seconds into HDR histograms (`collectors.hdr.Histogram`, the run directory's layout,
HdrHistogram(1, 3_600_000_000, 3)) and ships them encoded. The master's `IntervalMerger` adds
the workers' histograms second by second (bucket counts add exactly, so nothing is lost) and
hands out a second once every live worker has reported past it. Every second of the load
is handed out, an empty one too: from the second the load began (`begin`) to the horizon all
workers passed (at most to the second the load ended, `end`), a second in which nothing
completed is a `MergedSecond` without cells (a row of zeros downstream), not a missing one.

Pure: no Locust, no clocks of its own (callers pass epoch seconds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.hdr import Histogram

__all__ = [
    "Cell",
    "CellKey",
    "IntervalMerger",
    "MergedSecond",
    "WorkerRecorder",
    "corrected_values_us",
    "seconds_to_hand_out",
    "us",
]

CellKey = tuple[str, str, str, str]  # (region, endpoint, user_class, kind)


def us(milliseconds: float) -> int:
    """Whole microseconds (at least 1, the histogram's lowest value)."""
    return max(1, int(milliseconds * 1000.0 + 0.5))


def corrected_values_us(value_us: int, interval_us: int) -> list[int]:
    """What HdrHistogram's `record_corrected_value(value, expected_interval)` records (the
    hdrhistogram package's definition): the value, then value - interval, value - 2 x interval,
    ... while the previous one exceeded the interval, so the last is in (0, interval]. A
    request that took L while its user was paced every `interval` stands for the requests the
    user would have sent meanwhile (coordinated omission). No interval (<= 0): the value."""
    values = [value_us]
    if interval_us > 0:
        while value_us > interval_us:
            value_us -= interval_us
            values.append(value_us)
    return values


@dataclass
class _Pending:
    service: list[int] = field(default_factory=list)
    corrected: list[int] = field(default_factory=list)
    requests: int = 0
    failures: int = 0


class WorkerRecorder:
    """One worker's latencies by second of completion; `drain()` encodes finished seconds."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._seconds: dict[int, dict[tuple[str, str], _Pending]] = {}
        self.unreachable = 0  # requests that never got a response (refused, reset, timeout)
        self.requests = 0

    def record(self, t: float, endpoint: str, user_class: str, service_ms: float,
               failed: bool, corrected_ms: float | None = None,
               interval_ms: float | None = None) -> None:
        """`corrected_ms`: the open model's time from the intended start. `interval_ms`: a
        closed-model user's constant pacing; the corrected kind then gets the value expanded
        as `corrected_values_us` does."""
        cells = self._seconds.get(int(t))
        if cells is None:
            cells = self._seconds[int(t)] = {}
        pending = cells.get((endpoint, user_class))
        if pending is None:
            pending = cells[(endpoint, user_class)] = _Pending()
        # us(), inlined: this runs once per request
        pending.service.append(max(1, int(service_ms * 1000.0 + 0.5)))
        if corrected_ms is not None:
            pending.corrected.append(max(1, int(corrected_ms * 1000.0 + 0.5)))
        elif interval_ms:
            pending.corrected.extend(corrected_values_us(pending.service[-1], us(interval_ms)))
        pending.requests += 1
        pending.failures += failed
        self.requests += 1

    def drain(self, before: float | None = None) -> dict[str, Any]:
        """Encode and forget the seconds before `before` (all of them when None).

        Returns {"blocks": [...], "upto": last drained second or None} for the master.
        """
        limit = math.inf if before is None else int(before)
        ready = sorted(t for t in self._seconds if t < limit)
        blocks = []
        for t in ready:
            for (endpoint, user_class), pending in self._seconds.pop(t).items():
                blocks.extend(_blocks(t, endpoint, user_class, pending))
        upto = (int(before) - 1) if before is not None else (ready[-1] if ready else None)
        return {"blocks": blocks, "upto": upto}


def _blocks(t: int, endpoint: str, user_class: str, pending: _Pending) -> list[dict[str, Any]]:
    out = []
    for kind, values in (("service", pending.service), ("corrected", pending.corrected)):
        if values:
            out.append({
                "t": t, "endpoint": endpoint, "user_class": user_class, "kind": kind,
                "requests": pending.requests, "failures": pending.failures,
                "hist": Histogram.from_values_us(values).encode(),
            })
    return out


def seconds_to_hand_out(due: Iterable[int], start: int | None, stop: int | None) -> list[int]:
    """The seconds to hand out, oldest first: those with data (`due`) and every second from
    `start` (the first not handed out yet; the first second with data when None) to `stop`
    (the last to fill to; the last second with data when None), data or not."""
    seconds = set(due)
    low = start if start is not None else min(seconds, default=None)
    high = stop if stop is not None else max(seconds, default=None)
    if low is not None and high is not None:
        seconds.update(range(low, high + 1))
    return sorted(seconds)


@dataclass
class Cell:
    requests: int
    failures: int
    hist: Histogram


@dataclass(frozen=True)
class MergedSecond:
    t: int
    cells: Mapping[CellKey, Cell]

    def requests(self) -> int:
        return sum(c.requests for k, c in self.cells.items() if k[3] == "service")

    def failures(self) -> int:
        return sum(c.failures for k, c in self.cells.items() if k[3] == "service")

    def by_region(self) -> dict[str, Cell]:
        """Service-time cells merged per region (for progress lines)."""
        grouped: dict[str, list[Cell]] = {}
        for (region, _e, _u, kind), cell in self.cells.items():
            if kind == "service":
                grouped.setdefault(region, []).append(cell)
        return {region: _merge_cells(cells) for region, cells in grouped.items()}


def _merge_cells(cells: Iterable[Cell]) -> Cell:
    cells = list(cells)
    return Cell(
        requests=sum(c.requests for c in cells),
        failures=sum(c.failures for c in cells),
        hist=Histogram.merge(c.hist for c in cells),
    )


class IntervalMerger:
    """The master's merge of all workers' per-second histograms.

    A second is complete once every live worker's watermark (`upto`) has passed it; a worker
    silent for `stale_after_s` no longer holds seconds back (it is reported by the caller).
    """

    def __init__(self, stale_after_s: float = 15.0) -> None:
        self._stale_after_s = stale_after_s
        self._pending: dict[int, dict[CellKey, list[Cell]]] = {}
        self._watermarks: dict[str, int | None] = {}
        self._last_seen: dict[str, float] = {}
        self._whole: dict[CellKey, list[Histogram]] = {}
        self._whole_counts: dict[CellKey, list[int]] = {}
        self._flushed_upto: int | None = None
        self._first: int | None = None  # the load's first second (`begin`)
        self._last: int | None = None  # the load's last second (`end`)
        self.late_blocks = 0  # blocks that arrived for a second already handed out

    def add(self, worker: str, region: str, report: Mapping[str, Any], now: float) -> None:
        self._last_seen[worker] = now
        for block in report.get("blocks", ()):
            t = int(block["t"])
            key = (region, block["endpoint"], block["user_class"], block["kind"])
            cell = Cell(int(block["requests"]), int(block["failures"]),
                        Histogram.decode(block["hist"]))
            if self._flushed_upto is not None and t <= self._flushed_upto:
                self.late_blocks += 1  # still counted in the whole-run figures
                self._add_whole(key, cell)
                continue
            self._pending.setdefault(t, {}).setdefault(key, []).append(cell)
        upto = report.get("upto")
        if upto is not None:
            previous = self._watermarks.get(worker)
            self._watermarks[worker] = int(upto) if previous is None else max(previous,
                                                                               int(upto))
        else:
            self._watermarks.setdefault(worker, None)

    def begin(self, t: float) -> None:
        """The load began at epoch `t`: seconds are handed out from its second on."""
        if self._first is None:
            self._first = int(t)

    def end(self, t: float) -> None:
        """The load ended at epoch `t`: no empty second is made up after the last second it
        ran in (the one before `t` when `t` is a whole second)."""
        self._last = math.ceil(t) - 1

    def join(self, worker: str, now: float) -> None:
        """A worker connected: hold seconds back until it reports."""
        self._watermarks.setdefault(worker, None)
        self._last_seen.setdefault(worker, now)

    def retire(self, worker: str) -> None:
        self._watermarks.pop(worker, None)
        self._last_seen.pop(worker, None)

    def stale_workers(self, now: float) -> list[str]:
        return [w for w, seen in self._last_seen.items() if now - seen > self._stale_after_s]

    def complete(self, now: float) -> list[MergedSecond]:
        """Seconds every live worker has reported past, oldest first."""
        live = [mark for worker, mark in self._watermarks.items()
                if now - self._last_seen.get(worker, now) <= self._stale_after_s]
        if not live or any(mark is None for mark in live):
            return []
        horizon = min(mark for mark in live if mark is not None)
        return self._flush(horizon)

    def drain_all(self) -> list[MergedSecond]:
        """Every second left, to the end of the load (`end`) when it is known."""
        return self._flush(None)

    def whole(self) -> dict[CellKey, Cell]:
        """Whole-run cells: every flushed second (and late block) merged."""
        return {
            key: Cell(counts[0], counts[1], Histogram.merge(self._whole[key]))
            for key, counts in self._whole_counts.items()
        }

    def _flush(self, horizon: int | None) -> list[MergedSecond]:
        due = [t for t in self._pending if horizon is None or t <= horizon]
        start = self._flushed_upto + 1 if self._flushed_upto is not None else self._first
        stop = horizon if horizon is not None else self._last
        if stop is not None and self._last is not None:
            stop = min(stop, self._last)
        seconds = seconds_to_hand_out(due, start, stop)
        merged = []
        for t in seconds:
            parts_by_key = self._pending.pop(t, {})
            cells = {key: _merge_cells(parts) for key, parts in parts_by_key.items()}
            for key, cell in cells.items():
                self._add_whole(key, cell)
            merged.append(MergedSecond(t, cells))
            self._flushed_upto = t if self._flushed_upto is None else max(self._flushed_upto, t)
        return merged

    def _add_whole(self, key: CellKey, cell: Cell) -> None:
        hists = self._whole.setdefault(key, [])
        hists.append(cell.hist)
        if len(hists) > 64:  # keep memory flat on long runs: fold the list into one histogram
            self._whole[key] = [Histogram.merge(hists)]
        counts = self._whole_counts.setdefault(key, [0, 0])
        counts[0] += cell.requests
        counts[1] += cell.failures
