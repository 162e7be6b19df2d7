"""The breakpoint scenario: the stepped open model's schema and plan, the step judge, the
master's bookkeeping, and one real stepped run that stops itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from collectors.hdr import Histogram
from collectors.targets import PRODUCT_TARGETS
from loadtests.breakpoint import (
    JUDGE_GRACE_S,
    SecondSample,
    StepLimits,
    StepVerdict,
    StepWatch,
    breakpoint_line,
    judge_step,
    measure_step,
    step_line,
)
from loadtests.master import MasterBook
from loadtests.recording import WorkerRecorder
from loadtests.scenario import ScenarioError, load_scenario, parse_scenario, with_overrides
from loadtests.selfcheck import GeneratorSample, Limits
from loadtests.shapes import ArrivalSchedule, PlannedStep, plan_for, rate_segments, step_plan
from loadtests.stream import StreamWriter
from tests.gate.realruns import SEED_PITCHES, SEED_USERS, pitchey, require_pitchey_run, run_dirs

ROOT = Path(__file__).resolve().parents[2]

STEPPED = """\
name: stepped
target: embedded
open_model:
  arrival: steps
  start_rate: 5
  factor: 1.6
  max_rate: 40
  step: 20s
  settle: 5s
  pool_users: 50
users:
  browser: {weight: 1}
