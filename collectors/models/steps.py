"""The load steps of a run, measured: what the capacity model reads (`measure_steps(run)`).

A breakpoint run (the `capacity` scenario, an open-model arrival rate in geometric steps)
records one ``step`` event per step in events.jsonl (``{"type": "step", "index": i, "rate":
r, "start": t0, "end": t1}``, the hold part of the step, epoch seconds). A closed-model run
has no such events: its concurrency plateaus (``capacity.concurrency_steps``) are its steps.

Per step: the offered rate (or users), the measured throughput (completed requests / hold
seconds), p95, p99 and mean from the step's merged HDR interval histograms, the error rate
from the stats table, and per second of the hold the completed requests and the histogram
counts (`StepSeconds`), which the knee's bootstrap resamples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from collectors.hdr import Histogram

if TYPE_CHECKING:
    from collectors.run import Run

__all__ = [
    "STEP_COLUMNS",
    "MeasuredSteps",
    "StepSeconds",
    "breakpoint_events",
    "breakpoint_steps",
    "frame_from_seconds",
    "measure_steps",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
LoadKind = Literal["rate", "users"]

STEP_COLUMNS = ["index", "rate", "users", "start", "end", "seconds", "requests", "throughput",
                "failures", "error_rate", "p95_ms", "p99_ms", "mean_ms"]


@dataclass(frozen=True, eq=False)
class StepSeconds:
    """One step's seconds: completed requests per second and each second's histogram counts
    over the step's non-empty buckets (``values_ms``: each bucket's lowest value)."""

    requests: FloatArray  # (S,)
    counts: IntArray  # (S, K)
    values_ms: FloatArray  # (K,)
    seconds: float  # the hold's length (throughput = requests / seconds)

    @classmethod
    def from_histograms(cls, per_second: Sequence[Histogram],
                        seconds: float | None = None) -> StepSeconds:
        hists = [h for h in per_second]
        width = max((h.counts.size for h in hists), default=0)
        full = np.zeros((len(hists), width), dtype=np.int64)
        for row, hist in enumerate(hists):
            full[row, : hist.counts.size] = hist.counts
        used = np.flatnonzero(full.sum(axis=0)) if width else np.zeros(0, dtype=np.int64)
        values = Histogram(full.sum(axis=0)).buckets_ms()[0] if used.size else np.zeros(0)
        counts = full[:, used]
        return cls(counts.sum(axis=1).astype(float), counts, np.asarray(values, dtype=float),
                   float(seconds if seconds is not None else len(hists)))

    @classmethod
    def from_latencies(cls, per_second: Sequence[ArrayLike],
                       seconds: float | None = None) -> StepSeconds:
        """From each second's latencies in ms (tests and benchmarks)."""
        return cls.from_histograms([Histogram.from_values_ms(v) for v in per_second], seconds)

    @property
    def total(self) -> int:
        return int(self.requests.sum())

    def histogram(self) -> Histogram:
        """The step's merged histogram, rebuilt from its seconds (bucket values only)."""
        return Histogram.from_values_ms(np.repeat(self.values_ms, self.counts.sum(axis=0)))


@dataclass(frozen=True, eq=False)
class MeasuredSteps:
    """A run's steps (`frame`, STEP_COLUMNS), their seconds, and how load was offered."""

    frame: pd.DataFrame
    seconds: tuple[StepSeconds, ...]
    load: LoadKind
    breakpoint: dict[str, Any] | None  # the run's "breakpoint" event, if any

    @property
    def load_column(self) -> str:
        return self.load


def breakpoint_events(run: Run) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The run's step events (by index) and its final breakpoint event (contract 2)."""
    def kind(event: dict[str, Any]) -> object:
        return event.get("type") if event.get("type") not in (None, "") else event.get("kind")

    steps = [e for e in run.events if kind(e) == "step" or e.get("kind") == "step"]
    final = [e for e in run.events if kind(e) == "breakpoint" or e.get("kind") == "breakpoint"]
    steps.sort(key=lambda e: (float(e.get("start", e["t"])), e.get("index", 0)))
    return steps, (final[-1] if final else None)


def _second_histograms(run: Run, start: float, end: float) -> list[Histogram]:
    from collectors.errors import RunDirError

    hists = []
    t = start
    while t < end - 1e-9:
        try:
            hists.append(run.histogram(start=t, end=min(t + 1.0, end)))
        except RunDirError:
            return []
        t += 1.0
    return hists


