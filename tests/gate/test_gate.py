"""The gate's pure core over synthetic run directories written by collectors' RunWriter.

Every expected figure is computed from the latencies the run was written with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from collectors.hdr import Histogram
from collectors.run import load_run
from collectors.validity import Validity
from gate.core import (
    AbortMonitor,
    Cell,
    GateConfigError,
    Window,
    baseline_from_json,
    baseline_to_json,
    gate,
    quantile_interval,
    rate_interval,
    should_abort,
)
from gate.thresholds import GateSpec, parse_gate_spec, parse_thresholds
from gate.window import threshold_aborts, window_from_run
from pitchey_cli.exitcodes import ExitCode
from testing.rundirs import (
    CellSpec,
    RunSpec,
    WrittenRun,
    lognormal,
    scenario,
    uniform,
    warm_then,
)

MakeRun = Callable[[RunSpec], WrittenRun]
EAST = ("us-east", "GET /api/pitches", "investor")
ASIA = ("asia", "GET /api/pitches", "investor")
ASIA_WRITE = ("asia", "POST /api/pitches", "creator")


def _gate(written: WrittenRun, baseline: Window | None = None):  # type: ignore[no-untyped-def]
    run = load_run(written.path)
    spec = parse_gate_spec(run.scenario)
    window = replace(window_from_run(run, spec.warmup_s), aborted=threshold_aborts(run, spec))
    return spec, gate(spec, window, baseline)


def test_percentiles_come_from_merged_histograms_after_the_warm_up(make_run: MakeRun) -> None:
    slow_start = warm_then(3, uniform(2000, 4000, 50), lognormal(20, 0.6, 200))
    written = make_run(RunSpec(
        scenario(["p95 < 100ms", "p99.9 < 1s", "max < 1s"], warmup="3s"),
        {EAST: CellSpec(slow_start)}, seconds=8))
    _, result = _gate(written)
    truth = Histogram.from_values_ms(written.values(after=3))
    assert [c.measured for c in result.checks] == [
        truth.percentile(95), truth.percentile(99.9), truth.max_ms]
    assert result.exit_code == ExitCode.OK
    # without the warm-up the same run fails: the slow start is in the data
    run = load_run(written.path)
    spec = replace(parse_gate_spec(run.scenario), warmup_s=0.0)
    assert gate(spec, window_from_run(run, 0.0)).exit_code == ExitCode.BREACH


def test_global_p95_is_the_merged_one_not_an_average(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 1s"]), {
        EAST: CellSpec(lognormal(10, 0.3, 400)),
        ASIA: CellSpec(lognormal(300, 0.3, 40)),
    }, seconds=5))
    _, result = _gate(written)
    merged = Histogram.from_values_ms(written.values()).percentile(95)
    per_region = [Histogram.from_values_ms(written.values(cells=[k])).percentile(95)
                  for k in (EAST, ASIA)]
    (check,) = result.checks
    assert check.measured == merged
    assert abs(check.measured - float(np.mean(per_region))) > 0.1 * merged


def test_breach_names_measured_value_and_limit(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 100ms", "error_rate < 1%"]),
                               {EAST: CellSpec(uniform(150, 250, 100))}, seconds=4))
    _, result = _gate(written)
    assert result.exit_code == ExitCode.BREACH
    p95 = result.checks[0]
    assert not p95.passed
    expected = Histogram.from_values_ms(written.values()).percentile(95)
    assert p95.message == f"p95 = {expected:g}ms, limit < 100ms"
    assert result.checks[1].passed


def test_counts_rates_throughput_and_users(make_run: MakeRun) -> None:
    written = make_run(RunSpec(
        scenario(["error_rate < 5%", "failures == 0", "requests >= 1", "rps > 1", "users >= 30"],
                 warmup="2s"),
        {EAST: CellSpec(uniform(1, 20, 120), failures=lambda s: 3 if s % 2 else 0),
         ASIA: CellSpec(uniform(1, 20, 80))},
        seconds=10, users=lambda s: 10 * (s + 1)))
    _, result = _gate(written)
    requests, failures = written.counts(after=2)
    measured = {c.threshold.metric: c.measured for c in result.checks}
    assert measured["error_rate"] == pytest.approx(failures / requests)
    assert measured["failures"] == failures and failures > 0
    assert measured["requests"] == requests
    assert measured["rps"] == pytest.approx(requests / 8)  # 8 s after a 2 s warm-up
    assert measured["users"] == 100
    assert [c.passed for c in result.checks] == [True, False, True, True, True]


def test_scopes_by_region_endpoint_glob_user_class_and_tag(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario([
        "p95{region: asia} < 1s",
        'p95{endpoint: "POST *"} < 1s',
        "p95{user_class: investor} < 1s",
        {"scope": {"tag": "writes"}, "check": "error_rate < 50%"},
        "p95{region: us-*} < 1s",
    ], gate={"tags": {"writes": ["POST *", "PUT *"]}}), {
        EAST: CellSpec(uniform(1, 10, 100)),
        ASIA: CellSpec(uniform(50, 60, 100)),
        ASIA_WRITE: CellSpec(uniform(200, 300, 50), failures=lambda s: 5),
    }, seconds=4))
    _, result = _gate(written)

    def p95(*cells: tuple[str, str, str]) -> float:
        return Histogram.from_values_ms(written.values(cells=list(cells))).percentile(95)

    measured = [c.measured for c in result.checks]
    assert measured[0] == p95(ASIA, ASIA_WRITE)
    assert measured[1] == p95(ASIA_WRITE)
    assert measured[2] == p95(EAST, ASIA)
    requests, failures = written.counts(cells=[ASIA_WRITE])
    assert measured[3] == pytest.approx(failures / requests)
    assert measured[4] == p95(EAST)


def test_scope_that_matches_nothing_is_a_configuration_error(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95{region: asai} < 1s"]),
                               {ASIA: CellSpec(uniform(1, 10, 10))}, seconds=2))
    with pytest.raises(GateConfigError, match=r"region 'asai' matches nothing.*asia"):
        _gate(written)


def test_scope_with_no_traffic_after_warm_up_fails_the_threshold(make_run: MakeRun) -> None:
    only_early = warm_then(2, uniform(1, 10, 10), lambda s, rng: [])
    written = make_run(RunSpec(scenario(["p95{region: asia} < 1s"], warmup="2s"),
                               {ASIA: CellSpec(only_early), EAST: CellSpec(uniform(1, 9, 10))},
                               seconds=4))
    _, result = _gate(written)
    (check,) = result.checks
    assert check.measured is None and not check.passed
    assert "no requests in scope" in check.message
    assert result.exit_code == ExitCode.BREACH


def test_open_model_runs_gate_on_corrected_latency(make_run: MakeRun) -> None:
    written = make_run(RunSpec(
        scenario(["p95 < 100ms", "p95{kind: service} < 100ms"]),
        {EAST: CellSpec(uniform(10, 50, 100), corrected_extra_ms=80.0)}, seconds=3))
    _, result = _gate(written)
    corrected, service = result.checks
    assert corrected.latency_kind == "corrected" and not corrected.passed
    assert corrected.measured == Histogram.from_values_ms(written.values() + 80).percentile(95)
    assert service.latency_kind == "service" and service.passed


def test_corrected_scope_on_a_closed_model_run_is_a_configuration_error(
        make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95{kind: corrected} < 100ms"]),
                               {EAST: CellSpec(uniform(1, 5, 10))}, seconds=2))
    with pytest.raises(GateConfigError, match="no corrected histograms"):
        _gate(written)


def test_invalid_run_exits_3_even_when_thresholds_pass(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(uniform(1, 5, 50))},
                               seconds=3,
                               validity=Validity.invalid("generator CPU above 90% for 12 s")))
    _, result = _gate(written)
    assert result.checks[0].passed
    assert result.exit_code == ExitCode.INVALID
    assert result.reasons == ("generator CPU above 90% for 12 s",)


def test_a_target_that_answers_only_errors_breaches_rather_than_invalidates(
        make_run: MakeRun) -> None:
    # whether the target was unreachable is the load test's call (its validity); a target
    # that answers every request with an error was measured, and failed
    written = make_run(RunSpec(scenario(["error_rate < 1%"]),
                               {EAST: CellSpec(uniform(0.1, 1, 20), failures=lambda s: 20)},
                               seconds=3))
    _, result = _gate(written)
    assert result.valid and result.exit_code == ExitCode.BREACH
    assert result.checks[0].measured == 1.0


def test_nothing_recorded_after_warm_up_is_invalid(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario([], warmup="1m"), {EAST: CellSpec(uniform(1, 5, 5))},
                               seconds=3))
    _, result = _gate(written)
    assert result.exit_code == ExitCode.INVALID
    assert "no request" in result.reasons[0]


# --- baselines -------------------------------------------------------------------------------


def _window(written: WrittenRun) -> Window:
    return window_from_run(load_run(written.path), 0.0)


def test_same_distribution_is_not_a_regression(make_run: MakeRun) -> None:
    base = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(lognormal(20, 0.5, 300))},
                            seconds=5, seed=1))
    current = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(lognormal(20, 0.5, 300))},
                               seconds=5, seed=2))
    _, result = _gate(current, _window(base))
    assert result.exit_code == ExitCode.OK
    assert {c.metric for c in result.comparisons} == {"p95", "error_rate"}
    assert not result.regressions


def test_slower_run_is_a_regression_with_intervals(make_run: MakeRun) -> None:
    base = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(lognormal(20, 0.5, 300))},
                            seconds=5, seed=1))
    current = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(lognormal(30, 0.5, 300))},
                               seconds=5, seed=2))
    _, result = _gate(current, _window(base))
    assert result.exit_code == ExitCode.REGRESSION
    (p95,) = [c for c in result.comparisons if c.metric == "p95"]
    assert p95.regressed and p95.verdict == "regression"
    assert p95.current == Histogram.from_values_ms(current.values()).percentile(95)
    assert p95.baseline == Histogram.from_values_ms(base.values()).percentile(95)
    assert p95.current_interval is not None and p95.baseline_interval is not None
    assert p95.current_interval[0] > p95.baseline_interval[1] * 1.10


def test_noise_on_few_samples_does_not_fail_the_build(make_run: MakeRun) -> None:
    # 15% slower on 60 requests: beyond the 10% margin, but well inside sampling noise
    base = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(lognormal(20, 0.5, 20))},
                            seconds=3, seed=3))
    current = make_run(RunSpec(scenario(["p95 < 1s"]),
                               {EAST: CellSpec(lognormal(23, 0.5, 20))}, seconds=3, seed=4))
    _, result = _gate(current, _window(base))
    (p95,) = [c for c in result.comparisons if c.metric == "p95"]
    assert p95.current is not None and p95.baseline is not None
    assert p95.current > p95.baseline * 1.10  # the point estimates alone would fail the build
    assert not p95.regressed and p95.verdict == "worse, not significant"
    assert result.exit_code == ExitCode.OK


def test_error_rate_regression_and_margin(make_run: MakeRun) -> None:
    base = make_run(RunSpec(scenario(["error_rate < 50%"]),
                            {EAST: CellSpec(uniform(1, 5, 500), failures=lambda s: 1)},
                            seconds=5))
    worse = make_run(RunSpec(scenario(["error_rate < 50%"]),
                             {EAST: CellSpec(uniform(1, 5, 500), failures=lambda s: 40)},
                             seconds=5))
    _, result = _gate(worse, _window(base))
    (errors,) = [c for c in result.comparisons if c.metric == "error_rate"]
    assert errors.regressed and result.exit_code == ExitCode.REGRESSION
    # a 10-point margin tolerates the same worsening
    run = load_run(worse.path)
    spec = replace(parse_gate_spec(run.scenario), error_margin=0.10)
    assert gate(spec, window_from_run(run, 0), _window(base)).exit_code == ExitCode.OK


def test_compared_scopes_follow_the_thresholds(make_run: MakeRun) -> None:
    cells = {EAST: CellSpec(lognormal(20, 0.4, 200)), ASIA: CellSpec(lognormal(20, 0.4, 200))}
    base = make_run(RunSpec(scenario(["p95{region: asia} < 1s"]), cells, seconds=4, seed=5))
    slow_asia = {EAST: cells[EAST], ASIA: CellSpec(lognormal(60, 0.4, 200))}
    current = make_run(RunSpec(scenario(["p95{region: asia} < 1s"]), slow_asia, seconds=4,
                               seed=6))
    _, result = _gate(current, _window(base))
    scopes = {(c.metric, c.scope_label) for c in result.regressions}
    assert ("p95", "region=asia") in scopes


def test_breach_outranks_regression_and_invalid_outranks_both(make_run: MakeRun) -> None:
    base = make_run(RunSpec(scenario(["p95 < 10ms"]), {EAST: CellSpec(uniform(1, 5, 200))},
                            seconds=3))
    slow = RunSpec(scenario(["p95 < 10ms"]), {EAST: CellSpec(uniform(50, 60, 200))}, seconds=3)
    _, result = _gate(make_run(slow), _window(base))
    assert result.regressions and result.breaches
    assert result.exit_code == ExitCode.BREACH
    invalid = replace(slow, validity=Validity.invalid("target unreachable"))
    _, result = _gate(make_run(invalid), _window(base))
    assert result.exit_code == ExitCode.INVALID


def test_baseline_file_round_trip(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 1s"]),
                               {EAST: CellSpec(uniform(1, 9, 50), corrected_extra_ms=3.0),
                                ASIA: CellSpec(uniform(5, 20, 30), failures=lambda s: 1)},
                               seconds=3))
    window = _window(written)
    data = baseline_to_json(window, {"run_id": "r1"})
    back = baseline_from_json(data, source="b.json")
    assert back.cells == window.cells
    assert (back.duration_s, back.users_max) == (window.duration_s, window.users_max)


@pytest.mark.parametrize("data", [{"format": "other"}, [], {"format": "pitchey-gate-baseline",
                                                            "format_version": 9, "cells": []},
                                  {"format": "pitchey-gate-baseline", "format_version": 1,
                                   "cells": [{"region": "x"}]}])
def test_bad_baseline_file_is_a_configuration_error(data: object) -> None:
    with pytest.raises(GateConfigError, match="^b.json"):
        baseline_from_json(data, source="b.json")


# --- confidence intervals --------------------------------------------------------------------


def test_quantile_interval_brackets_the_true_quantile_at_the_stated_rate() -> None:
    rng = np.random.default_rng(7)
    true_p95 = float(np.exp(np.log(20) + 0.5 * 1.6448536269514722))  # lognormal quantile
    covered = 0
    trials = 200
    for _ in range(trials):
        hist = Histogram.from_values_ms(rng.lognormal(np.log(20), 0.5, 400))
        low, high = quantile_interval(hist, 0.95, 0.95)
        covered += low <= true_p95 <= high
    assert covered / trials >= 0.90  # nominal 95%, with HDR rounding and 200 trials of slack


def test_quantile_interval_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(8)
    small = Histogram.from_values_ms(rng.lognormal(3, 0.5, 100))
    large = Histogram.from_values_ms(rng.lognormal(3, 0.5, 100_000))
    width = [(h := quantile_interval(x, 0.95, 0.95))[1] - h[0] for x in (small, large)]
    assert width[1] < width[0] / 5


def test_rate_interval_contains_the_observed_rate() -> None:
    low, high = rate_interval(5, 1000, 0.95)
    assert low < 0.005 < high
    assert rate_interval(0, 1000, 0.95)[0] == 0.0


# --- abort on fail ---------------------------------------------------------------------------


def _cell(latencies_ms: list[float], failures: int = 0) -> Cell:
    return Cell(*EAST, requests=len(latencies_ms), failures=failures,
                service=Histogram.from_values_ms(latencies_ms))


def test_should_abort_respects_warm_up_and_grace() -> None:
    spec = GateSpec(parse_thresholds([{"check": "p95 < 100ms", "abort_on_fail": True,
                                       "grace": "5s"}]), warmup_s=10.0)
    slow = Window((_cell([500.0] * 20),), duration_s=3.0, users_max=5)
    assert should_abort(spec, slow, elapsed=14.0) is None  # warm-up 10 s + grace 5 s
    reason = should_abort(spec, slow, elapsed=15.0)
    assert reason is not None and "p95 < 100ms" in reason and "limit < 100ms" in reason


def test_should_abort_ignores_thresholds_without_abort_on_fail_and_empty_scopes() -> None:
    thresholds = parse_thresholds(["p95 < 100ms",
                                   {"check": "p95{region: asia} < 1ms", "abort_on_fail": True}])
    slow = Window((_cell([500.0] * 20),), duration_s=3.0, users_max=5)
    assert should_abort(thresholds, slow, elapsed=60.0) is None


def test_failures_abort_at_once() -> None:
    thresholds = parse_thresholds([{"check": "failures == 0", "abort_on_fail": True}])
    window = Window((_cell([1.0] * 10, failures=1),), duration_s=1.0, users_max=1)
    assert "failures == 0" in (should_abort(thresholds, window, elapsed=1.0) or "")


def test_abort_monitor_accumulates_after_the_warm_up() -> None:
    spec = GateSpec(parse_thresholds([{"check": "p95 < 100ms", "abort_on_fail": True}]),
                    warmup_s=2.0)
    monitor = AbortMonitor(spec)
    assert monitor.active
    # the warm-up is slow and must not count; afterwards 94% fast, 6% slow -> p95 slow
    assert monitor.observe(1.0, [_cell([900.0] * 50)], users=5) is None
    assert monitor.observe(2.0, [_cell([900.0] * 50)], users=5) is None
    assert monitor.observe(3.0, [_cell([10.0] * 100)], users=5) is None
    reason = None
    for second in range(4, 10):
        reason = reason or monitor.observe(float(second), [_cell([10.0] * 90 + [900.0] * 10)],
                                           users=5)
    assert reason is not None and "p95" in reason
    assert not AbortMonitor(GateSpec(parse_thresholds(["p95 < 1s"]))).active


def test_a_run_stopped_by_abort_on_fail_exits_1(make_run: MakeRun) -> None:
    from testing.rundirs import START

    reason = "p95 < 100ms failed after 12s: p95 = 180ms, limit < 100ms"
    stopped = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(uniform(1, 5, 50))},
                               seconds=3, events=[(START + 2, "abort", {
                                   "reason": reason, "threshold": "p95 < 100ms"})]))
    _, result = _gate(stopped)
    assert result.checks[0].passed and result.aborted == (reason,)
    assert result.exit_code == ExitCode.BREACH
    # the reason should_abort returns is recognised without a threshold field too
    aborting = {"check": "p95 < 1s", "abort_on_fail": True}
    monitor_reason = should_abort(parse_thresholds([aborting]),
                                  Window((_cell([2000.0] * 10),), 1.0, 1), elapsed=12.0)
    assert monitor_reason is not None
    recorded = make_run(RunSpec(scenario([aborting]), {EAST: CellSpec(uniform(1, 5, 50))},
                                seconds=3, events=[(START + 2, "abort",
                                                    {"reason": monitor_reason})]))
    assert _gate(recorded)[1].aborted == (monitor_reason,)
    # an abort that no threshold caused (Ctrl-C) is the run's business, not a breach
    interrupted = make_run(RunSpec(scenario(["p95 < 1s"]), {EAST: CellSpec(uniform(1, 5, 50))},
                                   seconds=3, events=[(START + 2, "abort",
                                                       {"reason": "interrupted"})]))
    assert _gate(interrupted)[1].exit_code == ExitCode.OK
