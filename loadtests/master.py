"""The Locust master's bookkeeping, free of Locust: workers' reports in, stream lines out.

`MasterBook.report()` takes what a worker shipped (its per-second histograms, generator
samples, loop-lag probes, open-model counters); `tick()` runs once a second and writes every
second all workers have passed (histograms, per-second stats, load, progress); `finish()`
drains the rest and writes whole-run histograms and the run's self-check verdict.

A steps arrival (the breakpoint scenario) also gets a `loadtests.breakpoint.StepWatch`: every
merged second, generator sample, loop-lag probe and arrival count goes to it too, each judged
step becomes a `step` event, and the first step that breaks (or the last that held) a
`breakpoint` event; `on_stop` then ends the run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from collectors.hdr import Histogram
from loadtests.breakpoint import SecondSample, StepVerdict, StepWatch, step_event
from loadtests.recording import IntervalMerger, MergedSecond
from loadtests.selfcheck import Arrivals, GeneratorSample, Limits, assess, generator_figures
from loadtests.stream import StreamWriter

__all__ = ["MasterBook", "OpenModelTally", "PROGRESS_WINDOW_S"]

PROGRESS_WINDOW_S = 10  # seconds of history behind the p95 shown per region


class OpenModelTally:
    """Arrivals across workers: planned, started, late (past the tolerance), dropped."""

    def __init__(self, tolerance_ms: float) -> None:
        self.tolerance_ms = tolerance_ms
        self.planned = 0
        self.started = 0
        self.late = 0
        self.max_lateness_ms = 0.0
        self.no_free_user = 0  # arrivals due while every user of the pool was busy
        self.pool_users = 0  # the scenario's pool_users (set by loadtests.hooks)
        self._planned_by_worker: dict[str, int] = {}

    def add(self, worker: str, counters: Mapping[str, Any]) -> None:
        self.started += int(counters.get("started", 0))
        self.late += int(counters.get("late", 0))
        self.no_free_user += int(counters.get("no_free_user", 0))
        self.max_lateness_ms = max(self.max_lateness_ms, float(counters.get("max_late_ms", 0)))
        if "planned" in counters:
            self._planned_by_worker[worker] = int(counters["planned"])
            self.planned = sum(self._planned_by_worker.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "arrivals_planned": self.planned,
            "arrivals_started": self.started,
            "dropped": max(0, self.planned - self.started),
            "late_starts": self.late,
            "late_fraction": self.late / self.started if self.started else 0.0,
            "late_tolerance_ms": self.tolerance_ms,
            "max_lateness_ms": round(self.max_lateness_ms, 3),
            "no_free_user": self.no_free_user,
            "pool_users": self.pool_users,
        }

    def arrivals(self) -> Arrivals:
        """The figures the self-check judges (loadtests.selfcheck.assess)."""
        return Arrivals(self.planned, self.started, self.late, self.tolerance_ms,
                        self.max_lateness_ms, self.no_free_user, self.pool_users)


class MasterBook:
    def __init__(self, stream: StreamWriter, limits: Limits, *,
                 open_model_tolerance_ms: float | None = None, stale_after_s: float = 15.0,
                 warmup_s: float = 0.0, steps: StepWatch | None = None,
                 on_stop: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.steps = steps
        self.on_stop = on_stop  # a step broke: end the run with this reason
        self.limits = limits
        self.warmup_s = warmup_s
        self.started_at: float | None = None  # epoch of the plan's t = 0 (first stage)
        self.merger = IntervalMerger(stale_after_s=stale_after_s)
        self.regions: dict[str, str] = {}
        self.open_model = (OpenModelTally(open_model_tolerance_ms)
                           if open_model_tolerance_ms is not None else None)
        self.notes: list[str] = []
        self._users_at: dict[int, int] = {}
        self._generator: list[GeneratorSample] = []
        self._lag: list[Histogram] = []
        self._lag_by_region: dict[str, list[Histogram]] = {}  # the hiccups of each region
        self._recent: deque[MergedSecond] = deque(maxlen=PROGRESS_WINDOW_S)
        self._requests = 0
        self._failures = 0
        self._unreachable = 0
        self._finished = False
        self.load_end: float | None = None  # epoch when the users were stopped
        self._in_flight: dict[str, int] = {}  # worker -> requests begun, not completed
        self._lost: set[str] = set()

    # workers -----------------------------------------------------------------------------------
    def hello(self, worker: str, region: str, now: float) -> None:
        self.regions[worker] = region
        self.merger.join(worker, now)

    def gone(self, worker: str, now: float, *, expected: bool) -> None:
        """A worker left; unless the run was ending, the run lost part of its load."""
        if not expected and worker not in self._lost:
            self._lost.add(worker)
            region = self.regions.get(worker, "?")
            self.note(now, f"worker {worker} ({region}) stopped before the end of the run")
        self.merger.retire(worker)

    def report(self, worker: str, data: Mapping[str, Any], now: float) -> None:
        region = str(data.get("region") or self.regions.get(worker, "unknown"))
        self.regions.setdefault(worker, region)
        self.merger.add(worker, region, data, now)
        self._unreachable += int(data.get("unreachable", 0))
        if "in_flight" in data:  # the latest count; after the users stopped, the cut ones
            self._in_flight[worker] = int(data["in_flight"])
        rows = []
        for sample in data.get("gen", ()):
            item = GeneratorSample(float(sample["t"]), worker, region,
                                   float(sample["cpu_percent"]), float(sample["lag_ms"]))
            self._generator.append(item)
            if self.steps is not None:
                self.steps.add_generator(item)
            rows.append({"k": "gen", "t": item.t, "worker": worker, "region": region,
                         "cpu_percent": item.cpu_percent, "lag_ms": item.lag_ms})
        self.stream.write_many(rows)
        if self.steps is not None:
            for t, values in data.get("lag", ()):
                self.steps.add_lag(float(t), values)
            for t, started, late in (data.get("open") or {}).get("seconds", ()):
                self.steps.add_arrivals(int(t), int(started), int(late))
        measured = [v for t, values in data.get("lag", ()) if self._measured(float(t))
                    for v in values]
        if measured:
            hiccups = Histogram.from_values_ms(measured)
            self._lag.append(hiccups)
            if len(self._lag) > 64:
                self._lag = [Histogram.merge(self._lag)]
            own = self._lag_by_region.setdefault(region, [])
            own.append(hiccups)
            if len(own) > 64:
                self._lag_by_region[region] = [Histogram.merge(own)]
        if self.open_model is not None and data.get("open"):
            self.open_model.add(worker, data["open"])

    def start(self, now: float) -> None:
        """The plan started: the self-check looks at what follows the warm-up."""
        if self.started_at is None:
            self.started_at = now
            self.merger.begin(now)  # every second from here on gets a row, zeros included

    def stopped(self, t: float) -> None:
        """The users were stopped at epoch `t`: the load (and the run's span) ends there."""
        if self.load_end is None:
            self.load_end = t
            self.merger.end(t)

    def _measured(self, t: float) -> bool:
        """Whether second `t` counts for the self-check (after the warm-up, like the gate)."""
        return self.started_at is not None and t >= self.started_at + self.warmup_s

    def note(self, now: float, reason: str) -> None:
        """Something that makes the run's figures untrustworthy (written as an event)."""
        if reason not in self.notes:
            self.notes.append(reason)
            self.event(now, "invalid", reason=reason)

    def event(self, now: float, type_: str, **fields: Any) -> None:
        self.stream.write("event", t=now, type=type_, **fields)

    # once a second ---------------------------------------------------------------------------
    def tick(self, now: float, users: int, elapsed_s: float, planned_s: float, *,
             load_end: float | None = None) -> None:
        if load_end is not None:
            self.stopped(load_end)
        self._users_at[int(now)] = users
        for worker in self.merger.stale_workers(now):
            self.gone(worker, now, expected=False)
        self._write_seconds(self.merger.complete(now))
        self._judge_steps(now)
        self.stream.write("progress", t=now, elapsed_s=round(elapsed_s, 1),
                          planned_s=round(planned_s, 1), users=users, **self._progress())

    def _write_seconds(self, seconds: list[MergedSecond]) -> None:
        lines: list[dict[str, Any]] = []
        for second in seconds:
            self._recent.append(second)
            requests, failures = second.requests(), second.failures()
            self._requests += requests
            self._failures += failures
            for (region, endpoint, user_class, kind), cell in sorted(second.cells.items()):
                hist = cell.hist
                lines.append({
                    "k": "hist", "t": second.t, "interval_s": 1.0, "region": region,
                    "endpoint": endpoint, "user_class": user_class, "kind": kind,
                    "requests": cell.requests, "failures": cell.failures,
                    "hist": hist.encode(), "p50_ms": hist.quantile(0.5),
                    "p95_ms": hist.quantile(0.95), "p99_ms": hist.quantile(0.99),
                    "max_ms": hist.max_ms,
                })
            lines.append({"k": "load", "t": second.t, "users": self._users_near(second.t),
                          "rps": float(requests), "failures_per_s": float(failures)})
            if self.steps is not None:
                self.steps.add_second(_second_sample(second))
        self.stream.write_many(lines)

    def _judge_steps(self, now: float, *, final: bool = False) -> None:
        """Steps whose hold is complete become `step` events; the outcome a `breakpoint`."""
        if self.steps is None or self.steps.done:
            return
        for verdict in self.steps.poll(now, final=final):
            self.event(verdict.figures.start, "step", **step_event(verdict))
            if not verdict.held:
                self._broke(now, verdict)
        outcome = self.steps.breakpoint()
        if outcome is not None:
            self.event(now, "breakpoint", **outcome)

    def _broke(self, now: float, verdict: StepVerdict) -> None:
        if verdict.reason == "generator":
            # the steps below still measured the platform; the breakpoint did not
            self.note(now, f"breakpoint not reached: {verdict.detail}")
        if self.on_stop is not None and not self._finished:
            self.on_stop(f"breakpoint: {verdict.detail}")

    def _users_near(self, t: int) -> int:
        for back in range(5):
            if t - back in self._users_at:
                return self._users_at[t - back]
        return 0

    def _progress(self) -> dict[str, Any]:
        by_region: dict[str, list[Histogram]] = {}
        for second in self._recent:
            for region, cell in second.by_region().items():
                by_region.setdefault(region, []).append(cell.hist)
        last = self._recent[-1] if self._recent else None
        return {
            "rps": float(last.requests()) if last else 0.0,
            "requests": self._requests,
            "failures": self._failures,
            "p95_by_region": {
                region: round(Histogram.merge(h).quantile(0.95), 2)
                for region, h in sorted(by_region.items())
            },
        }

    # the end -----------------------------------------------------------------------------------
    def finish(self, now: float, reason: str, *, load_end: float | None = None) -> None:
        """Write everything left, the whole-run histograms and the self-check verdict.

        The load's span (`load_span` event: start, end, and the requests in flight that the
        stop cut) ends at `load_end` (when the users were stopped), else now."""
        if self._finished:
            return
        self.stopped(load_end if load_end is not None else now)
        self._write_seconds(self.merger.drain_all())
        cut = sum(self._in_flight.values())
        if self.started_at is not None and self.load_end is not None:
            self.event(self.load_end, "load_span", start=self.started_at, end=self.load_end,
                       duration_s=round(max(0.0, self.load_end - self.started_at), 3),
                       cut_requests=cut)
        if not reason.startswith("interrupted"):
            self._judge_steps(now, final=True)
        self._finished = True
        whole = self.merger.whole()
        self.stream.write_many([
            {"k": "whole", "region": r, "endpoint": e, "user_class": u, "kind": k,
             "requests": c.requests, "failures": c.failures, "hist": c.hist.encode()}
            for (r, e, u, k), c in sorted(whole.items())
        ])
        if self.merger.late_blocks:
            self.event(now, "late_data", blocks=self.merger.late_blocks)
        lag = Histogram.merge(self._lag)
        notes = list(self.notes)
        if reason.startswith("interrupted"):
            notes.append(f"run {reason}")  # partial: the planned load never fully ran
        generator = [s for s in self._generator if self._measured(s.t)]
        valid, reasons = assess(
            generator, lag, self.limits, requests=self._requests,
            unreachable=self._unreachable, notes=notes,
            arrivals=self.open_model.arrivals() if self.open_model else None,
        )
        by_region = {r: Histogram.merge(h) for r, h in self._lag_by_region.items()}
        self.stream.write(
            "final", t=now, reason=reason, requests=self._requests, failures=self._failures,
            unreachable=self._unreachable, cut_requests=cut,
            span={"start": self.started_at, "end": self.load_end},
            validity={"valid": valid, "reasons": list(reasons)},
            generator={**generator_figures(generator, lag, by_region),
                       "warmup_s": self.warmup_s},
            open_model=self.open_model.to_json() if self.open_model else None,
            workers=dict(self.regions),
        )
        self.stream.write("end", t=now, reason=reason)


def _second_sample(second: MergedSecond) -> SecondSample:
    """One merged second as the step judge reads it: every cell's service and corrected time."""
    service = [c.hist for k, c in second.cells.items() if k[3] == "service"]
    corrected = [c.hist for k, c in second.cells.items() if k[3] == "corrected"]
    return SecondSample(second.t, second.requests(), second.failures(),
                        Histogram.merge(service),
                        Histogram.merge(corrected) if corrected else None)
