"""The cost model, its price table and the usage profile it is fed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from collectors.models.cost import TargetLoad, project_cost
from collectors.models.prices import (
    DEFAULT_PRICES_PATH,
    PriceTableError,
    load_price_table,
    parse_price_table,
)
from collectors.models.usage import (
    Quantity,
    ServiceTotals,
    measure_usage,
    service_totals,
    split_endpoint,
)

REFERENCE_LOAD = TargetLoad(users=100_000, think_time_s=5.0, response_time_s=0.1)
MIX = {"GET /api/pitches": 700.0, "GET /api/pitches/{id}": 200.0, "POST /api/pitches": 40.0,
       "GET /api/messages": 40.0, "POST /api/auth/creator/login": 20.0}


def one_kv_read_per_request() -> object:
    usage = measure_usage(MIX, ServiceTotals(), mean_response_s=0.1)
    return usage.with_changes(kv_reads=Quantity(1.0, "assumed", "one uncached read"))


def test_reference_worked_check() -> None:
    """cloud-pricing.md: 19,600 req/s, 50.8 billion requests in 30 days, ~$15,200 of Workers
    requests and ~$25,400 of KV reads at one uncached read per request."""
    cost = project_cost(one_kv_read_per_request(), REFERENCE_LOAD)  # type: ignore[arg-type]
    assert round(REFERENCE_LOAD.requests_per_s, -2) == 19_600
    assert cost.requests_per_month == pytest.approx(50.8e9, rel=0.001)
    assert cost.driver("workers_requests").cost_usd == pytest.approx(15_200, rel=0.005)
    assert cost.driver("kv_reads").cost_usd == pytest.approx(25_400, rel=0.005)
    assert cost.driver("kv_reads").cost_usd > cost.driver("workers_requests").cost_usd


def test_totals_per_million_and_per_user() -> None:
    cost = project_cost(one_kv_read_per_request(), REFERENCE_LOAD)  # type: ignore[arg-type]
    assert cost.total_usd == pytest.approx(sum(d.cost_usd for d in cost.drivers))
    assert cost.per_million_requests == pytest.approx(
        cost.total_usd / (cost.requests_per_month / 1e6))
    assert cost.per_user_month == pytest.approx(cost.total_usd / 100_000)
    assert not cost.within_budget  # far above $5,000
    assert cost.budget_days == pytest.approx(5000 / cost.per_day)
    assert set(cost.by_group()) == {"Workers", "KV", "R2", "Durable Objects", "Neon"}


def test_allowances_make_a_tiny_load_cost_only_the_minimums() -> None:
    cost = project_cost(one_kv_read_per_request(),  # type: ignore[arg-type]
                        TargetLoad(users=1, think_time_s=30, response_time_s=0.05))
    assert cost.driver("workers_requests").cost_usd == 0.0  # 86k requests < 10M included
    assert cost.driver("kv_reads").cost_usd == 0.0
    assert cost.driver("workers_base").cost_usd == 5.0


def test_cost_scales_linearly_above_allowances() -> None:
    usage = one_kv_read_per_request()
    one = project_cost(usage, TargetLoad(100_000, 30, 0.1))  # type: ignore[arg-type]
    two = project_cost(usage, TargetLoad(200_000, 30, 0.1))  # type: ignore[arg-type]
    included = 10_000_000 / 1e6 * 0.30
    assert two.driver("workers_requests").cost_usd + included == pytest.approx(
        2 * (one.driver("workers_requests").cost_usd + included))


def test_every_price_has_a_source_and_a_date() -> None:
    table = load_price_table()
    assert table.version
    for price in table.prices.values():
        assert price.source and price.as_of[:2] == "20"
    assert table["workers_requests"].price == 0.30
    assert table["kv_reads"].price == 0.50
    assert table["neon_compute_scale"].as_of == "2026-03-20"
    assert sum(table.reference_estimates.values()) == 3823  # the Auto-Scaling document's total


def test_price_table_errors_name_file_line_and_key(tmp_path: Path) -> None:
    text = DEFAULT_PRICES_PATH.read_text().replace("    price: 0.50\n", "    price: cheap\n", 1)
    bad = tmp_path / "prices.yaml"
    bad.write_text(text)
    with pytest.raises(PriceTableError) as info:
        load_price_table(bad)
    message = str(info.value)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "price: cheap" in row)
    assert message.startswith(f"{bad}:{line}: prices.kv_reads.price: must be a number")


def test_price_table_rejects_broken_yaml_and_missing_prices(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match=r"^x.yaml:2: not valid YAML: [^\n]+$"):
        parse_price_table("format: pitchey-prices\nprices: x: y\n", "x.yaml")
    with pytest.raises(PriceTableError, match="prices.workers_base: is missing"):
        parse_price_table("format: pitchey-prices\nprices: {}\n", "x.yaml")
    with pytest.raises(PriceTableError, match="format: must be 'pitchey-prices'"):
        parse_price_table("a: 1\n", "x.yaml")
    with pytest.raises(PriceTableError, match="cannot read"):
        load_price_table(tmp_path / "absent.yaml")


def test_split_endpoint() -> None:
    assert split_endpoint("GET /api/pitches/{id}") == ("GET", "/api/pitches/{id}")
    assert split_endpoint("post /api/pitches") == ("POST", "/api/pitches")
    assert split_endpoint("/api/pitches") == ("GET", "/api/pitches")


def service_frame() -> pd.DataFrame:
    rows = []

    def add(t: float, target: str, metric: str, labels: dict[str, str], value: float) -> None:
        rows.append({"t": t, "target": target, "metric": metric,
                     "labels": json.dumps(labels, sort_keys=True), "value": value})

    for target in ("edge", "us-east"):
        add(0, target, "pitchey_cache_lookups_total", {"cache": "app"}, 100)
        add(10, target, "pitchey_cache_lookups_total", {"cache": "app"}, 600)
        add(0, target, "pitchey_cache_hits_total", {"cache": "app"}, 50)
        add(10, target, "pitchey_cache_hits_total", {"cache": "app"}, 450)
        add(0, target, "pitchey_db_queries_total", {"operation": "select"}, 10)
        add(10, target, "pitchey_db_queries_total", {"operation": "select"}, 110)
        add(0, target, "process_cpu_seconds_total", {}, 1.0)
        add(10, target, "process_cpu_seconds_total", {}, 2.0)
        add(10, target, "pitchey_storage_used_bytes", {}, 5e6)
    # a restart of the us-east worker: its counter drops and climbs again
    add(20, "us-east", "pitchey_db_queries_total", {"operation": "select"}, 30)
    return pd.DataFrame(rows)


def test_service_totals_sum_increases_and_survive_counter_resets() -> None:
    totals = service_totals(service_frame())
    assert totals.cache_lookups == {"app": 1000.0}
    assert totals.cache_hits == {"app": 800.0}
    assert totals.db_statements == 230.0  # 100 + 100 + 30 after the reset
    assert totals.cpu_seconds == 2.0
    assert totals.storage_bytes == 5e6
    assert service_totals(None) == ServiceTotals()


def test_measured_usage_uses_the_run_and_labels_assumptions() -> None:
    mix = {"GET /api/pitches": 900.0, "POST /api/pitches": 100.0}
    usage = measure_usage(mix, service_totals(service_frame()), mean_response_s=0.05)
    assert usage.kv_reads == Quantity(1.0, "measured", usage.kv_reads.note)
    # fills at the measured 80% hit rate plus one invalidation per write request
    assert usage.kv_writes.value == pytest.approx(1.0 * 0.2 + 0.1)
    assert usage.hit_rates["app"].value == pytest.approx(0.8)
    assert usage.hit_rates["edge"].basis == "assumed"
    assert usage.db_statements.value == pytest.approx(0.23)
    assert usage.cpu_ms.value == pytest.approx(2.0)  # 2 CPU-s over 1,000 requests
    assert usage.r2_class_a.value == pytest.approx(0.1)
    assert usage.write_share == pytest.approx(0.1)


def test_unmeasured_usage_falls_back_to_seed_hit_rates() -> None:
    usage = measure_usage({"GET /api/pitches": 1.0}, ServiceTotals(), mean_response_s=0.1)
    assert usage.kv_reads.basis == "assumed"
    # misses of the Auto-Scaling document's edge cache
    assert usage.kv_reads.value == pytest.approx(1 - 0.85)
    assert usage.cpu_ms.basis == "assumed"


def test_target_load_validates() -> None:
    with pytest.raises(ValueError):
        TargetLoad(users=-1, think_time_s=1, response_time_s=0.1)
    with pytest.raises(ValueError):
        TargetLoad(users=1, think_time_s=0, response_time_s=0)
