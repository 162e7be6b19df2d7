"""Synthetic run directories, written with collectors' real `RunWriter` from seeded values.

The one builder of run directories for tests, benchmarks and demos. Each cell, a
(region, endpoint, user_class) scope, draws its latencies from a seeded generator every second;
what was drawn is returned (`Recorded`), so a test computes the figures it expects from the
very values written, never from hard-coded numbers.

    written = write_run(tmp, RunSpec(scenario(["p95 < 100ms"]),
                                     {("us-east", "GET /api/pitches", "investor"):
                                      CellSpec(lognormal(30, 0.5, 100))}, seconds=10))
    written.path, written.values(after=2), written.counts()

Lower levels: `new_writer` (an open RunWriter), `write_seconds` (seconds of cells into it),
`write_cell` and `close_second` (one cell's second; the rest of a second), and `fill` (the
collectors' four standard cells, `KEYS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from collectors.hdr import Histogram
from collectors.rundir import RunWriter, StatsRow, stats_row
from collectors.validity import Validity

__all__ = [
    "KEYS",
    "START",
    "T0",
    "CellKey",
    "CellSpec",
    "GeneratorSample",
    "LatencyFn",
    "Recorded",
    "RunSpec",
    "WrittenRun",
    "close_second",
    "fill",
    "lognormal",
    "new_writer",
    "scenario",
    "uniform",
    "warm_then",
    "write_cell",
    "write_run",
    "write_seconds",
]

START = T0 = 1_700_000_000.0  # epoch seconds of the first recorded second
TARGET = "http://127.0.0.1:9"  # nothing listens there: the runs are never measured live

CellKey = tuple[str, str, str]  # (region, endpoint, user_class)
# (second, rng) -> latencies in ms recorded in that second
LatencyFn = Callable[[int, np.random.Generator], npt.ArrayLike]
# One load generator's health sample of a second: (worker, region, cpu_percent, lag_ms)
GeneratorSample = tuple[str, str, float, float]

KEYS: tuple[CellKey, ...] = (
    ("us-east", "GET /api/pitches", "investor"),
    ("us-east", "POST /api/pitches", "creator"),
    ("eu-west", "GET /api/pitches", "investor"),
    ("eu-west", "GET /api/pitches/{id}", "anonymous"),
)


def _no_failures(second: int) -> int:
    return 0


def _ten_users(second: int) -> int:
    return 10


def _steady_generator(second: int) -> list[GeneratorSample]:
    """One calm worker: 20 % CPU, 1 ms lag."""
    return [("w1", "us-east", 20.0, 1.0)]


def _climbing_generator(second: int) -> list[GeneratorSample]:
    """One worker whose CPU climbs a point a second (staying well below any self-check limit)
    and whose lag grows a tenth of a millisecond a second."""
    return [("w1", "us-east", 20.0 + second % 50, 1.0 + second / 10)]


@dataclass(frozen=True)
class CellSpec:
    latencies: LatencyFn
    failures: Callable[[int], int] = _no_failures  # second -> failed requests (capped)
    corrected_extra_ms: float | None = None  # open model: corrected = service + extra


@dataclass(frozen=True)
class RunSpec:
    scenario: dict[str, Any]
    cells: Mapping[CellKey, CellSpec]
    seconds: int = 10
    users: Callable[[int], int] = _ten_users
    validity: Validity = field(default_factory=Validity.ok)
    seed: int = 1
    events: Sequence[tuple[float, str, dict[str, Any]]] = ()


@dataclass
class Recorded:
    """Every latency (ms) and failure count written, per cell and second."""

    latencies: dict[CellKey, dict[int, np.ndarray]] = field(default_factory=dict)
    failures: dict[CellKey, dict[int, int]] = field(default_factory=dict)

    def add(self, key: CellKey, second: int, values: np.ndarray, failed: int) -> None:
        self.latencies.setdefault(key, {})[second] = values
        self.failures.setdefault(key, {})[second] = failed

    def select(self, region: str | None = None, endpoint: str | None = None,
               user_class: str | None = None, seconds: Iterable[int] | None = None
               ) -> np.ndarray:
        """The latencies of the cells and seconds chosen (None: all)."""
        wanted = None if seconds is None else set(seconds)
        parts = [
            v for key, by_second in self.latencies.items()
            if (region is None or key[0] == region) and (endpoint is None or key[1] == endpoint)
            and (user_class is None or key[2] == user_class)
            for second, v in by_second.items() if wanted is None or second in wanted
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def values(self, *, after: float = 0.0, cells: Sequence[CellKey] | None = None) -> np.ndarray:
        """The latencies of `cells` (default: all) from second `after` on."""
        chosen = cells if cells is not None else list(self.latencies)
        parts = [v for key in chosen for second, v in self.latencies[key].items()
                 if second >= after]
        return np.concatenate(parts) if parts else np.zeros(0)

    def counts(self, *, after: float = 0.0,
               cells: Sequence[CellKey] | None = None) -> tuple[int, int]:
        """(requests, failures) of `cells` (default: all) from second `after` on."""
        chosen = cells if cells is not None else list(self.latencies)
        requests = sum(len(v) for key in chosen for s, v in self.latencies[key].items()
                       if s >= after)
        failures = sum(f for key in chosen for s, f in self.failures[key].items() if s >= after)
        return requests, failures


@dataclass(kw_only=True)
class WrittenRun(Recorded):
    """A finished run directory and everything recorded into it."""

    path: Path


def new_writer(root: Path | str, name: str = "unit", scenario: Mapping[str, Any] | None = None,
               *, target: str = "embedded", topology: Mapping[str, Any] | None = None,
               start: float = START, **kwargs: Any) -> RunWriter:
    """An open RunWriter under `root` whose run starts at `start` (extra keyword arguments go
    to `RunWriter.create`, e.g. `clock`, `flush_interval_s`)."""
    return RunWriter.create(root, name, dict(scenario or {"name": name, "users": 10}), target,
                            dict(topology or {"edge": TARGET}),
                            started_at=datetime.fromtimestamp(start, UTC), **kwargs)


def write_cell(writer: RunWriter, t: float, key: CellKey, hist: Histogram, failures: int,
               *, corrected: Histogram | None = None) -> StatsRow:
    """One cell's second: its interval histogram(s); returns its stats row (not yet added)."""
    region, endpoint, user_class = key
    writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "service", hist)
    if corrected is not None:
        writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "corrected",
                                      corrected)
    return stats_row(t, region, endpoint, user_class, hist, failures)


