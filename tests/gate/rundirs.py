"""Synthetic run directories for the gate's tests, written with collectors' real RunWriter.

Latencies are drawn from seeded generators, so each test knows every recorded value and
computes the figures it expects from them (never hard-coded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from collectors.hdr import Histogram
from collectors.rundir import RunWriter
from collectors.validity import Validity

START = 1_700_000_000.0  # epoch seconds of the first recorded second

CellKey = tuple[str, str, str]
# (second, rng) -> latencies in ms recorded in that second
LatencyFn = Callable[[int, np.random.Generator], Sequence[float]]


@dataclass
class CellSpec:
    latencies: LatencyFn
    failures: Callable[[int], int] = lambda second: 0
    corrected_extra_ms: float | None = None  # open model: corrected = service + extra


@dataclass
class RunSpec:
    scenario: dict[str, Any]
    cells: Mapping[CellKey, CellSpec]
    seconds: int = 10
    users: Callable[[int], int] = lambda second: 10
    validity: Validity = field(default_factory=Validity.ok)
    seed: int = 1
    events: Sequence[tuple[float, str, dict[str, Any]]] = ()


@dataclass
class WrittenRun:
    path: Path
    # every recorded latency (ms) per cell and second, to compute expected figures from
    latencies: dict[CellKey, dict[int, np.ndarray]]
    failures: dict[CellKey, dict[int, int]]

    def values(self, *, after: float = 0.0, cells: Sequence[CellKey] | None = None) -> np.ndarray:
        chosen = cells if cells is not None else list(self.latencies)
        parts = [v for key in chosen for second, v in self.latencies[key].items()
                 if second >= after]
        return np.concatenate(parts) if parts else np.zeros(0)

    def counts(self, *, after: float = 0.0,
               cells: Sequence[CellKey] | None = None) -> tuple[int, int]:
        chosen = cells if cells is not None else list(self.latencies)
        requests = sum(len(v) for key in chosen for s, v in self.latencies[key].items()
                       if s >= after)
        failures = sum(f for key in chosen for s, f in self.failures[key].items() if s >= after)
        return requests, failures


def write_run(out_root: Path, spec: RunSpec) -> WrittenRun:
    rng = np.random.default_rng(spec.seed)
    name = str(spec.scenario.get("name", "synthetic"))
    writer = RunWriter.create(out_root, name, spec.scenario, "http://127.0.0.1:9",
                              {"edge": "http://127.0.0.1:9"},
                              started_at=datetime.fromtimestamp(START, UTC))
    latencies: dict[CellKey, dict[int, np.ndarray]] = {key: {} for key in spec.cells}
    failures: dict[CellKey, dict[int, int]] = {key: {} for key in spec.cells}
    for second in range(spec.seconds):
        t = START + second
        rows = []
        for key, cell in spec.cells.items():
            values = np.asarray(cell.latencies(second, rng), dtype=float)
            failed = min(cell.failures(second), len(values))
            latencies[key][second] = values
            failures[key][second] = failed
            region, endpoint, user_class = key
            hist = Histogram.from_values_ms(values)
            rows.append({"t": t, "region": region, "endpoint": endpoint,
                         "user_class": user_class, "requests": len(values), "failures": failed,
                         "p50_ms": hist.quantile(0.5), "p95_ms": hist.quantile(0.95),
                         "p99_ms": hist.quantile(0.99), "max_ms": hist.max_ms})
            writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "service", hist)
            if cell.corrected_extra_ms is not None:
                corrected = Histogram.from_values_ms(values + cell.corrected_extra_ms)
                writer.add_histogram_interval(t, 1.0, region, endpoint, user_class,
                                              "corrected", corrected)
        writer.add_stats(rows)
        total = sum(r["requests"] for r in rows)
        writer.add_load(t, spec.users(second), float(total),
                        float(sum(r["failures"] for r in rows)))
        writer.add_generator(t, "w1", "us-east", 20.0, 1.0)
    for t, kind, fields in spec.events:
        writer.add_event(t, kind, **fields)
    path = writer.finish(spec.validity)
    return WrittenRun(path, latencies, failures)


def uniform(low: float, high: float, per_second: int) -> LatencyFn:
    return lambda second, rng: rng.uniform(low, high, per_second)


def lognormal(median_ms: float, sigma: float, per_second: int) -> LatencyFn:
    return lambda second, rng: rng.lognormal(np.log(median_ms), sigma, per_second)


def warm_then(warm_seconds: int, warm: LatencyFn, then: LatencyFn) -> LatencyFn:
    return lambda second, rng: warm(second, rng) if second < warm_seconds else then(second, rng)


def scenario(thresholds: Sequence[object] = (), **extra: Any) -> dict[str, Any]:
    return {"name": "synthetic", "thresholds": list(thresholds), **extra}

