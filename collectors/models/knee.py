"""One instance's capacity at a p95 target, read from measured steps (pure).

`knee(steps, p95_target_ms)`: with the steps in the order load was offered, a step *holds*
when its p95 is at or below the target and its error rate at or below 1 %. The knee is the
largest throughput one instance holds: linearly interpolated in p95 between the last step
that holds and the first that does not (X = X_i + (X_j − X_i)·(T − p_i)/(p_j − p_i), never
below X_i). When every step held, the knee was not reached and the answer is "at least" the
highest throughput measured; when the first step already failed it is "below the first
step". The interval is a bootstrap over the seconds of each step (each second's completed
requests and histogram resampled with replacement, the knee read again; seeded), not a fit's
covariance.

`capacity_estimate(knee, x_max_rps, usl_peak_rps)` cross-checks the knee against X_max (the
bottleneck's cores ÷ its CPU demand per request: a 100 %-CPU ceiling) and the USL fit's
peak, and says which figure is trusted and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from collectors.models.steps import StepSeconds

__all__ = [
    "DISAGREEMENT",
    "MAX_ERROR_RATE",
    "CapacityEstimate",
    "Knee",
    "bootstrap_steps",
    "capacity_estimate",
    "knee",
    "read_knee",
]

FloatArray = NDArray[np.float64]
KneeStatus = Literal["reached", "not_reached", "below_first"]
Source = Literal["knee", "x_max", "usl", "none"]

MAX_ERROR_RATE = 0.01  # a step with more errors does not hold (the breakpoint's own limit)
DISAGREEMENT = 0.25  # knee and X_max further apart than this are reported


@dataclass(frozen=True)
class Knee:
    """The largest throughput one instance held at the p95 target, with its interval."""

    status: KneeStatus
    throughput_rps: float | None  # the knee; "at least" when not reached; None below first
    low: float | None
    high: float | None
    offered: float | None  # offered load (rate or users) at the knee, interpolated
    held: int | None  # position (in load order) of the last step that held
    failed: int | None  # position of the first step that did not
    reason: str  # why the failed step failed: "p95", "errors" or ""
    p95_target_ms: float
    resamples: int
    confidence: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "throughput_rps": self.throughput_rps, "low": self.low,
                "high": self.high, "offered": self.offered, "held": self.held,
                "failed": self.failed, "reason": self.reason,
                "p95_target_ms": self.p95_target_ms, "resamples": self.resamples,
                "confidence": self.confidence, "text": self.text}


@dataclass(frozen=True)
class _Reading:
    status: KneeStatus
    value: float
    offered: float
    held: int | None
    failed: int | None
    reason: str


def read_knee(throughput: Sequence[float] | FloatArray, p95_ms: Sequence[float] | FloatArray,
              target_ms: float, errors_ok: Sequence[bool] | None = None,
              offered: Sequence[float] | None = None) -> _Reading:
    """The knee of one set of steps already in load order (no interval)."""
    x = np.asarray(throughput, dtype=float)
    p = np.asarray(p95_ms, dtype=float)
    ok_err = np.ones(x.size, bool) if errors_ok is None else np.asarray(errors_ok, bool)
    load = np.arange(x.size, dtype=float) if offered is None else np.asarray(offered, float)
    holds = (p <= target_ms) & ok_err
    failing = np.flatnonzero(~holds)
    if failing.size == 0:
        top = int(np.argmax(x))
        return _Reading("not_reached", float(x[top]), float(load[top]), x.size - 1, None, "")
    j = int(failing[0])
    reason = "p95" if p[j] > target_ms else "errors"
    if j == 0:
        return _Reading("below_first", math.nan, math.nan, None, 0, reason)
    i = j - 1
    if reason == "p95" and p[j] > p[i]:
        frac = (target_ms - p[i]) / (p[j] - p[i])
        value = max(float(x[i] + frac * (x[j] - x[i])), float(x[i]))
        at = float(load[i] + frac * (load[j] - load[i]))
    else:
        value, at = float(x[i]), float(load[i])
    return _Reading("reached", value, at, i, j, reason)


def bootstrap_steps(seconds: Sequence[StepSeconds], resamples: int,
                    rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """(throughput, p95) of every step in each of `resamples` bootstrap resamples of the
    steps' seconds: two (resamples, steps) arrays."""
    x = np.full((resamples, len(seconds)), np.nan)
    p = np.full((resamples, len(seconds)), np.nan)
    for k, step in enumerate(seconds):
        n = step.requests.size
        if n == 0 or step.values_ms.size == 0:
            continue
        draws = rng.integers(0, n, size=(resamples, n))
        weights = np.zeros((resamples, n))
        np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
        x[:, k] = weights @ step.requests / step.seconds
        cumulative = np.cumsum(weights @ step.counts.astype(float), axis=1)
        total = cumulative[:, -1]
        rank = np.maximum(np.floor(0.95 * total + 0.5), 1.0)
        index = np.minimum((cumulative < rank[:, None]).sum(axis=1), step.values_ms.size - 1)
        p[:, k] = np.where(total > 0, step.values_ms[index], np.nan)
    return x, p