"""


def _problem(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="bad.yaml")
    return caught.value.problems[0]


# --- schema ------------------------------------------------------------------------------------


def test_a_stepped_open_model_loads_and_plans_geometric_steps() -> None:
    model = parse_scenario(STEPPED).open_model
    assert model is not None
    steps = step_plan(model)
    assert [s.rate for s in steps] == [5, 8, 12.8, 20.5, 32.8]  # x1.6, 3 significant figures
    assert [(s.start, s.hold_start, s.end) for s in steps[:2]] == [(0, 5, 20), (20, 25, 40)]
    assert all(s.hold_s == 15 for s in steps)
    # arrivals are constant within a step; the plan is the pool's lead-in and the steps
    assert [(r.start, r.rate_start, r.rate_end) for r in rate_segments(model)][1] == (20, 8, 8)
    assert plan_for(parse_scenario(STEPPED)).duration_s == pytest.approx(
        math.ceil(50 / 50) + 1 + 5 * 20)


def test_listed_rates_and_the_default_settle() -> None:
    text = STEPPED.replace("  start_rate: 5\n  factor: 1.6\n  max_rate: 40\n",
                           "  rates: [10, 25, 60]\n").replace("  settle: 5s\n", "")
    model = parse_scenario(text).open_model
    assert model is not None
    assert [(s.rate, s.hold_start) for s in step_plan(model)] == [(10, 5), (25, 25), (60, 45)]
    # a worker's share of a step's arrivals is its share of rate x step, evenly spaced
    schedule = ArrivalSchedule(rate_segments(model), share=0.5)
    times = [schedule.time_of(k) for k in range(schedule.total)]
    assert schedule.total == round((10 + 25 + 60) * 20 * 0.5)
    assert sum(1 for t in times if t is not None and 20 <= t < 40) == 25 * 20 / 2


def test_capacity_is_a_stepped_single_instance_run_of_at_most_four_minutes() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "capacity.yaml")
    model = scenario.open_model
    assert model is not None and model.arrival == "steps"
    assert scenario.topology == "single" and scenario.target == "embedded"
    assert set(scenario.users) == {"creator", "investor", "production", "browser"}
    rates = [s.rate for s in step_plan(model)]
    assert len(rates) >= 6 and rates == sorted(rates)
    assert plan_for(scenario).duration_s <= 200  # + seeding and start-up: under 4 minutes
    assert scenario.gate == {"product_targets": False}


def test_a_duration_override_scales_each_step_and_its_settle() -> None:
    scenario = with_overrides(parse_scenario(STEPPED), duration_s=50)
    model = scenario.open_model
    assert model is not None
    steps = step_plan(model)
    assert len(steps) == 5 and steps[-1].end == pytest.approx(50)
    assert steps[0].hold_start == pytest.approx(2.5)


@pytest.mark.parametrize(("change", "expected"), [
    (("  step: 20s\n", ""), "bad.yaml:3: open_model: a steps arrival needs step"),
    (("settle: 5s", "settle: 20s"), "bad.yaml:3: open_model: settle (20s) must be shorter "
     "than step (20s)"),
    (("factor: 1.6", "factor: 1"), "bad.yaml:6: open_model.factor: Input should be greater "
     "than 1"),
    (("  max_rate: 40\n", ""), "bad.yaml:3: open_model: a steps arrival needs rates: [...], "
     "or start_rate (above 0), factor and max_rate"),
    (("max_rate: 40", "max_rate: 4"), "bad.yaml:3: open_model: max_rate (4) is below "
     "start_rate (5)"),
    (("  max_rate: 40\n", "  max_rate: 40\n  rates: [1, 2]\n"), "bad.yaml:3: open_model: give "
     "rates, or start_rate with factor and max_rate, not both"),
    (("  start_rate: 5\n  factor: 1.6\n  max_rate: 40\n", "  rates: [10, 10]\n"),
     "bad.yaml:3: open_model: rates must rise from step to step"),
    (("  start_rate: 5\n  factor: 1.6\n  max_rate: 40\n", "  rates: [10, -1]\n"),
     "bad.yaml:5: open_model.rates[1]: Input should be greater than 0"),
    (("  pool_users: 50\n", "  pool_users: 50\n  breakpoint: {errors: 150%}\n"),
     "bad.yaml:11: open_model.breakpoint.errors: percentage '150%' is outside 0-100%"),
    (("  pool_users: 50\n", "  pool_users: 50\n  breakpoint: {p95: soon}\n"),
     "bad.yaml:11: open_model.breakpoint.p95: "),
    (("  pool_users: 50\n", "  pool_users: 50\n  breakpoint: {latency: wall}\n"),
     "bad.yaml:11: open_model.breakpoint.latency: Input should be 'corrected' or 'service'"),
    (("  pool_users: 50\n", "  pool_users: 50\n  duration: 1m\n"),
     "bad.yaml:3: open_model: a steps arrival takes step and rates or factor, not duration"),
    (("arrival: steps", "arrival: constant\n  rate: 5\n  duration: 1m"),
     "bad.yaml:3: open_model: factor only applies to a steps arrival"),
])
def test_stepped_mistakes_name_file_line_and_key(change: tuple[str, str], expected: str
                                                 ) -> None:
    old, new = change
    assert old in STEPPED
    problem = _problem(STEPPED.replace(old, new, 1))
    assert problem.startswith(expected), problem


# --- the step judge ----------------------------------------------------------------------------

T0 = 1_700_000_000.0
STEP = PlannedStep(index=2, rate=40.0, start=40.0, hold_start=45.0, end=60.0)
LIMITS = StepLimits(p95_ms=100.0, error_rate=0.01, late_fraction=0.05, cpu_percent=90.0,
                    cpu_sustain_s=10.0, lag_p95_ms=50.0)


def second(t: int, ms: float, *, requests: int = 40, failures: int = 0,
           corrected_ms: float | None = None) -> SecondSample:
    """One merged second whose requests all took `ms` (and `corrected_ms` from intended)."""
    corrected = corrected_ms if corrected_ms is not None else ms
    return SecondSample(t, requests, failures, Histogram.from_values_ms([ms] * requests),
                        Histogram.from_values_ms([corrected] * requests))


def hold(ms: float = 20.0, *, corrected_ms: float | None = None) -> list[SecondSample]:
    """The whole seconds of STEP's hold (T0 + 45 .. T0 + 60), plus one either side."""
    return [second(t, ms, corrected_ms=corrected_ms) for t in range(int(T0) + 44, int(T0) + 61)]


def measured(seconds: list[SecondSample], *, cpu: float = 30.0, lag: float = 2.0,
             arrivals: tuple[int, int] = (600, 0)) -> StepVerdict:
    generator = [GeneratorSample(float(t), "w1", "us-east", cpu, lag)
                 for t in range(int(T0) + 45, int(T0) + 60)]
    figures = measure_step(STEP, T0 + 45, T0 + 60, seconds, generator, [lag] * 300, arrivals)
    return judge_step(figures, LIMITS)


