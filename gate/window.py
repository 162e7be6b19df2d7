"""The gated window of a run: what the gate judges, cut from a run directory.

A run's figures are judged after its warm-up: counts from the per-second stats from the cut
on, latency from the interval histograms whose midpoint falls after it (the whole-run
histograms when there is no warm-up), merged losslessly by ``collectors``. The same bounds
are recorded with the verdict and used for summary.json's top-level figures, so every view
shows figures over one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collectors.closedmodel import closed_model_evidence
from collectors.summary import load_span
from gate.core import Cell, Window

if TYPE_CHECKING:
    from collectors.run import Run
    from gate.thresholds import GateSpec

__all__ = ["Bounds", "bounds_of", "threshold_aborts", "window_from_run"]


@dataclass(frozen=True)
class Bounds:
    """Epoch seconds ``[start, end)`` judged, the warm-up cut off before it, and the length.

    ``cut`` is where the judged data starts: the first whole second at or after the warm-up's
    end, or None when there is no warm-up (the whole-run histograms are then used, and start
    is the first recorded second).
    """

    start: float
    end: float
    warmup_s: float
    duration_s: float
    cut: float | None

    def to_json(self) -> dict[str, float]:
        return {"start": self.start, "end": self.end, "warmup_s": self.warmup_s,
                "duration_s": self.duration_s}


def bounds_of(run: Run, warmup_s: float) -> Bounds:
    """The gated window of ``run`` after ``warmup_s`` seconds of load."""
    first = _run_start(run)
    # whole seconds, so that the per-second counts (rows from the cut on) and the interval
    # histograms (midpoints after the cut) start at the same second
    cut = first + math.ceil(warmup_s - 1e-9) if warmup_s > 0 else None
    seconds = _seconds(run)
    if not seconds:
        start = cut if cut is not None else first
        return Bounds(start, start, warmup_s, 0.0, cut)
    step = min((b - a for a, b in zip(seconds, seconds[1:], strict=False)), default=1.0)
    end = seconds[-1] + step
    start = max(cut, seconds[0]) if cut is not None else seconds[0]
    span = load_span(run)  # the load's time span: its duration, as summary.json's
    length = end - start if span is None else min(end, span[1]) - max(start, span[0])
    return Bounds(start, max(end, start), warmup_s, max(length, 0.0), cut)


def window_from_run(run: Run, warmup_s: float) -> Window:
    """The run after its warm-up, one Cell per region x endpoint x user class."""
    bounds = bounds_of(run, warmup_s)
    cut = bounds.cut
    stats = run.stats
    after = stats[stats["t"] >= cut] if cut is not None else stats
    counts = after.groupby(["region", "endpoint", "user_class"], sort=True, observed=True)[
        ["requests", "failures"]].sum()
    count_of = {tuple(map(str, key)): (int(row.requests), int(row.failures))
                for key, row in zip(counts.index, counts.itertuples(), strict=True)}
    hist_keys = run.histogram_keys()
    names = sorted({k[:3] for k in hist_keys} | set(count_of))
    kinds = {k[3] for k in hist_keys}
    cells = []
    for region, endpoint, user_class in names:
        requests, failures = count_of.get((region, endpoint, user_class), (0, 0))
        service = run.histogram(region, endpoint, user_class, "service", start=cut)
        corrected = (run.histogram(region, endpoint, user_class, "corrected", start=cut)
                     if "corrected" in kinds else None)
        if requests or failures or service.total or (corrected is not None and corrected.total):
            cells.append(Cell(region, endpoint, user_class, requests, failures, service,
                              corrected))
    validity = run.validity
    closed = closed_model_evidence(run, start=cut)
    return Window(
        cells=tuple(cells), duration_s=bounds.duration_s, users_max=_users_max(run, cut),
        valid=validity.valid, reasons=validity.reasons,
        known={field: frozenset(str(n[i]) for n in names)
               for i, field in enumerate(("region", "endpoint", "user_class"))},
        closed_model=None if closed is None else closed.note(),
    )


def threshold_aborts(run: Run, spec: GateSpec) -> tuple[str, ...]:
    """Reasons of the run's `abort` events that an abort_on_fail threshold caused.

    Such an event carries a `threshold` field, or its reason is what `should_abort` returned
    ("<threshold name> failed after ..."); an abort for any other cause (Ctrl-C) is not one.
    """
    names = tuple(f"{t.name} failed after" for t in spec.thresholds if t.abort_on_fail)
    reasons = []
    for event in run.events_of("abort"):
        reason = str(event.get("reason") or event.get("threshold") or "")
        if event.get("threshold") or (names and reason.startswith(names)):
            reasons.append(reason)
    return tuple(reasons)


def _run_start(run: Run) -> float:
    """When load began: the first recorded second (the manifest's start may precede the
    service start-up and seeding by many seconds)."""
    for frame in (run.load, run.stats):
        if len(frame):
            return float(frame["t"].min())
    return run.started_at.timestamp()


def _seconds(run: Run) -> list[float]:
    frame: Any = run.load if len(run.load) else run.stats
    return sorted({float(t) for t in frame["t"]}) if len(frame) else []


def _users_max(run: Run, cut: float | None) -> int:
    load = run.load
    after = load[load["t"] >= cut] if cut is not None else load
    return int(after["users"].max()) if len(after) else 0