def _order(steps: pd.DataFrame) -> pd.DataFrame:
    for column in ("rate", "users"):
        if column in steps and steps[column].notna().all() and len(steps):
            return steps.sort_values(column, kind="stable")
    return steps


def _load_of(steps: pd.DataFrame) -> tuple[str, list[float] | None]:
    for column in ("rate", "users"):
        if column in steps and steps[column].notna().all() and len(steps):
            return column, [float(v) for v in steps[column]]
    return "", None


def knee(steps: pd.DataFrame, p95_target_ms: float,
         seconds: Sequence[StepSeconds] | None = None, *,
         max_error_rate: float = MAX_ERROR_RATE, resamples: int = 500, seed: int = 0,
         confidence: float = 0.95) -> Knee:
    """The knee of `steps` (throughput, p95_ms, optional error_rate, rate or users) at the
    target, with a bootstrap interval over `seconds` (one StepSeconds per row of `steps`, in
    the same order) when given."""
    usable = steps.reset_index(drop=True)
    keep = usable["p95_ms"].notna() & usable["throughput"].notna()
    order = _order(usable[keep])
    positions = [int(i) for i in order.index]
    unit, load = _load_of(order)
    errors = (order["error_rate"].fillna(0.0) <= max_error_rate).tolist() \
        if "error_rate" in order else None
    point = read_knee(order["throughput"].to_numpy(float), order["p95_ms"].to_numpy(float),
                      p95_target_ms, errors, load)
    low = high = None
    done = 0
    if seconds is not None and resamples > 0 and point.status != "below_first":
        chosen = [seconds[i] for i in positions]
        xs, ps = bootstrap_steps(chosen, resamples, np.random.default_rng(seed))
        values = np.array([read_knee(xs[b], ps[b], p95_target_ms, errors, load).value
                           for b in range(resamples)])
        values = values[np.isfinite(values)]
        if values.size:
            tail = (1.0 - confidence) / 2.0 * 100.0
            low, high = (float(v) for v in np.percentile(values, [tail, 100.0 - tail]))
            done = resamples
    value = None if point.status == "below_first" else point.value
    return Knee(point.status, value, low, high,
                None if math.isnan(point.offered) else point.offered, point.held,
                point.failed, point.reason, p95_target_ms, done, confidence,
                _knee_text(point, order, unit, p95_target_ms, low, high, confidence))


def _step_text(order: pd.DataFrame, position: int, unit: str) -> str:
    row = order.iloc[position]
    load = (f"{row[unit]:,.4g} {'req/s offered' if unit == 'rate' else 'users'}"
            if unit else f"step {position + 1}")
    return f"{load}: {row['throughput']:,.1f} req/s, p95 {row['p95_ms']:,.1f} ms"


def _knee_text(point: _Reading, order: pd.DataFrame, unit: str, target: float,
               low: float | None, high: float | None, confidence: float) -> str:
    ci = (f" ({confidence:.0%} bootstrap interval {low:,.1f}–{high:,.1f})"
          if low is not None and high is not None else "")
    if point.status == "below_first":
        why = "p95" if point.reason == "p95" else "error rate"
        return (f"below the first step: its {why} already missed the target "
                f"({_step_text(order, 0, unit)}, p95 target {target:g} ms)")
    if point.status == "not_reached":
        return (f"not reached: every step held p95 ≤ {target:g} ms, so at least "
                f"{point.value:,.1f} req/s{ci}")
    assert point.held is not None and point.failed is not None
    between = (f"between {_step_text(order, point.held, unit)} and "
               f"{_step_text(order, point.failed, unit)}")
    if point.reason == "errors":
        return (f"{point.value:,.1f} req/s{ci}: the last step that held, the next had more "
                f"than {MAX_ERROR_RATE:.0%} errors ({between})")
    return f"{point.value:,.1f} req/s{ci} at p95 = {target:g} ms, interpolated {between}"