def _failures(run: Run, start: float, end: float) -> tuple[float, float]:
    stats = run.stats
    if not len(stats) or "t" not in stats:
        return 0.0, 0.0
    window = stats[(stats["t"] >= start) & (stats["t"] < end)]
    return float(window["requests"].sum()), float(window["failures"].sum())


def frame_from_seconds(seconds: Sequence[StepSeconds], load: Sequence[float],
                       kind: LoadKind = "rate",
                       error_rates: Sequence[float] | None = None) -> pd.DataFrame:
    """A steps frame (STEP_COLUMNS) from each step's seconds and offered load (pure; what
    tests and `measure_steps` share)."""
    rows = []
    for i, (sample, offered) in enumerate(zip(seconds, load, strict=True)):
        hist = sample.histogram()
        err = 0.0 if error_rates is None else float(error_rates[i])
        rows.append(_row(i, offered, kind, 0.0, sample.seconds, sample.seconds,
                         float(sample.total), hist, err * sample.total, err))
    return pd.DataFrame(rows, columns=STEP_COLUMNS)


def _row(index: int, offered: float, kind: LoadKind, start: float, end: float, seconds: float,
         requests: float, hist: Histogram, failures: float, error_rate: float) -> dict[str, Any]:
    empty = not hist.total
    return {"index": index, "rate": offered if kind == "rate" else math.nan,
            "users": offered if kind == "users" else math.nan, "start": start, "end": end,
            "seconds": seconds, "requests": requests,
            "throughput": requests / seconds if seconds > 0 else math.nan,
            "failures": failures, "error_rate": error_rate,
            "p95_ms": math.nan if empty else hist.quantile(0.95),
            "p99_ms": math.nan if empty else hist.quantile(0.99),
            "mean_ms": math.nan if empty else hist.mean_ms}


def _windows(run: Run) -> tuple[list[tuple[int, float, float, float]], LoadKind,
                                dict[str, Any] | None] | str:
    """(index, offered, start, end) per step, the load kind and the breakpoint event; or why
    the run has no steps."""
    events, final = breakpoint_events(run)
    if events:
        windows = [(int(e.get("index", i)), float(e.get("rate", math.nan)),
                    float(e["start"]), float(e["end"])) for i, e in enumerate(events)
                   if isinstance(e.get("start"), int | float) and isinstance(e.get("end"),
                                                                              int | float)]
        return [w for w in windows if w[3] - w[2] >= 1.0], "rate", final
    from collectors.models.capacity import CapacityError, concurrency_steps

    try:
        steps = concurrency_steps(run.load)
    except CapacityError as exc:
        return str(exc)
    if steps.empty:
        return "the run held no concurrency level long enough to measure (10 s or more)"
    return ([(i, float(r.users), float(r.start), float(r.end))
             for i, r in enumerate(steps.itertuples(index=False))], "users", None)


def measure_steps(run: Run) -> MeasuredSteps | str:
    """The run's steps measured (breakpoint events, else concurrency plateaus), or why not."""
    found = _windows(run)
    if isinstance(found, str):
        return found
    windows, kind, final = found
    if not windows:
        return "the run's step events hold no step of a second or more"
    rows, samples = [], []
    for index, offered, start, end in windows:
        per_second = _second_histograms(run, start, end)
        sample = StepSeconds.from_histograms(per_second, end - start)
        hist = Histogram.merge(per_second)
        requests, failures = _failures(run, start, end)
        completed = float(hist.total) if hist.total else requests
        rate = failures / requests if requests else 0.0
        rows.append(_row(index, offered, kind, start, end, end - start, completed, hist,
                         failures, rate))
        samples.append(sample)
    frame = pd.DataFrame(rows, columns=STEP_COLUMNS)
    return MeasuredSteps(frame, tuple(samples), kind, final)


def breakpoint_steps(run: Run) -> pd.DataFrame:
    """One row per step (contract 3): index, rate (or users), start, end, seconds, requests,
    throughput, failures, error_rate, p95_ms, p99_ms, mean_ms. Empty when the run has none."""
    measured = measure_steps(run)
    if isinstance(measured, str):
        return pd.DataFrame(columns=STEP_COLUMNS)
    return measured.frame
