"""Replaying the spec over a finished run: when would each alert have fired and resolved?

The run's scraped series (timeseries/service.parquet, read through `collectors.load_run`) go
into the collectors' `SeriesStore` (the store the scraper fills during a live run), and the
evaluator steps through the run's time at the spec's evaluation interval, exactly as it would
have live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.evaluator import AlertState, Evaluator, Transition
from alerts.payload import format_time
from alerts.spec import Spec
from collectors.errors import RunDirError
from collectors.run import load_run
from collectors.series import SeriesStore

__all__ = ["ReplayError", "ReplayResult", "load_service_frame", "replay", "replay_lines"]


class ReplayError(Exception):
    """The run directory cannot be replayed (missing, foreign, no scraped series)."""


@dataclass(frozen=True)
class ReplayResult:
    start_ms: int
    end_ms: int
    interval_ms: int
    evaluations: int
    transitions: tuple[Transition, ...]
    still_firing: tuple[str, ...]


def load_service_frame(run_dir: Path | str) -> Any:
    """The run's scraped series as a DataFrame (t, target, metric, labels, value)."""
    try:
        return load_run(Path(run_dir)).service
    except RunDirError as exc:
        raise ReplayError(str(exc)) from None


def replay(spec: Spec, frame: Any, *, interval_ms: int | None = None) -> ReplayResult:
    store = SeriesStore.from_frame(frame, job=spec.job)
    span = store.time_range_ms()
    if span is None:
        raise ReplayError("the run has no scraped service series (service.parquet is empty)")
    step = interval_ms or spec.evaluation_interval_ms
    start, end = span
    evaluator = Evaluator(spec, store)
    transitions: list[Transition] = []
    evaluations = 0
    t = start - start % step + step if start % step else start
    while t <= end:
        transitions.extend(evaluator.evaluate(t))
        evaluations += 1
        t += step
    firing = tuple(sorted({a.rule for a in evaluator.alerts(AlertState.FIRING)}))
    return ReplayResult(start, end, step, evaluations, tuple(transitions), firing)


def replay_lines(result: ReplayResult, *, show_pending: bool = False) -> list[str]:
    """Human lines: one per firing/resolved (and pending/cancelled when asked)."""
    kinds = {"firing", "resolved"} | ({"pending", "cancelled"} if show_pending else set())
    lines = [f"replayed {(result.end_ms - result.start_ms) / 1000:g} s of scraped series: "
             f"{result.evaluations} evaluations every {result.interval_ms / 1000:g} s, from "
             f"{format_time(result.start_ms / 1000)}"]
    shown = [t for t in result.transitions if t.kind in kinds]
    for transition in shown:
        offset = (transition.at_ms - result.start_ms) / 1000
        lines.append(f"+{offset:8.1f}s  {format_time(transition.at_ms / 1000)}  "
                     f"{transition.describe()}")
    fired = sum(1 for t in result.transitions if t.kind == "firing")
    resolved = sum(1 for t in result.transitions if t.kind == "resolved")
    lines.append(f"{fired} fired, {resolved} resolved"
                 + (f"; still firing at the end: {', '.join(result.still_firing)}"
                    if result.still_firing else ""))
    return lines
