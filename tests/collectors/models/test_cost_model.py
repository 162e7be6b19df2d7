"""The cost model, its price table and the usage profile it is fed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from collectors.models.cost import TargetLoad, project_cost, reference_comparison
from collectors.models.prices import (
    DEFAULT_PRICES_PATH,
    PriceTableError,
    load_price_table,
    parse_price_table,
)
from collectors.models.usage import (
    ASSUMPTION_RANGES,
    Quantity,
    ServiceTotals,
    UsageAssumptions,
    UsageProfile,
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


def service_frame(*, cpu: bool = True) -> pd.DataFrame:
    """Two regional workers (pitchey series) and the HAProxy edge (its exporter's series)."""
    rows = []

    def add(t: float, target: str, metric: str, labels: dict[str, str], value: float) -> None:
        rows.append({"t": t, "target": target, "metric": metric,
                     "labels": json.dumps(labels, sort_keys=True), "value": value})

    for target in ("eu-west", "us-east"):
        add(0, target, "pitchey_cache_lookups_total", {"cache": "app"}, 100)
        add(10, target, "pitchey_cache_lookups_total", {"cache": "app"}, 600)
        add(0, target, "pitchey_cache_hits_total", {"cache": "app"}, 50)
        add(10, target, "pitchey_cache_hits_total", {"cache": "app"}, 450)
        add(0, target, "pitchey_db_queries_total", {"operation": "select"}, 10)
        add(10, target, "pitchey_db_queries_total", {"operation": "select"}, 110)
        if cpu:
            add(0, target, "process_cpu_seconds_total", {}, 1.0)
            add(10, target, "process_cpu_seconds_total", {}, 2.0)
        add(10, target, "pitchey_storage_used_bytes", {}, 5e6)
    # a restart of the us-east worker: its counter drops and climbs again
    add(20, "us-east", "pitchey_db_queries_total", {"operation": "select"}, 30)
    # HAProxy: its CPU is Cloudflare's network in the model (not Workers CPU-ms); its cache is
    # the edge tier
    add(0, "edge", "process_cpu_seconds_total", {}, 5.0)
    add(10, "edge", "process_cpu_seconds_total", {}, 8.0)
    add(0, "edge", "haproxy_frontend_http_cache_lookups_total", {"proxy": "www"}, 0)
    add(10, "edge", "haproxy_frontend_http_cache_lookups_total", {"proxy": "www"}, 2000)
    add(0, "edge", "haproxy_frontend_http_cache_hits_total", {"proxy": "www"}, 0)
    add(10, "edge", "haproxy_frontend_http_cache_hits_total", {"proxy": "www"}, 1000)
    return pd.DataFrame(rows)


def test_service_totals_sum_increases_and_survive_counter_resets() -> None:
    totals = service_totals(service_frame())
    assert totals.cache_lookups == {"app": 1000.0, "edge": 2000.0}
    assert totals.cache_hits == {"app": 800.0, "edge": 1000.0}
    assert totals.db_statements == 230.0  # 100 + 100 + 30 after the reset
    assert totals.cpu_seconds == 2.0  # the two workers, not HAProxy
    assert totals.cpu_targets == ("eu-west", "us-east")
    assert totals.edge_cpu_seconds == 3.0
    assert totals.storage_bytes == 5e6
    assert service_totals(None) == ServiceTotals()


def quantities(usage: UsageProfile) -> dict[str, Quantity]:
    found = {k: v for k, v in vars(usage).items() if isinstance(v, Quantity)}
    found.update({f"hit_rate_{k}": v for k, v in usage.hit_rates.items()})
    return found


def test_measured_usage_uses_the_run_and_labels_assumptions() -> None:
    mix = {"GET /api/pitches": 900.0, "POST /api/pitches": 100.0}
    usage = measure_usage(mix, service_totals(service_frame()), mean_response_s=0.05)
    assert usage.kv_reads == Quantity(1.0, "measured", usage.kv_reads.note)
    # fills at the measured 80% hit rate plus one generation bump per write request, of which
    # the share billed as KV writes is an assumption from 0 % to 100 %
    assert usage.cache_fills.value == pytest.approx(0.2)
    assert usage.kv_writes.basis == "assumed"
    assert usage.kv_writes.value == pytest.approx((0.2 + 0.1) * 0.5)
    assert (usage.kv_writes.low, usage.kv_writes.high) == (0.0, pytest.approx(0.3))
    assert usage.kv_writes.basis_text == "assumed (0–0.3)"
    assert usage.hit_rates["app"].value == pytest.approx(0.8)
    assert usage.hit_rates["edge"].basis == "measured"  # HAProxy's cache counters
    assert usage.hit_rates["edge"].value == pytest.approx(0.5)
    assert usage.hit_rates["query"].basis_text == "assumed (0.3–0.9)"
    assert usage.db_statements.value == pytest.approx(0.23)
    assert usage.cpu_ms.value == pytest.approx(2.0)  # 2 CPU-s over 1,000 requests
    assert usage.r2_class_a.value == pytest.approx(0.1)
    assert usage.r2_class_a.basis_text == "assumed (0–0.3)"
    assert usage.write_share == pytest.approx(0.1)


def test_a_measured_driver_is_never_shown_as_assumed() -> None:
    mix = {"GET /api/pitches": 900.0, "POST /api/pitches": 100.0}
    usage = measure_usage(mix, service_totals(service_frame()), mean_response_s=0.05)
    measured = {"cpu_ms", "kv_reads", "db_statements", "cache_fills", "hit_rate_app",
                "hit_rate_edge"}
    for key in measured:
        assert quantities(usage)[key].basis_text == "measured", key
    # the assumptions that stand in for those series are not among the profile's assumptions
    for key in ("cpu_ms_per_request", "db_statements_per_write", "edge_hit_rate",
                "app_hit_rate"):
        assert key not in usage.assumed_keys
    cost = project_cost(usage, REFERENCE_LOAD)
    for key in ("workers_cpu_ms", "kv_reads"):
        assert cost.driver(key).basis_text == "measured"
    # without the CPU series, CPU per request is an assumption with its range
    bare = measure_usage(mix, service_totals(service_frame(cpu=False)), mean_response_s=0.05)
    assert bare.cpu_ms.basis_text == "assumed (0.5–10)" and "cpu_ms_per_request" in (
        bare.assumed_keys)
    assert project_cost(bare, REFERENCE_LOAD).driver("workers_cpu_ms").basis_text.startswith(
        "assumed (")


@pytest.mark.parametrize("frame", [service_frame(), None])
def test_every_assumed_quantity_carries_its_range(frame: pd.DataFrame | None) -> None:
    usage = measure_usage(MIX, service_totals(frame), mean_response_s=0.05)
    for key, quantity in quantities(usage).items():
        assert quantity.basis in {"measured", "assumed", "derived"}, key
        if quantity.basis == "assumed":
            assert quantity.low is not None and quantity.high is not None, key
            assert quantity.low <= quantity.value <= quantity.high, key
    for driver in project_cost(usage, REFERENCE_LOAD).drivers:
        assert driver.basis_text == driver.basis or driver.basis_text.startswith("assumed ("), (
            driver.key)
        assert driver.basis != "assumed" or driver.basis_text.startswith("assumed (")


def test_assumption_ranges_hold_their_central_values() -> None:
    central = UsageAssumptions()
    assert len({r.key for r in ASSUMPTION_RANGES}) == len(ASSUMPTION_RANGES)
    for r in ASSUMPTION_RANGES:
        assert r.low < r.high and r.why and r.label, r.key
        assert r.low <= getattr(central, r.key) <= r.high, r.key


def test_the_documents_estimate_reproduces_its_total() -> None:
    """The Auto-Scaling document's Monthly Estimates: Workers $1,356, KV Storage $369, R2 $255,
    Durable Objects $463, Database $1,380, Total $3,823/month."""
    cost = project_cost(one_kv_read_per_request(), REFERENCE_LOAD)  # type: ignore[arg-type]
    ref = reference_comparison(cost)
    assert {r.document_label: r.document_usd for r in ref.rows} == {
        "Workers": 1356, "KV Storage": 369, "R2 Storage": 255, "Durable Objects": 463,
        "Database": 1380}
    assert ref.stated_total_usd == 3823 and ref.items_total_usd == 3823 and ref.adds_up
    assert "matches the document's stated total of $3,823/month" in ref.check_text
    by_group = cost.by_group()
    assert {r.group: r.model_usd for r in ref.rows} == by_group  # the same items, priced
    assert ref.model_total_usd == pytest.approx(cost.total_usd)


def test_a_stated_total_that_does_not_add_up_is_shown(tmp_path: Path) -> None:
    text = DEFAULT_PRICES_PATH.read_text().replace("  total: 3823\n", "  total: 3900\n")
    table = parse_price_table(text, "x.yaml")
    cost = project_cost(one_kv_read_per_request(), REFERENCE_LOAD,  # type: ignore[arg-type]
                        prices=table)
    ref = reference_comparison(cost)
    assert not ref.adds_up and "does NOT match" in ref.check_text


def test_unmeasured_usage_falls_back_to_seed_hit_rates() -> None:
    usage = measure_usage({"GET /api/pitches": 1.0}, ServiceTotals(), mean_response_s=0.1)
    assert usage.kv_reads.basis == "assumed"
    # misses of the Auto-Scaling document's edge cache
    assert usage.kv_reads.value == pytest.approx(1 - 0.85)
    assert usage.kv_reads.basis_text == "assumed (0.05–0.5)"  # the edge hit rate's range
    assert usage.cpu_ms.basis == "assumed"


def test_target_load_validates() -> None:
    with pytest.raises(ValueError):
        TargetLoad(users=-1, think_time_s=1, response_time_s=0.1)
    with pytest.raises(ValueError):
        TargetLoad(users=1, think_time_s=0, response_time_s=0)