def test_a_step_within_every_limit_holds_and_counts_only_its_hold() -> None:
    verdict = measured(hold(20.0))
    assert verdict.held and verdict.reason is None
    figures = verdict.figures
    assert figures.seconds == 15 and figures.requests == 15 * 40
    assert figures.throughput_rps == pytest.approx(40.0)
    assert figures.p95_ms == pytest.approx(20.0, rel=0.01)
    assert step_line({"index": 2, "rate": 40.0, "held": True, "throughput_rps": 40.0,
                      "p95_ms": 20.0, "service_p95_ms": 20.0, "error_rate": 0.0,
                      "late": 0, "arrivals": 600}).startswith("step 3 at 40/s held: 40.0 req/s")


def test_a_slow_step_breaks_on_p95_past_the_product_target() -> None:
    seconds = hold(20.0)
    # a slow moment holding under 5 % of the hold's requests does not move the p95 ...
    seconds[5] = second(seconds[5].t, 300.0, requests=20)
    assert measured(seconds).held
    verdict = measured(hold(130.0))
    assert verdict.reason == "p95"
    assert verdict.detail == "p95 130 ms > 100 ms at 40/s"
    assert StepLimits().p95_ms == PRODUCT_TARGETS.p95_ms


def test_errors_past_one_percent_break_the_step() -> None:
    assert measured([second(s.t, 20.0, requests=200, failures=1) for s in hold()]).held
    verdict = measured([second(s.t, 20.0, failures=1) for s in hold()])
    assert verdict.reason == "errors"
    assert verdict.detail.startswith("errors 2.5% > 1.0% at 40/s")


def test_a_saturated_generator_is_named_as_the_limit_before_the_platform() -> None:
    for verdict in (measured(hold(300.0), cpu=97.0), measured(hold(20.0), lag=80.0)):
        assert verdict.reason == "generator"
        assert "the generator, not the platform, was the limit" in verdict.detail
    # CPU high for less than half the hold is not saturation
    short = measured(hold(20.0), cpu=30.0)
    assert short.held


def test_late_starts_blame_the_generator_only_while_the_service_holds() -> None:
    late = measured(hold(20.0, corrected_ms=400.0), arrivals=(600, 200))
    assert late.reason == "generator"
    assert "33% of arrivals started late" in late.detail
    queued = measured(hold(150.0, corrected_ms=900.0), arrivals=(600, 500))
    assert queued.reason == "p95"
    on_time = measured(hold(20.0, corrected_ms=30.0), arrivals=(600, 200))
    assert on_time.held


# --- the master's step watch -------------------------------------------------------------------

def _watch() -> StepWatch:
    steps = (PlannedStep(0, 10.0, 0.0, 2.0, 6.0), PlannedStep(1, 20.0, 6.0, 8.0, 12.0),
             PlannedStep(2, 40.0, 12.0, 14.0, 18.0))
    watch = StepWatch(steps, LIMITS)
    watch.begin(T0)
    return watch


def test_the_watch_judges_a_step_once_its_hold_is_merged_and_stops_at_the_first_break() -> None:
    watch = _watch()
    for t in range(5):
        watch.add_second(second(int(T0) + t, 10.0))
    assert watch.poll(T0 + 5.5) == []  # the hold's last second (5) is not merged yet
    watch.add_second(second(int(T0) + 5, 10.0))
    (first,) = watch.poll(T0 + 6)
    assert first.held and first.figures.seconds == 4 and first.figures.requests == 160
    assert watch.breakpoint() is None  # steps remain
    for t in range(7, 11):
        watch.add_second(second(int(T0) + t, 250.0))
    assert watch.poll(T0 + 12) == []  # second 11 not merged yet, grace not over
    judged = watch.poll(T0 + 12 + JUDGE_GRACE_S)  # a silent worker: judged after the grace
    assert [v.reason for v in judged] == ["p95"] and watch.done
    assert watch.breakpoint() == {"reason": "p95", "step": 1, "rate": 20.0,
                                  "detail": "p95 250 ms > 100 ms at 20/s"}
    watch.add_second(second(int(T0) + 15, 10.0))
    assert watch.poll(T0 + 30, final=True) == []  # nothing is judged past the breakpoint


def test_every_step_held_is_completed() -> None:
    watch = _watch()
    for t in range(17):
        watch.add_second(second(int(T0) + t, 10.0))
    watch.poll(T0 + 17)
    assert len(watch.verdicts) == 2
    assert len(watch.poll(T0 + 18, final=True)) == 1
    outcome = watch.breakpoint()
    assert outcome is not None and outcome["reason"] == "completed" and outcome["step"] == 2
    assert breakpoint_line(outcome).startswith("breakpoint not reached: every step held, up "
                                               "to 40/s")


