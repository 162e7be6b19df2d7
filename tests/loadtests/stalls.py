"""A simulated load-generator worker whose event loop stalls: what its lag probe records and
what its requests measure, next to the service's own (true) times.

The worker's loop stalls for 107-125 ms every few seconds (issue 16's workers). Its lag probe
(the suite's `LagProbe`, 50 ms sleeps, a little scheduling noise each time) sleeps through
the stalls; its requests arrive uniformly, take a true (service) time, and a response that
comes back during a stall is read when the stall ends, late by what is left of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadtests.selfcheck import LagProbe

__all__ = ["StalledWorker", "stalled_worker"]


@dataclass(frozen=True)
class StalledWorker:
    stalls: list[tuple[float, float]]  # (start s, length s)
    lag_values: list[float]  # the probe's corrected values (ms)
    true_ms: np.ndarray  # each request's service time
    measured_ms: np.ndarray  # what the worker timed: the service time plus its stall residual


def stalled_worker(rng: np.random.Generator, *, seconds: float = 60.0, every_s: float = 4.0,
                   rate: float = 20.0, median_ms: float = 105.0,
                   sigma: float = 0.2) -> StalledWorker:
    stalls, t = [], float(rng.uniform(0.5, every_s))
    while t < seconds:
        stalls.append((t, float(rng.uniform(0.107, 0.125))))
        t += every_s * float(rng.uniform(0.7, 1.3))
    # a stall that never comes closes the lists (so a worker without stalls has one too)
    starts = np.array([s for s, _ in stalls] + [np.inf])
    ends = np.array([s + length for s, length in stalls] + [np.inf])
    probe, t = LagProbe(0.05), 0.0
    while t < seconds:
        wake = t + 0.05 + float(rng.uniform(0.0003, 0.0035))
        i = int(np.searchsorted(starts, wake)) - 1
        if i >= 0 and ends[i] > wake:
            wake = float(ends[i]) + float(rng.uniform(0.0003, 0.0035))
        probe.observe(wake - t)
        t = wake
    n = int(seconds * rate)
    sent = np.sort(rng.uniform(0.0, seconds, n))
    true = rng.lognormal(np.log(median_ms), sigma, n)
    back = sent + true / 1000.0
    i = np.maximum(np.searchsorted(starts, back) - 1, 0)
    inside = (starts[i] <= back) & (ends[i] > back)
    measured = true + np.where(inside, (ends[i] - back) * 1000.0, 0.0)
    return StalledWorker(stalls, probe.take(), true, measured)
