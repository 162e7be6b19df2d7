"""The tornado of the cost model's assumptions, checked against arithmetic done here by hand,
and the gate's cost projection that carries its range."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from collectors import load_run
from collectors.models.cost import TargetLoad, project_cost
from collectors.models.prices import default_price_table
from collectors.models.tornado import cost_tornado, tornado
from collectors.models.usage import (
    Quantity,
    ServiceTotals,
    UsageProfile,
    assumption_range,
    measure_usage,
)
from collectors.targets import PRODUCT_TARGETS
from gate.projections import capacity_model, cost_breakdown, product_inputs, project
from gate.window import bounds_of
from testing.demo import DemoSpec, write_demo_run

LOAD = TargetLoad(users=100_000, think_time_s=5.0, response_time_s=0.1)
MIX = {"GET /api/pitches": 800.0, "GET /api/pitches/{id}": 100.0, "POST /api/pitches": 60.0,
       "GET /api/messages": 40.0}
TOTALS = ServiceTotals(cache_lookups={"app": 1200.0}, cache_hits={"app": 900.0},
                       db_statements=700.0, cpu_seconds=2.5, cpu_targets=("service",))


def usage() -> UsageProfile:
    return measure_usage(MIX, TOTALS, mean_response_s=0.1)


def requests_per_month() -> float:
    return 100_000 / (5.0 + 0.1) * 86_400 * 30


def test_the_kv_write_swing_matches_a_hand_computation() -> None:
    """Fills are the measured misses (300 of 1,200 lookups over 1,000 requests) and one
    generation bump per non-auth write (60): at 100 % every one is a $5-per-million KV write
    beyond the 1M included, at 0 % none is."""
    per_request = 300 / 1000 + 60 / 1000
    writes = per_request * requests_per_month()
    expected = max(0.0, writes - 1e6) / 1e6 * 5.0
    bar = next(b for b in tornado(usage(), LOAD).bars if b.key == "kv_write_share")
    assert bar.total_at_high - bar.total_at_low == pytest.approx(expected, rel=1e-9)
    assert (bar.low, bar.central, bar.high) == (0.0, 0.5, 1.0)


def test_the_r2_write_swing_matches_a_hand_computation() -> None:
    """60 pitch creates in 1,000 requests, 0 to 3 object writes each, $4.50 per million beyond
    1M included."""
    writes_high = 60 / 1000 * 3 * requests_per_month()
    expected = max(0.0, writes_high - 1e6) / 1e6 * 4.5
    bar = next(b for b in tornado(usage(), LOAD).bars if b.key == "r2_class_a_per_upload")
    assert bar.total_at_high - bar.total_at_low == pytest.approx(expected, rel=1e-9)


def test_central_total_bars_sorted_and_only_what_the_profile_rests_on() -> None:
    spread = tornado(usage(), LOAD)
    assert spread.central_usd == pytest.approx(project_cost(usage(), LOAD).total_usd)
    swings = [b.swing_usd for b in spread.bars]
    assert swings == sorted(swings, reverse=True)
    keys = {b.key for b in spread.bars}
    # measured here: CPU, database statements, the application cache's hit rate
    assert not keys & {"cpu_ms_per_request", "db_statements_per_write", "app_hit_rate"}
    assert spread.largest is not None and spread.largest.key == "kv_write_share"
    for bar in spread.bars:
        r = assumption_range(bar.key)
        assert (bar.low, bar.high) == (r.low, r.high)
        assert min(bar.total_at_low, bar.total_at_high) >= spread.low_usd - 1e-6
        assert max(bar.total_at_low, bar.total_at_high) <= spread.high_usd + 1e-6


def test_the_range_bounds_every_combination_of_the_ends() -> None:
    """Brute force over every corner of the ranges (2^k months priced independently of the
    tornado's own choice of ends)."""
    profile = usage()
    spread = tornado(profile, LOAD)
    keys = profile.assumed_keys
    assert len(keys) >= 8
    totals = []
    for ends in itertools.product((0, 1), repeat=len(keys)):
        values = {k: (assumption_range(k).low, assumption_range(k).high)[e]
                  for k, e in zip(keys, ends, strict=True)}
        again = measure_usage(MIX, TOTALS, mean_response_s=0.1,
                              assumptions=replace(profile.assumptions, **values))
        totals.append(project_cost(again, LOAD).total_usd)
    assert spread.low_usd == pytest.approx(min(totals), rel=1e-9)
    assert spread.high_usd == pytest.approx(max(totals), rel=1e-9)
    assert spread.low_usd <= spread.central_usd <= spread.high_usd


def test_a_what_if_copy_has_no_tornado() -> None:
    changed = usage().with_changes(kv_reads=Quantity(1.0, "assumed", "", 0.0, 2.0))
    assert cost_tornado(project_cost(changed, LOAD)) is None
    with pytest.raises(ValueError, match="no source"):
        changed.with_assumptions(kv_write_share=1.0)
    assert cost_tornado(project_cost(usage(), LOAD)) is not None


def test_the_gates_cost_projection_is_a_range_naming_the_largest_swing(
        tmp_path: Path) -> None:
    run = load_run(write_demo_run(tmp_path, DemoSpec(endpoints=6, step_s=5, steps=(10, 20))))
    bounds = bounds_of(run, 5)
    inputs = product_inputs(run)
    (cost,) = [p for p in project(run, bounds, inputs) if p.unit == "USD/month"]
    assert cost.name == f"monthly cost for {PRODUCT_TARGETS.users:,} users"
    assert cost.available and cost.value is not None
    assert cost.low is not None and cost.high is not None
    assert cost.low <= cost.value <= cost.high and cost.low < cost.high
    assert cost.limit == PRODUCT_TARGETS.budget_usd_month
    assert cost.ok is (cost.value <= cost.limit)
    # priced at the load the capacity sizing projects (the same R for both)
    sizing = capacity_model(run, inputs).sizing
    assert sizing is not None
    breakdown, _ = cost_breakdown(run, bounds, inputs,
                                  (sizing.response_s, sizing.response_source))
    assert breakdown is not None
    assert breakdown.load.response_time_s == sizing.response_s
    spread = cost_tornado(breakdown)
    assert spread is not None and spread.largest is not None
    assert (cost.low, cost.value, cost.high) == pytest.approx(
        (spread.low_usd, spread.central_usd, spread.high_usd))
    (largest,) = [a for a in cost.assumptions if a.startswith("largest swing: ")]
    assert spread.largest.label in largest
    assert sum(a.startswith("assumed: ") for a in cost.assumptions) == sum(
        b.swing_usd > 0 for b in spread.bars)
    assert any(a.startswith("range: every assumption") for a in cost.assumptions)
    assert default_price_table().version in " ".join(cost.assumptions)
