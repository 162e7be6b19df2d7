"""A run checks itself: is the load generator, not the service, the bottleneck?

Each worker samples its own CPU (psutil) once a second and probes its event loop: a greenlet
asks to sleep `interval` and measures how late it wakes up (gevent loop lag, the scheduling
delay every request's timer also suffers). `assess()` turns the samples into a verdict with
reasons a person can act on. Pure except `CpuMeter`, which reads psutil.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from collectors.hdr import Histogram

__all__ = [
    "CpuMeter",
    "GeneratorSample",
    "LagProbe",
    "Limits",
    "assess",
    "generator_figures",
    "longest_run_above",
    "p95",
]


@dataclass(frozen=True)
class Limits:
    cpu_percent: float = 90.0
    cpu_sustain_s: float = 10.0
    lag_p95_ms: float = 50.0
    unreachable_ratio: float = 0.5


@dataclass(frozen=True)
class GeneratorSample:
    t: float
    worker: str
    region: str
    cpu_percent: float
    lag_ms: float


class LagProbe:
    """Collects wake-up lateness of a periodic sleep; `take()` returns this second's values.

    A stall of L ms also hid the probes that should have run during it, so, as jHiccup does,
    it is recorded as L, L - interval, L - 2 x interval, ... (coordinated-omission corrected):
    the values then weigh each lagging moment by how long it lasted, and a p95 over them
    reads "5% of the time the loop was at least this late".
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self._values_ms: list[float] = []

    def observe(self, slept_s: float) -> float:
        """Record one probe: `slept_s` is how long a sleep of `interval_s` actually took."""
        lag_ms = max(0.0, (slept_s - self.interval_s) * 1000.0)
        self._values_ms.append(lag_ms)
        interval_ms = self.interval_s * 1000.0
        hidden = lag_ms - interval_ms
        while hidden > 0:
            self._values_ms.append(hidden)
            hidden -= interval_ms
        return lag_ms

    def take(self) -> list[float]:
        values, self._values_ms = self._values_ms, []
        return values


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return float(ordered[rank - 1])


class CpuMeter:
    """CPU percent of this process (and its threads) since the previous call."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)

    def read(self) -> float:
        return float(self._process.cpu_percent(None))


def longest_run_above(samples: Iterable[GeneratorSample], limit: float) -> float:
    """Longest stretch (seconds) of consecutive samples at or above `limit` CPU percent; a gap
    of more than two seconds between samples breaks a stretch."""
    longest, start, previous = 0.0, None, None
    for sample in sorted(samples, key=lambda s: s.t):
        if sample.cpu_percent < limit:
            start = previous = None
            continue
        if start is None or previous is None or sample.t - previous > 2.0:
            start = sample.t
        longest = max(longest, sample.t - start + 1.0)
        previous = sample.t
    return longest


def assess(
    samples: Sequence[GeneratorSample],
    lag: Histogram,
    limits: Limits,
    *,
    requests: int,
    unreachable: int,
    notes: Sequence[str] = (),
) -> tuple[bool, tuple[str, ...]]:
    """(valid, reasons): saturated generator CPU, loop lag, unreachable target, no traffic."""
    reasons = list(notes)
    by_worker: dict[str, list[GeneratorSample]] = {}
    for sample in samples:
        by_worker.setdefault(sample.worker, []).append(sample)
    for worker, own in sorted(by_worker.items()):
        sustained = longest_run_above(own, limits.cpu_percent)
        if sustained >= limits.cpu_sustain_s:
            reasons.append(
                f"load generator saturated: worker {worker} ({own[0].region}) CPU at or above "
                f"{limits.cpu_percent:g}% for {sustained:.0f} s (limit {limits.cpu_sustain_s:g} s)"
            )
    lag_p95 = lag.quantile(0.95)
    if lag.total and lag_p95 > limits.lag_p95_ms:
        reasons.append(
            f"load generator lagging: scheduling lag p95 {lag_p95:.1f} ms "
            f"(limit {limits.lag_p95_ms:g} ms)"
        )
    if requests == 0:
        reasons.append("no request completed: nothing was measured")
    elif unreachable / requests > limits.unreachable_ratio:
        reasons.append(
            f"target unreachable: {unreachable} of {requests} requests got no response "
            f"(limit {limits.unreachable_ratio:.0%})"
        )
    return (not reasons, tuple(dict.fromkeys(reasons)))


def generator_figures(samples: Sequence[GeneratorSample], lag: Histogram) -> Mapping[str, float]:
    """The summary's `generator` block: CPU p95 over worker-seconds, loop-lag p95 over probes."""
    return {
        "cpu_percent_p95": p95([s.cpu_percent for s in samples]),
        "cpu_percent_max": max((s.cpu_percent for s in samples), default=0.0),
        "lag_ms_p95": lag.quantile(0.95),
        "lag_ms_max": lag.max_ms,
        "workers": float(len({s.worker for s in samples})),
    }