def close_second(writer: RunWriter, t: float, rows: Sequence[Mapping[str, Any]], users: int,
                 generators: Iterable[GeneratorSample]) -> None:
    """The rest of a second once its cells are written: stats rows, load, generator health."""
    writer.add_stats(rows)
    writer.add_load(t, users, float(sum(int(r["requests"]) for r in rows)),
                    float(sum(int(r["failures"]) for r in rows)))
    for worker, region, cpu_percent, lag_ms in generators:
        writer.add_generator(t, worker, region, cpu_percent, lag_ms)


def write_seconds(writer: RunWriter, cells: Mapping[CellKey, CellSpec], seconds: Iterable[int],
                  rng: np.random.Generator, *, start: float = START,
                  users: Callable[[int], int] = _ten_users,
                  generators: Callable[[int], Iterable[GeneratorSample]] = _steady_generator,
                  recorded: Recorded | None = None) -> Recorded:
    """Write `seconds` (offsets from `start`) of every cell; returns what was recorded."""
    recorded = recorded if recorded is not None else Recorded()
    for second in seconds:
        t = start + second
        rows = []
        for key, cell in cells.items():
            values = np.asarray(cell.latencies(second, rng), dtype=float)
            failed = min(cell.failures(second), len(values))
            recorded.add(key, second, values, failed)
            corrected = (None if cell.corrected_extra_ms is None
                         else Histogram.from_values_ms(values + cell.corrected_extra_ms))
            rows.append(write_cell(writer, t, key, Histogram.from_values_ms(values), failed,
                                   corrected=corrected))
        close_second(writer, t, rows, users(second), generators(second))
    return recorded


def write_run(out_root: Path, spec: RunSpec) -> WrittenRun:
    """A finished run directory of `spec` under `out_root`."""
    name = str(spec.scenario.get("name", "synthetic"))
    writer = new_writer(out_root, name, spec.scenario, target=TARGET)
    recorded = write_seconds(writer, spec.cells, range(spec.seconds),
                             np.random.default_rng(spec.seed), users=spec.users)
    for t, kind, fields in spec.events:
        writer.add_event(t, kind, **fields)
    path = writer.finish(spec.validity)
    return WrittenRun(latencies=recorded.latencies, failures=recorded.failures, path=path)


def fill(writer: RunWriter, seconds: int, seed: int = 1, *, corrected: bool = False) -> Recorded:
    """`seconds` seconds of the four `KEYS` cells (log-normal, us-east faster than eu-west, a
    varying number of requests and 0-2 failures a second; `corrected` adds 5 ms), 10 + second
    users, a worker whose CPU climbs from 20 %, and an `http_server_active_requests` service
    sample a second."""
    cells = {key: CellSpec(_varying(30.0 if key[0] == "us-east" else 80.0),
                           failures=_cycling_failures(index),
                           corrected_extra_ms=5.0 if corrected else None)
             for index, key in enumerate(KEYS)}
    recorded = write_seconds(writer, cells, range(seconds), np.random.default_rng(seed),
                             users=lambda second: 10 + second, generators=_climbing_generator)
    writer.add_service_samples([
        {"t": T0 + second, "target": "edge", "metric": "http_server_active_requests",
         "labels": {}, "value": float(second)} for second in range(seconds)
    ])
    return recorded


def _varying(median_ms: float) -> LatencyFn:
    return lambda second, rng: rng.lognormal(np.log(median_ms), 0.8, int(rng.integers(5, 40)))


def _cycling_failures(offset: int) -> Callable[[int], int]:
    return lambda second: (second + offset) % 3


def uniform(low: float, high: float, per_second: int) -> LatencyFn:
    return lambda second, rng: rng.uniform(low, high, per_second)


def lognormal(median_ms: float, sigma: float, per_second: int) -> LatencyFn:
    return lambda second, rng: rng.lognormal(np.log(median_ms), sigma, per_second)


def warm_then(warm_seconds: int, warm: LatencyFn, then: LatencyFn) -> LatencyFn:
    return lambda second, rng: warm(second, rng) if second < warm_seconds else then(second, rng)


def scenario(thresholds: Sequence[object] = (), **extra: Any) -> dict[str, Any]:
    return {"name": "synthetic", "thresholds": list(thresholds), **extra}
