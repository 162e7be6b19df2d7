"""`evaluate_run` and `record_verdict` over synthetic run directories (collectors' RunWriter).

Every expected figure is computed from the latencies the run was written with; the product's
targets are read from collectors.targets, never re-typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from collectors.hdr import Histogram
from collectors.run import load_run
from collectors.summary import summarize
from collectors.targets import PRODUCT_TARGETS
from collectors.validity import Validity
from gate.cli import main
from gate.evaluation import evaluate_run, record_verdict, spec_from_run
from gate.thresholds import ThresholdError, parse_gate_spec
from gate.verdict import RunVerdict
from gate.window import window_from_run
from testing.demo import DemoSpec, write_demo_run
from testing.rundirs import (
    START,
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
WARMUP = 3
# us-east is fast after a slow warm-up; asia (4 % of the traffic) is slower than the
# product's p95 target but within the scenario's, and its one write a second fails (0.2 %)
CELLS = {
    EAST: CellSpec(warm_then(WARMUP, uniform(500, 900, 30), lognormal(20, 0.5, 500))),
    ASIA: CellSpec(lognormal(120, 0.2, 20)),
    ASIA_WRITE: CellSpec(lognormal(150, 0.1, 1), failures=lambda s: 1),
}
THRESHOLDS = ["p99 < 1s", {"scope": {"region": "asia"}, "check": "p95 < 250ms"},
              "error_rate < 5%", "rps > 10/s", "max < 2s", "requests > 100"]


def _geo_run(make_run: MakeRun, **extra: object) -> WrittenRun:
    return make_run(RunSpec(scenario(THRESHOLDS, warmup=f"{WARMUP}s", **extra), CELLS,
                            seconds=10))


def _verdict(written: WrittenRun) -> RunVerdict:
    run = load_run(written.path)
    return evaluate_run(run, spec_from_run(run))


def test_every_measured_value_is_computed_from_the_recorded_latencies(make_run: MakeRun) -> None:
    written = _geo_run(make_run)
    verdict = _verdict(written)
    after = written.values(after=WARMUP)
    asia = written.values(after=WARMUP, cells=[ASIA, ASIA_WRITE])
    east = written.values(after=WARMUP, cells=[EAST])
    requests, failures = written.counts(after=WARMUP)
    expected = {
        ("p99 < 1s", ()): Histogram.from_values_ms(after).percentile(99),
        ("p95 < 250ms", (("region", "asia"),)): Histogram.from_values_ms(asia).percentile(95),
        ("error_rate < 5%", ()): failures / requests,
        ("rps > 10/s", ()): requests / (10 - WARMUP),
        ("max < 2s", ()): Histogram.from_values_ms(after).max_ms,
        ("requests > 100", ()): float(requests),
        # the product's targets: p95 overall and per region (two regions), error rate overall
        ("p95 < 100ms", ()): Histogram.from_values_ms(after).percentile(95),
        ("p95 < 100ms", (("region", "asia"),)): Histogram.from_values_ms(asia).percentile(95),
        ("p95 < 100ms", (("region", "us-east"),)): Histogram.from_values_ms(east).percentile(95),
        ("error_rate < 0.1%", ()): failures / requests,
    }
    measured = {(c.name, c.scope): c.measured for c in verdict.checks}
    assert measured.keys() == expected.keys()
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, rel=1e-12), key
    for check in verdict.checks:
        assert check.ok == (check.measured is not None and (
            check.measured < check.limit if check.op == "<" else check.measured > check.limit))
        assert check.measured_text in check.message and check.limit_text in check.message
        assert check.source in check.message
    # asia's writes (300 ms, and failing) break the product's targets, not the scenario's
    failed = {(c.name, c.scope_label) for c in verdict.failed}
    assert failed == {("p95 < 100ms", "region=asia"), ("error_rate < 0.1%", "global")}
    assert verdict.status == "breach" and verdict.exit_code == 1
    assert verdict.line.startswith("gate: FAIL (exit 1): 2 of 10 checks failed: ")


def test_sources_name_the_scenario_threshold_or_the_product_target(make_run: MakeRun) -> None:
    verdict = _verdict(_geo_run(make_run))
    sources = [c.source for c in verdict.checks]
    assert sources[:len(THRESHOLDS)] == [f"scenario synthetic: thresholds[{i}]"
                                         for i in range(len(THRESHOLDS))]
    product = sources[len(THRESHOLDS):]
    assert product == [
        f"product target: p95 < {PRODUCT_TARGETS.p95_ms:g} ms (docs/targets.md)"] * 3 + [
        f"product target: error rate < {PRODUCT_TARGETS.error_rate * 100:g}% (docs/targets.md)"]


def test_product_targets_can_be_turned_off(make_run: MakeRun) -> None:
    written = _geo_run(make_run, gate={"product_targets": False})
    verdict = _verdict(written)
    assert [c.name for c in verdict.checks] == [
        "p99 < 1s", "p95 < 250ms", "error_rate < 5%", "rps > 10/s", "max < 2s", "requests > 100"]
    assert verdict.status == "pass" and verdict.exit_code == 0
    with pytest.raises(ThresholdError, match="gate.product_targets: expected true or false"):
        parse_gate_spec(scenario(gate={"product_targets": "yes"}))


def test_a_single_region_run_has_no_per_region_product_checks(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 100ms"]), {EAST: CellSpec(uniform(1, 5, 50))},
                               seconds=3))
    verdict = _verdict(written)
    # the scenario's p95 < 100ms is the product's: judged once, under the scenario's name
    assert [(c.name, c.scope_label, c.source) for c in verdict.checks] == [
        ("p95 < 100ms", "global", "scenario synthetic: thresholds[0], also a product target"),
        ("error_rate < 0.1%", "global",
         "product target: error rate < 0.1% (docs/targets.md)")]


def test_invalid_beats_breach_beats_regression(make_run: MakeRun) -> None:
    slow = {EAST: CellSpec(uniform(300, 400, 50))}
    invalid = make_run(RunSpec(scenario(), slow, seconds=3,
                               validity=Validity.invalid("load generator saturated")))
    verdict = _verdict(invalid)
    assert verdict.failed and verdict.status == "invalid" and verdict.exit_code == 3
    assert verdict.line == ("gate: INVALID (exit 3): the run cannot be judged: "
                            "load generator saturated")
    fast = make_run(RunSpec(scenario(), {EAST: CellSpec(uniform(1, 2, 200))}, seconds=3))
    slower = make_run(RunSpec(scenario(), {EAST: CellSpec(uniform(20, 30, 200))}, seconds=3,
                              seed=2))
    run = load_run(slower.path)
    regressed = evaluate_run(run, spec_from_run(run), window_from_run(load_run(fast.path), 0),
                             baseline_source="baselines/x.json")
    assert not regressed.failed and regressed.regressions
    assert regressed.status == "regression" and regressed.exit_code == 2
    assert regressed.line.startswith("gate: REGRESSION (exit 2): ")
    assert "against baselines/x.json: p95 global " in regressed.line
    assert regressed.to_json()["baseline"] == {"source": "baselines/x.json"}


def test_an_abort_on_fail_stop_is_a_failed_check(make_run: MakeRun) -> None:
    written = make_run(RunSpec(
        scenario([{"check": "p95 < 1ms", "abort_on_fail": True}]),
        {EAST: CellSpec(uniform(5, 10, 50))}, seconds=3,
        events=[(START + 2, "abort", {"reason": "p95 < 1ms failed after 2s: p95 = 9ms"})]))
    verdict = _verdict(written)
    (stop,) = [c for c in verdict.checks if c.kind == "abort"]
    assert not stop.ok and stop.note == "p95 < 1ms failed after 2s: p95 = 9ms"
    assert verdict.status == "breach"


def test_projections_are_labelled_and_never_change_the_status(tmp_path: Path) -> None:
    path = write_demo_run(tmp_path, DemoSpec(endpoints=4, step_s=10, failure_rate=0.0,
                                             base_response_s=0.01, scenario_name="passing"))
    run = load_run(path)
    spec = replace(spec_from_run(run), thresholds=())
    verdicts = [evaluate_run(run, spec, targets=replace(PRODUCT_TARGETS, budget_usd_month=b))
                for b in (1.0, 1e12)]
    cheap, rich = ({p.unit: p for p in v.projections} for v in verdicts)
    assert cheap["USD/month"].ok is False and rich["USD/month"].ok is True
    assert cheap["USD/month"].value == rich["USD/month"].value
    assert cheap["instances"].available and cheap["instances"].value is not None
    assert cheap["instances"].low <= cheap["instances"].value <= cheap["instances"].high
    assert verdicts[0].status == verdicts[1].status
    assert verdicts[0].exit_code == verdicts[1].exit_code
    assert [c.to_json() for c in verdicts[0].checks] == [c.to_json() for c in verdicts[1].checks]
    for projection in cheap.values():
        assert projection.to_json()["kind"] == "projection" and projection.assumptions
        assert f"{PRODUCT_TARGETS.users:,} concurrent users (product target)" in \
            projection.assumptions


def test_a_projection_the_run_cannot_support_says_why(make_run: MakeRun) -> None:
    # eight seconds hold no load step (10 s or more) and nothing scraped the CPU: no answer
    short = _verdict(make_run(RunSpec(scenario(), {EAST: CellSpec(uniform(1, 5, 50))},
                                      seconds=8)))
    capacity = next(p for p in short.projections if p.unit == "instances")
    assert not capacity.available and capacity.value is None
    assert "no concurrency level" in capacity.reason and "no X_max" in capacity.reason
    assert capacity.text == f"not available: {capacity.reason}"
    assert short.status == "pass"
    # every step missed the p95 target: no throughput held it
    slow = _verdict(make_run(RunSpec(scenario(), {EAST: CellSpec(uniform(150, 300, 50))},
                                     seconds=14)))
    capacity = next(p for p in slow.projections if p.unit == "instances")
    assert not capacity.available and "below the first step" in capacity.reason


STEP_RATES = (20, 40, 80, 160)
STEP_MEDIANS = (10.0, 25.0, 50.0, 150.0)


def _breakpoint_run(make_run: MakeRun) -> WrittenRun:
    """Four 10-s steps (2 s settle, 8 s hold) whose p95 crosses the target at the last."""
    events = [(START + 10 * i + 9.5, "step", {"index": i, "rate": r, "start": START + 10 * i + 2,
                                               "end": START + 10 * i + 10})
              for i, r in enumerate(STEP_RATES)]
    cell = CellSpec(lambda s, rng: rng.lognormal(np.log(STEP_MEDIANS[min(s // 10, 3)]), 0.3,
                                                 10 + 3 * s))
    return make_run(RunSpec(scenario(think_time="2s", gate={"product_targets": False}),
                            {EAST: cell}, seconds=40, events=events))


def test_the_instances_follow_the_response_time_law_and_the_knee(make_run: MakeRun) -> None:
    written = _breakpoint_run(make_run)
    verdict = _verdict(written)
    by_unit = {p.unit: p for p in verdict.projections}
    instances = by_unit["instances"]
    assert instances.available and instances.low is not None and instances.high is not None
    # independently: per step, the throughput and p95 of the latencies written in its hold
    holds = [written.select(seconds=range(10 * i + 2, 10 * i + 10)) for i in range(4)]
    x = [v.size / 8 for v in holds]
    p = [float(np.percentile(v, 95)) for v in holds]
    target = PRODUCT_TARGETS.p95_ms
    assert p[2] <= target < p[3]
    knee = x[2] + (x[3] - x[2]) * (target - p[2]) / (p[3] - p[2])
    held = np.concatenate(holds[:3])
    per_user = 1.0 / (held.mean() / 1000.0 + 2.0)  # X/N = 1/(R+Z), Z = the scenario's 2 s
    need = PRODUCT_TARGETS.users * per_user * 1.3  # 30 % headroom
    assert abs(instances.value - np.ceil(need / knee)) <= 1  # type: ignore[operator]
    assert instances.low <= instances.value <= instances.high
    text = " ".join(instances.assumptions)
    assert "trusted: knee" in text and "response time law" in text and "no X_max" in text
    cores = by_unit["cores"]
    assert cores.available and cores.value is not None and cores.value % instances.value == 0


def test_record_verdict_round_trip_and_window_figures(make_run: MakeRun) -> None:
    written = _geo_run(make_run)
    run = load_run(written.path)
    whole = dict(run.summary or {})
    verdict = evaluate_run(run, spec_from_run(run),
                           evaluated_at=datetime(2026, 12, 4, 18, 0, tzinfo=UTC))
    assert verdict.evaluated_at == "2026-12-04T18:00:00Z"
    record_verdict(written.path, verdict)
    summary = json.loads((written.path / "summary.json").read_text())
    assert RunVerdict.from_json(summary["verdict"]) == verdict
    assert summary["window"] == verdict.window.to_json()
    assert summary["window"]["start"] == START + WARMUP and verdict.window.warmup_s == WARMUP
    assert summary["whole_run"] == whole
    window = summarize(load_run(written.path), start=START + WARMUP)
    for key in ("requests", "failures", "error_rate", "latency_ms", "by_region"):
        assert summary[key] == json.loads(json.dumps(window[key])), key
    requests, failures = written.counts(after=WARMUP)
    assert (summary["requests"], summary["failures"]) == (requests, failures)
    asia_p95 = next(c for c in verdict.checks if c.scope_label == "region=asia"
                    and c.name == "p95 < 100ms")
    assert summary["by_region"]["asia"]["latency_ms"]["p95"] == asia_p95.measured
    # recording again (the gate after the run) keeps the whole-run figures as first written
    again = evaluate_run(load_run(written.path), spec_from_run(run))
    record_verdict(written.path, again)
    summary = json.loads((written.path / "summary.json").read_text())
    assert summary["whole_run"] == whole and summary["verdict"] == again.to_json()


def test_pitchey_gate_without_flags_reproduces_the_recorded_verdict(
        make_run: MakeRun, capsys: pytest.CaptureFixture[str]) -> None:
    written = _geo_run(make_run)
    run = load_run(written.path)
    recorded = evaluate_run(run, spec_from_run(run))
    record_verdict(written.path, recorded)
    assert main([str(written.path)]) == recorded.exit_code == 1
    assert capsys.readouterr().out.splitlines()[-1] == recorded.line
    again = json.loads((written.path / "summary.json").read_text())["verdict"]
    mine = recorded.to_json()
    assert {**again, "evaluated_at": ""} == {**mine, "evaluated_at": ""}


def test_the_window_cuts_whole_seconds_so_counts_and_latency_agree(make_run: MakeRun) -> None:
    written = make_run(RunSpec(scenario(["p95 < 1s"], warmup="2.5s"),
                               {EAST: CellSpec(lognormal(10, 0.3, 40))}, seconds=6))
    verdict = _verdict(written)
    (p95, errors) = verdict.checks[0], verdict.checks[-1]
    assert verdict.window.start == START + 3 and verdict.window.warmup_s == 2.5
    assert p95.samples == errors.samples == written.counts(after=3)[0]
    assert p95.measured == Histogram.from_values_ms(written.values(after=3)).percentile(95)
    assert np.isclose(verdict.window.duration_s, 3.0)
