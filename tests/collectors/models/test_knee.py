"""The knee of measured steps, its bootstrap interval, the trust rules, and the steps of a
breakpoint run read back from its run directory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.hdr import Histogram
from collectors.models.knee import Knee, capacity_estimate, knee
from collectors.models.steps import StepSeconds, breakpoint_steps, frame_from_seconds
from collectors.run import load_run
from testing.rundirs import START, CellSpec, RunSpec, scenario, write_run

Z95 = 1.6448536269514722


def _frame(throughput: list[float], p95: list[float], errors: list[float] | None = None
           ) -> pd.DataFrame:
    rates = [t * 1.01 for t in throughput]
    return pd.DataFrame({"rate": rates, "throughput": throughput, "p95_ms": p95,
                         "error_rate": errors or [0.0] * len(p95)})


def test_the_knee_is_interpolated_in_p95_between_the_last_step_held_and_the_next() -> None:
    found = knee(_frame([100, 200, 300, 400], [40, 70, 130, 300]), 100.0)
    assert found.status == "reached" and found.reason == "p95"
    assert found.throughput_rps == pytest.approx(200 + 100 * (100 - 70) / (130 - 70))
    assert found.offered == pytest.approx(1.01 * found.throughput_rps)
    assert (found.held, found.failed) == (1, 2)
    # steps given out of order are read in the order load was offered
    shuffled = _frame([300, 100, 400, 200], [130, 40, 300, 70])
    assert knee(shuffled, 100.0).throughput_rps == found.throughput_rps
    # a step that failed by its errors is not interpolated into: the last held step counts
    errors = knee(_frame([100, 200, 300], [40, 60, 80], [0, 0, 0.05]), 100.0)
    assert errors.status == "reached" and errors.reason == "errors"
    assert errors.throughput_rps == 200


def test_not_reached_and_below_the_first_step() -> None:
    held = knee(_frame([100, 200, 300], [20, 30, 45]), 100.0)
    assert held.status == "not_reached" and held.throughput_rps == 300
    assert "at least 300" in held.text
    below = knee(_frame([100, 200], [150, 300]), 100.0)
    assert below.status == "below_first" and below.throughput_rps is None
    assert "below the first step" in below.text


def _seconds(rng: np.random.Generator, rate: float, median_ms: float, sigma: float,
             hold: int) -> StepSeconds:
    return StepSeconds.from_latencies(
        [rng.lognormal(math.log(median_ms), sigma, rng.poisson(rate)) for _ in range(hold)])


def test_the_bootstrap_interval_contains_the_true_knee() -> None:
    rates, true_p95, sigma, hold, target = [100, 200, 300, 400], [40, 80, 130, 200], 0.5, 20, 100
    truth = 200 + 100 * (target - 80) / (130 - 80)
    covered, widths = 0, []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        seconds = [_seconds(rng, r, p / math.exp(Z95 * sigma), sigma, hold)
                   for r, p in zip(rates, true_p95, strict=True)]
        found = knee(frame_from_seconds(seconds, rates), target, seconds, seed=seed)
        assert found.low is not None and found.high is not None and found.resamples == 500
        assert found.low <= found.throughput_rps <= found.high  # type: ignore[operator]
        covered += found.low <= truth <= found.high
        widths.append((found.high - found.low) / truth)
    assert covered >= 8  # a 95 % interval: 10 of 10 expected, 8 tolerated
    assert 0.005 < float(np.median(widths)) < 0.3  # neither degenerate nor useless


def test_the_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(3)
    seconds = [_seconds(rng, r, m, 0.4, 10) for r, m in ((50, 20), (100, 60), (150, 90))]
    frame = frame_from_seconds(seconds, [50, 100, 150])
    assert knee(frame, 60, seconds, seed=7) == knee(frame, 60, seconds, seed=7)


def _knee(status: str, value: float | None, low: float | None = None,
          high: float | None = None) -> Knee:
    return Knee(status, value, low, high, None, None, None, "", 100.0, 500, 0.95,  # type: ignore[arg-type]
                f"knee {status}")


def test_trust_rules() -> None:
    reached = capacity_estimate(_knee("reached", 400, 380, 420), 1000, None)
    assert (reached.source, reached.trusted, reached.per_instance_rps) == ("knee", "knee", 400)
    assert (reached.low, reached.high) == (380, 420)
    assert len(reached.disagreements) == 1 and "60% below X_max" in reached.disagreements[0]
    assert "queueing" in reached.disagreements[0] and "100 %-CPU" in reached.disagreements[0]
    close = capacity_estimate(_knee("reached", 400, 380, 420), 450, None)
    assert close.disagreements == ()
    above = capacity_estimate(_knee("reached", 400, 380, 420), 200, None)
    assert "above X_max" in above.disagreements[0] and above.source == "knee"

    at_least = capacity_estimate(_knee("not_reached", 300, 290, 310), 900, None)
    assert at_least.trusted == "knee (at least)" and at_least.per_instance_rps == 300
    assert (at_least.low, at_least.high) == (290, 900) and "bounds it above" in at_least.why
    unbounded = capacity_estimate(_knee("not_reached", 300, 290, 310), None, None,
                                  x_max_note="no CPU series")
    assert unbounded.high == 310 and "no CPU series" in unbounded.why

    below = capacity_estimate(_knee("below_first", None), 900, None)
    assert not below.available and below.source == "none" and "start the steps lower" in \
        below.why
    ceiling = capacity_estimate(None, 900, None, no_knee="no steps")
    assert ceiling.source == "x_max" and ceiling.per_instance_rps == 900
    assert "ignores the p95 target" in ceiling.why
    nothing = capacity_estimate(None, None, None, x_max_note="no CPU series", no_knee="no steps")
    assert not nothing.available and nothing.why == "no steps and no X_max (no CPU series)"
    usl = capacity_estimate(_knee("reached", 400, 380, 420), None, 250.0)
    assert "USL" in usl.disagreements[0]


def _median(second: int) -> float:
    return (10.0, 25.0, 50.0, 150.0)[min(second // 10, 3)]


def test_breakpoint_steps_read_back_what_was_written(tmp_path: Path) -> None:
    rates = [20, 40, 80, 160]
    events = [(START + 10 * i + 9.5, "step", {"index": i, "rate": r, "start": START + 10 * i + 2,
                                               "end": START + 10 * i + 10})
              for i, r in enumerate(rates)]
    cell = CellSpec(lambda s, rng: rng.lognormal(math.log(_median(s)), 0.3, 10 + 3 * s),
                    failures=lambda s: 1 if s >= 30 else 0)
    written = write_run(tmp_path, RunSpec(scenario(), {("us-east", "GET /", "x"): cell},
                                          seconds=40, events=events))
    steps = breakpoint_steps(load_run(written.path))
    assert steps["rate"].tolist() == rates and steps["seconds"].tolist() == [8.0] * 4
    for i, row in steps.iterrows():
        held = range(10 * int(i) + 2, 10 * int(i) + 10)
        values = written.select(seconds=held)
        assert row["requests"] == values.size
        assert row["throughput"] == pytest.approx(values.size / 8)
        assert row["p95_ms"] == Histogram.from_values_ms(values).quantile(0.95)
        assert row["error_rate"] == pytest.approx((8 if i == 3 else 0) / values.size)
    found = knee(steps, 100.0)
    assert found.status == "reached" and found.failed == 3
    x, p = steps["throughput"].tolist(), steps["p95_ms"].tolist()
    assert found.throughput_rps == pytest.approx(x[2] + (x[3] - x[2]) * (100 - p[2]) /
                                                 (p[3] - p[2]))