def test_the_master_book_writes_step_and_breakpoint_events_and_stops_the_run(
        tmp_path: Path) -> None:
    """Workers' real report format in (WorkerRecorder blocks, per-second arrival counts),
    stream lines out, and the stop asked for once a step breaks."""
    stops: list[str] = []
    watch = _watch()
    book = MasterBook(StreamWriter(tmp_path / "stream.jsonl"), Limits(), steps=watch,
                      on_stop=stops.append)
    book.hello("w1", "us-east", T0)
    book.start(T0)
    recorder = WorkerRecorder("us-east")
    for t in range(13):
        for _ in range(10):
            ms = 15.0 if t < 6 else 180.0
            recorder.record(T0 + t + 0.5, "GET /api/pitches", "browser", ms, False, ms + 1)
    report = {**recorder.drain(T0 + 13), "gen": [], "lag": [],
              "open": {"started": 130, "late": 0, "seconds": [[int(T0) + t, 10, 0]
                                                               for t in range(13)]}}
    book.report("w1", report, T0 + 13)
    book.tick(T0 + 13.2, 50, 13.2, 18.0)
    book.finish(T0 + 14, "breakpoint")
    book.stream.close()
    lines = [json.loads(line) for line in (tmp_path / "stream.jsonl").read_text().splitlines()]
    events = [line for line in lines if line["k"] == "event"
              and line["type"] not in ("invalid", "load_span")]
    assert [(e["type"], e.get("index"), e.get("held")) for e in events] == [
        ("step", 0, True), ("step", 1, False), ("breakpoint", None, None)]
    step = events[0]
    assert (step["rate"], step["start"], step["end"]) == (10.0, T0 + 2, T0 + 6)
    assert step["requests"] == 40 and step["arrivals"] == 40
    assert events[2]["reason"] == "p95" and events[2]["step"] == 1
    assert stops == ["breakpoint: p95 181 ms > 100 ms at 20/s"]
    final = next(line for line in lines if line["k"] == "final")
    assert final["validity"]["valid"] or "breakpoint" not in " ".join(
        final["validity"]["reasons"])


# --- one real run -----------------------------------------------------------------------------

REAL = f"""\
name: stepped-real
target: embedded
topology: single
open_model:
  arrival: steps
  rates: [4, 8, 16]
  step: 6s
  settle: 2s
  pool_users: 8
  pool_spawn_rate: 8
  late_tolerance: 50ms
  # no request takes under 10 microseconds: the first step breaks the p95 limit for sure
  breakpoint: {{p95: 0.01ms, latency: service}}
users:
  browser: {{weight: 1}}
regions: {{us-east: 1}}
warmup: 2s
gate: {{product_targets: false}}
self_check: {{cpu_percent: 100, cpu_sustain: 1h, lag_p95: 10s}}
embedded:
  seed: {{users: {SEED_USERS}, pitches: {SEED_PITCHES}, seed: 42}}
"""


def test_a_real_stepped_run_stops_itself_at_the_breakpoint_and_stays_valid(
        tmp_path: Path) -> None:
    require_pitchey_run()
    scenario = tmp_path / "stepped.yaml"
    scenario.write_text(REAL)
    out = tmp_path / "runs"
    result = pitchey(["run", str(scenario), "--out", str(out)], timeout_s=120.0)
    assert result.code == 0, result.text
    assert "breakpoint at step 1 (4/s), p95: p95 (service time)" in result.out, result.text
    (run_dir,) = run_dirs(out)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "step"]
    (outcome,) = [e for e in events if e["type"] == "breakpoint"]
    assert [(s["index"], s["rate"], s["held"]) for s in steps] == [(0, 4.0, False)]
    assert steps[0]["end"] - steps[0]["start"] == pytest.approx(4.0)
    assert steps[0]["requests"] > 0 and steps[0]["service_p95_ms"] > 0.01
    assert (outcome["reason"], outcome["step"], outcome["rate"]) == ("p95", 0, 4.0)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert manifest["validity"]["valid"], manifest["validity"]
    assert summary["breakpoint"]["reason"] == "p95"
    assert summary["ended"].startswith("breakpoint: ")
    # the run stopped at the breakpoint, long before its three steps were over
    assert not [e for e in events if e["type"] == "abort"]