@dataclass(frozen=True)
class CapacityEstimate:
    """One instance's throughput at the p95 target, the figure trusted and why."""

    per_instance_rps: float | None
    low: float | None
    high: float | None
    source: Source
    trusted: str
    why: str
    knee: Knee | None
    x_max_rps: float | None
    usl_peak_rps: float | None
    x_max_note: str = ""
    usl_note: str = ""
    disagreements: tuple[str, ...] = field(default=())

    @property
    def available(self) -> bool:
        return self.per_instance_rps is not None and self.per_instance_rps > 0

    def to_json(self) -> dict[str, Any]:
        return {"per_instance_rps": self.per_instance_rps, "low": self.low, "high": self.high,
                "source": self.source, "trusted": self.trusted, "why": self.why,
                "knee": None if self.knee is None else self.knee.to_json(),
                "x_max_rps": self.x_max_rps, "x_max_note": self.x_max_note,
                "usl_peak_rps": self.usl_peak_rps, "usl_note": self.usl_note,
                "disagreements": list(self.disagreements)}


def _apart(a: float, b: float) -> float:
    return abs(a - b) / min(a, b) if min(a, b) > 0 else math.inf


def _x_max_disagreement(value: float, x_max: float, what: str) -> str | None:
    if _apart(value, x_max) <= DISAGREEMENT:
        return None
    if value < x_max:
        return (f"{what} {value:,.1f} req/s is {1 - value / x_max:.0%} below X_max "
                f"{x_max:,.1f} req/s; the knee is trusted: it is measured at the p95 target and "
                "includes the queueing the target allows, while X_max is the bottleneck's "
                "100 %-CPU ceiling, which no instance reaches at that p95")
    return (f"{what} {value:,.1f} req/s is {value / x_max - 1:.0%} above X_max {x_max:,.1f} "
            "req/s; the knee is trusted because it was measured: X_max counts only the CPU "
            "scraped (a process missing from the scrape, or more cores than counted, makes it "
            "too low)")


def capacity_estimate(knee_: Knee | None, x_max_rps: float | None,
                      usl_peak_rps: float | None, *, x_max_note: str = "",
                      usl_note: str = "", no_knee: str = "the run has no load steps"
                      ) -> CapacityEstimate:
    """The trusted per-instance throughput: the knee when the run reached it; "at least" the
    highest step held, bounded above by X_max, when it did not; X_max alone (a ceiling) when
    the run has no steps; nothing when the first step already missed the target."""
    x_max = x_max_rps if x_max_rps is not None and x_max_rps > 0 and math.isfinite(
        x_max_rps) else None
    usl = usl_peak_rps if usl_peak_rps is not None and math.isfinite(usl_peak_rps) else None
    disagreements: list[str] = []
    if knee_ is not None and knee_.throughput_rps is not None:
        value = knee_.throughput_rps
        low = knee_.low if knee_.low is not None else value
        high = knee_.high if knee_.high is not None else value
        if x_max is not None:
            said = _x_max_disagreement(value, x_max, "the knee" if knee_.status == "reached"
                                       else "the highest step held")
            disagreements += [said] if said else []
        if usl is not None and value > usl * (1 + DISAGREEMENT):
            disagreements.append(
                f"the knee {value:,.1f} req/s is above the USL fit's peak {usl:,.1f} req/s; "
                "the knee is trusted: the USL is a three-parameter fit to a few steps")
        if knee_.status == "reached":
            why = (f"the run reached the knee: {knee_.text}; measured, so trusted over X_max "
                   "(a CPU ceiling) and the USL (a fit)")
            return CapacityEstimate(value, min(low, value), max(high, value), "knee", "knee",
                                    why, knee_, x_max, usl, x_max_note, usl_note,
                                    tuple(disagreements))
        bound = x_max if x_max is not None and x_max > value else None
        why = (f"the knee was not reached ({knee_.text}): one instance holds at least "
               f"{value:,.1f} req/s; " + (
                   f"X_max {bound:,.1f} req/s (CPU ceiling) bounds it above" if bound else
                   "nothing bounds it above (" + (x_max_note or "no X_max") + ")"))
        return CapacityEstimate(value, min(low, value), bound if bound else max(high, value),
                                "knee", "knee (at least)", why, knee_, x_max, usl,
                                x_max_note, usl_note,
                                    tuple(disagreements))
    if knee_ is not None:  # below the first step
        return CapacityEstimate(None, None, None, "none", "none",
                                f"the knee is {knee_.text}: no load level of this run met the "
                                "target, so it gives no throughput that holds it; start the "
                                "steps lower", knee_, x_max, usl, x_max_note, usl_note)
    if x_max is not None:
        why = (f"{no_knee}, so no knee: X_max {x_max:,.1f} req/s is the bottleneck's "
               "100 %-CPU ceiling, which ignores the p95 target (an optimistic bound: "
               "instances from it are a lower bound)")
        return CapacityEstimate(x_max, x_max, x_max, "x_max", "x_max", why, None, x_max, usl,
                                x_max_note, usl_note)
    reason = f"{no_knee} and no X_max ({x_max_note or 'no CPU series'})"
    return CapacityEstimate(None, None, None, "none", "none", reason, None, None, usl,
                            x_max_note, usl_note)
