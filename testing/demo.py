"""Dashboard-sized synthetic runs on a known scalability curve, built on `testing.rundirs`.

For the dashboard's tests, `dashboards.screenshots` and the dashboard benchmark. The load
follows a known Universal Scalability Law curve (σ, κ, λ are parameters), so a test can check
that the capacity panel recovers them; latencies are log-normal around the response time the
interactive response time law gives at each step, scaled per region by the round trips the geo
latency model injects (pitchey/geo/regions.yaml `latency_ms`: asia slowest). Every figure is
drawn from a seeded generator and written through `testing.rundirs`.

`DemoRun` writes second by second (a test drives a live run with it); `write_demo_run` writes
a whole run at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collectors.hdr import Histogram
from collectors.rundir import StatsRow, stats_row
from collectors.validity import Validity
from testing.rundirs import CellKey, GeneratorSample, close_second, new_writer, write_cell

__all__ = ["DemoSpec", "DemoRun", "write_demo_run", "ENDPOINTS", "REGIONS", "USER_CLASSES"]

# region -> (traffic weight, latency factor): the geo model's round trips relative to europe's
REGIONS: dict[str, tuple[float, float]] = {
    "us-east": (0.30, 35 / 48), "us-west": (0.25, 42 / 48), "europe": (0.25, 1.0),
    "asia": (0.20, 65 / 48),
}
USER_CLASSES: dict[str, float] = {"creator": 0.3, "investor": 0.45, "production": 0.25}
# (endpoint, weight, latency factor): route templates as the load tests name them
ENDPOINTS: tuple[tuple[str, float, float], ...] = (
    ("GET /api/pitches", 30, 0.9), ("GET /api/pitches/{id}", 20, 0.8),
    ("GET /api/dashboard/creator/metrics", 6, 1.4), ("GET /api/messages", 6, 0.9),
    ("GET /api/notifications", 6, 0.7), ("POST /api/analytics/events", 5, 0.6),
    ("POST /api/pitches", 3, 1.6), ("PUT /api/pitches/{id}", 2, 1.5),
    ("GET /api/info-requests", 4, 1.0), ("POST /api/info-requests", 2, 1.3),
    ("POST /api/auth/creator/login", 2, 2.5), ("POST /api/messages", 2, 1.1),
    ("GET /api/dashboard/investor/metrics", 4, 1.3),
    ("GET /api/dashboard/production/metrics", 3, 1.3),
    ("POST /api/notifications/{id}/read", 2, 0.8), ("POST /api/auth/refresh", 2, 0.9),
    ("GET /api/analytics/events", 1, 1.8), ("POST /api/info-requests/{id}/approve", 1, 1.4),
    ("DELETE /api/pitches/{id}", 1, 1.2), ("POST /api/auth/logout", 1, 0.5),
)
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class DemoSpec:
    """What to synthesise. `steps` are the user counts held in turn, `step_s` seconds each."""

    steps: Sequence[int] = (10, 20, 40, 60, 80, 100)
    step_s: int = 20
    sigma: float = 0.002
    kappa: float = 1e-5
    think_s: float = 0.25
    base_response_s: float = 0.02
    endpoints: int = 8
    regions: Sequence[str] = tuple(REGIONS)
    user_classes: Sequence[str] = tuple(USER_CLASSES)
    failure_rate: float = 0.002
    seed: int = 7
    pool: int = 0  # >0: reuse that many pre-drawn samples per cell (fast, for big runs)
    scenario_name: str = "demo"
    start: float = START
    valid: bool = True
    extra_scenario: dict[str, Any] = field(default_factory=dict)

    @property
    def lam(self) -> float:
        """Throughput of one user: one request per response + think time."""
        return 1.0 / (self.base_response_s + self.think_s)

    @property
    def seconds(self) -> int:
        return len(self.steps) * self.step_s

    def users_at(self, second: int) -> int:
        return int(self.steps[min(second // self.step_s, len(self.steps) - 1)])

    def throughput(self, users: float) -> float:
        n = users
        return self.lam * n / (1 + self.sigma * (n - 1) + self.kappa * n * (n - 1))

    def response_s(self, users: float) -> float:
        return max(users / self.throughput(users) - self.think_s, self.base_response_s)

    def scenario(self) -> dict[str, Any]:
        return {
            "name": self.scenario_name, "topology": "geo", "target": "embedded",
            "think_time": {"min": self.think_s, "max": self.think_s},
            "stages": [{"kind": "hold", "duration": self.step_s, "users": u} for u in self.steps],
            "regions": {r: REGIONS[r][0] for r in self.regions},
            "thresholds": ["p95 < 100ms", "error_rate < 0.1%"],
            **self.extra_scenario,
        }


# Log-normal spread: p95 is about 2.1x the median at this sigma.
_SPREAD = 0.45


class DemoRun:
    """Writes a synthetic run second by second through a real RunWriter."""

    def __init__(self, out_root: Path | str, spec: DemoSpec | None = None, *,
                 flush_interval_s: float = 3600.0) -> None:
        self.spec = spec or DemoSpec()
        self._rng = np.random.default_rng(self.spec.seed)
        self._ticks = 0.0
        self.writer = new_writer(
            out_root, self.spec.scenario_name, self.spec.scenario(),
            topology={"edge": "http://127.0.0.1:8001",
                      "regions": {r: f"http://127.0.0.1:{8101 + i}"
                                  for i, r in enumerate(self.spec.regions)}},
            start=self.spec.start, clock=self._clock, flush_interval_s=flush_interval_s,
        )
        self.path = self.writer.path
        self.next_second = 0
        self._counters: dict[tuple[str, str, str], float] = {}
        self._pools: dict[tuple[int, int], list[tuple[StatsRow, str]]] = {}
        self._cells: list[CellKey] = [
            (r, e[0], u) for r in self.spec.regions for e in ENDPOINTS[: self.spec.endpoints]
            for u in self.spec.user_classes]
        self._shares = self._cell_shares()

    def _clock(self) -> float:
        return self._ticks

    def _cell_shares(self) -> np.ndarray:
        s = self.spec
        e_total = sum(w for _, w, _ in ENDPOINTS[: s.endpoints])
        r_total = sum(REGIONS[r][0] for r in s.regions)
        u_total = sum(USER_CLASSES[u] for u in s.user_classes)
        return np.array([REGIONS[r][0] / r_total * w / e_total * USER_CLASSES[u] / u_total
                         for r, (_, w, _), u in ((r, _endpoint(e), u) for r, e, u in self._cells)])

    # one second ------------------------------------------------------------------------------
    def write_seconds(self, count: int) -> None:
        for _ in range(count):
            self._write_second(self.next_second)
            self.next_second += 1

    def flush(self) -> None:
        self.writer.flush()

    def _write_second(self, second: int) -> None:
        s = self.spec
        t = s.start + second
        users = s.users_at(second)
        if second % s.step_s == 0:
            self.writer.add_event(t, "stage", name=f"hold {users}", users=users)
        rate = s.throughput(users)
        counts = self._rng.poisson(rate * self._shares)
        median_ms = s.response_s(users) * 1000.0 / math.exp(_SPREAD**2 / 2)
        rows: list[StatsRow] = []
        total = 0
        for key, n in zip(self._cells, counts, strict=True):
            if n == 0:
                continue
            rows.append(self._cell(t, key, int(n), median_ms, users))
            total += int(n)
        close_second(self.writer, t, rows, users, self._generators(users))
        self._service(t, total)
        self._ticks += 1.0

    def _cell(self, t: float, key: CellKey, n: int, median_ms: float, users: int) -> StatsRow:
        """One cell's `n` latencies and failures of this second, written; its stats row."""
        region, endpoint, user_class = key
        if not self.spec.pool:
            factor = REGIONS[region][1] * _endpoint(endpoint)[2]
            values = self._rng.lognormal(math.log(median_ms * factor), _SPREAD, n)
            return write_cell(self.writer, t, key, Histogram.from_values_ms(values),
                              self._failures(n, users))
        # Pooled samples ignore the region and endpoint factors: only the volume is realistic.
        pool = self._pools.setdefault((users, n), [])
        if len(pool) < self.spec.pool:
            hist = Histogram.from_values_ms(self._rng.lognormal(math.log(median_ms), _SPREAD, n))
            pool.append((stats_row(t, region, endpoint, user_class, hist, 0), hist.encode()))
        row, encoded = pool[int(self._rng.integers(len(pool)))]
        self.writer.add_histogram_interval(t, 1.0, region, endpoint, user_class, "service",
                                           encoded)
        return {**row, "t": t, "region": region, "endpoint": endpoint,
                "user_class": user_class, "failures": self._failures(n, users)}

    def _failures(self, n: int, users: int) -> int:
        return int(self._rng.binomial(n, min(self.spec.failure_rate * (1 + users / 100), 1)))

    def _generators(self, users: int) -> list[GeneratorSample]:
        found = []
        for i, region in enumerate(self.spec.regions):
            cpu = min(95.0, 8.0 + users * 0.15 + float(self._rng.normal(0, 2)))
            lag = abs(float(self._rng.normal(2.0 + users * 0.01, 1.0)))
            found.append((f"worker-{i}", region, cpu, lag))
        return found

    def _service(self, t: float, requests: int) -> None:
        """Cumulative counters per target, as a scrape of /metrics would see them."""
        targets = ["edge", *self.spec.regions]
        per_target = requests / len(targets)
        increments = {
            ("pitchey_cache_lookups_total", '{"cache":"app"}'): 0.9,
            ("pitchey_cache_hits_total", '{"cache":"app"}'): 0.9 * 0.55,
            ("pitchey_db_queries_total", '{"operation":"select"}'): 0.6,
            ("pitchey_db_queries_total", '{"operation":"insert"}'): 0.05,
            ("process_cpu_seconds_total", "{}"): 0.0021,
        }
        samples = []
        for target in targets:
            for (metric, labels), per_request in increments.items():
                key = (target, metric, labels)
                self._counters[key] = self._counters.get(key, 0.0) + per_request * per_target
                samples.append({"t": t, "target": target, "metric": metric, "labels": labels,
                                "value": self._counters[key]})
            samples.append({"t": t, "target": target, "metric": "pitchey_storage_used_bytes",
                            "labels": "{}", "value": 48e6})
        self.writer.add_service_samples(samples)

    def finish(self) -> Path:
        validity = Validity.ok() if self.spec.valid else Validity.invalid(
            "load generator CPU above 90% for 12 s")
        return self.writer.finish(validity)


def _endpoint(name: str) -> tuple[str, float, float]:
    return next(e for e in ENDPOINTS if e[0] == name)


def write_demo_run(out_root: Path | str, spec: DemoSpec | None = None) -> Path:
    """Write a complete synthetic run under `out_root`; returns its directory."""
    run = DemoRun(out_root, spec)
    run.write_seconds(run.spec.seconds)
    return run.finish()
