"""Recommendations are re-priced with the cost model, so their savings are consistent."""

from __future__ import annotations

import pytest

from collectors.models.cost import TargetLoad, project_cost
from collectors.models.recommendations import recommend
from collectors.models.usage import Quantity, ServiceTotals, measure_usage

LOAD = TargetLoad(users=100_000, think_time_s=5.0, response_time_s=0.1)


def kv_heavy_usage() -> object:
    totals = ServiceTotals(cache_lookups={"app": 1000.0}, cache_hits={"app": 400.0},
                           db_statements=600.0, cpu_seconds=3.0)
    return measure_usage({"GET /api/pitches": 950.0, "POST /api/pitches": 50.0}, totals,
                         mean_response_s=0.1)


def test_kv_reads_beyond_requests_lead_to_edge_caching() -> None:
    usage = kv_heavy_usage()
    recs = {r.key: r for r in recommend(usage, LOAD)}  # type: ignore[arg-type]
    edge = recs["edge_cache"]
    assert "more than the Workers requests" in edge.evidence
    base = project_cost(usage, LOAD)  # type: ignore[arg-type]
    # At 85% edge hits only 15% of KV reads remain: the saving is at least 85% of KV reads.
    assert edge.saving_usd >= 0.85 * base.driver("kv_reads").cost_usd - 1
    assert edge.saving_usd < base.total_usd


def test_low_app_hit_rate_flags_kv_fills() -> None:
    recs = {r.key: r for r in recommend(kv_heavy_usage(), LOAD)}  # type: ignore[arg-type]
    assert recs["kv_fills"].saving_usd > 0
    assert "40%" in recs["kv_fills"].evidence


def test_regional_caching_saves_nothing_at_these_prices() -> None:
    recs = {r.key: r for r in recommend(kv_heavy_usage(), LOAD)}  # type: ignore[arg-type]
    assert recs["regional_caching"].saving_usd == 0.0


def test_sorted_by_saving_and_never_negative() -> None:
    recs = recommend(kv_heavy_usage(), LOAD)  # type: ignore[arg-type]
    savings = [r.saving_usd for r in recs]
    assert savings == sorted(savings, reverse=True)
    assert all(s >= 0 for s in savings)


def test_coalescing_at_the_compute_floor_says_it_saves_nothing() -> None:
    usage = kv_heavy_usage().with_changes(  # type: ignore[attr-defined]
        db_statements=Quantity(0.0001, "measured"))
    recs = {r.key: r for r in recommend(usage, LOAD)}
    assert recs["coalescing"].saving_usd == pytest.approx(0.0)
    assert "floor" in recs["coalescing"].action
