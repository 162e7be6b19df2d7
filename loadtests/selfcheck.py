"""A run checks itself: is the load generator, not the service, the bottleneck?

Each worker samples its own CPU (psutil) once a second and probes its event loop: a greenlet
asks to sleep `interval` and measures how late it wakes up (gevent loop lag, the scheduling
delay every request's timer also suffers). `assess()` turns the samples into a verdict with
reasons a person can act on. Pure except `CpuMeter`, which reads psutil.

The rules (each protects a figure the run reports):

- CPU: a worker at or above `cpu_percent` for more than `cpu_share` of the judged seconds, or
  for `cpu_sustain` seconds in a row: its event loop, not the service, paced the requests.
- Loop lag p95 above `lag_p95`: the generator's own stalls are in every latency it timed.
- Open model: more than `late_share` of the arrivals started later than `late_tolerance`
  (the arrivals the service was offered are not the plan's; `no_free_user` says how many found
  the user pool used up).
- The target unreachable, or nothing measured.

The loop-lag probes are also the generator's *hiccups* as jHiccup measures them
(`hiccup_figures`): the gate (``gate.core.generator_doubt``) marks a latency check the
generator's own hiccup at that percentile could account for as not judgeable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collectors.hdr import Histogram

__all__ = [
    "HICCUP_QUANTILES",
    "Arrivals",
    "CpuMeter",
    "GeneratorSample",
    "LagProbe",
    "Limits",
    "assess",
    "generator_figures",
    "hiccup_figures",
    "longest_run_above",
    "p95",
    "share_above",
]

HICCUP_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class Limits:
    cpu_percent: float = 90.0
    cpu_sustain_s: float = 10.0
    lag_p95_ms: float = 50.0
    unreachable_ratio: float = 0.5
    # share of a worker's judged seconds at or above cpu_percent past which it is saturated
    cpu_share: float = 0.05  # i.e. its CPU p95 above the limit
    # open model: share of the started arrivals later than late_tolerance past which the
    # service was not offered the planned arrivals
    late_share: float = 0.01


@dataclass(frozen=True)
class Arrivals:
    """An open-model run's arrivals over the run (all workers): planned, started, late."""

    planned: int
    started: int
    late: int  # started later than tolerance_ms
    tolerance_ms: float
    max_lateness_ms: float
    no_free_user: int = 0  # due while every user of the pool was busy (the pool ran out)
    pool_users: int = 0

    @property
    def dropped(self) -> int:
        return max(0, self.planned - self.started)

    @property
    def late_fraction(self) -> float:
        return self.late / self.started if self.started else 0.0


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
    arrivals: Arrivals | None = None,
) -> tuple[bool, tuple[str, ...]]:
    """(valid, reasons): saturated generator CPU (share of the time, or an unbroken stretch),
    loop lag, open-model arrivals late, unreachable target, no traffic."""
    reasons = list(notes)
    by_worker: dict[str, list[GeneratorSample]] = {}
    for sample in samples:
        by_worker.setdefault(sample.worker, []).append(sample)
    for worker, own in sorted(by_worker.items()):
        saturated = _saturated(worker, own, limits)
        if saturated:
            reasons.append(saturated)
    if arrivals is not None and arrivals.started and arrivals.late_fraction > limits.late_share:
        reasons.append(_late_reason(arrivals, limits))
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


def _saturated(worker: str, own: Sequence[GeneratorSample], limits: Limits) -> str:
    """Why one worker's CPU says it was saturated, or "" when it was not."""
    sustained = longest_run_above(own, limits.cpu_percent)
    share = share_above(own, limits.cpu_percent)
    if sustained < limits.cpu_sustain_s and share <= limits.cpu_share:
        return ""
    above = sum(1 for s in own if s.cpu_percent >= limits.cpu_percent)
    return (
        f"load generator saturated: worker {worker} ({own[0].region}) CPU at or above "
        f"{limits.cpu_percent:g}% for {share:.0%} of the judged seconds ({above} of {len(own)}"
        f" s, limit {limits.cpu_share:.0%}), at most {sustained:.0f} s in a row (limit "
        f"{limits.cpu_sustain_s:g} s)"
    )


def _late_reason(arrivals: Arrivals, limits: Limits) -> str:
    """The open model fell behind its plan: how many arrivals, how late, and why."""
    text = (
        f"open model fell behind: {arrivals.late:,} of {arrivals.started:,} arrivals started "
        f"more than {arrivals.tolerance_ms:g} ms late ({arrivals.late_fraction:.1%}, limit "
        f"{limits.late_share:.0%}), the latest by {arrivals.max_lateness_ms:,.0f} ms"
    )
    if arrivals.no_free_user:
        pool = f" of {arrivals.pool_users:,} users" if arrivals.pool_users else ""
        text += (f"; the user pool{pool} ran out: {arrivals.no_free_user:,} arrivals were due "
                 f"with every user busy")
    if arrivals.dropped:
        text += f"; {arrivals.dropped:,} of {arrivals.planned:,} planned arrivals never started"
    return text


def share_above(samples: Sequence[GeneratorSample], limit: float) -> float:
    """Share of `samples` (a worker's seconds) at or above `limit` CPU percent (0 for none)."""
    if not samples:
        return 0.0
    return sum(1 for s in samples if s.cpu_percent >= limit) / len(samples)


def hiccup_figures(hiccups: Histogram) -> dict[str, float]:
    """The generator's hiccups as jHiccup reports them: {p50, p90, p95, p99, p99.9, max} in
    ms over the coordinated-omission-corrected loop-lag probes (share of the time the loop was
    at least that late)."""
    figures = {quantile_label(q): hiccups.quantile(q) for q in HICCUP_QUANTILES}
    figures["max"] = hiccups.max_ms
    return figures


def generator_figures(
    samples: Sequence[GeneratorSample], lag: Histogram,
    lag_by_region: Mapping[str, Histogram] | None = None,
) -> dict[str, Any]:
    """The summary's `generator` block over the judged seconds (after the warm-up): CPU p95
    over worker-seconds, loop-lag p95 over probes, the hiccups (figures and the encoded
    histogram, overall and per region, for the gate) and the share of seconds at each
    worker's worst."""
    by_region = lag_by_region or {}
    return {
        "cpu_percent_p95": p95([s.cpu_percent for s in samples]),
        "cpu_percent_max": max((s.cpu_percent for s in samples), default=0.0),
        "lag_ms_p95": lag.quantile(0.95),
        "lag_ms_max": lag.max_ms,
        "workers": float(len({s.worker for s in samples})),
        "hiccup_ms": hiccup_figures(lag),
        "hiccup_window": "judged",
        "hiccup_hist": lag.encode(),
        "hiccup_hist_by_region": {r: h.encode() for r, h in sorted(by_region.items())},
    }


def quantile_label(q: float) -> str:
    """0.95 -> "p95", 0.999 -> "p99.9" (as collectors.run spells summary keys)."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")
