"""What one request uses of each billed resource, measured from a run where possible.

A run measures the request mix (requests per endpoint), the cache hit rates and lookups per
tier, database statements and service CPU. The cost model multiplies those per-request
quantities by a target request rate. Whatever a run cannot measure is an explicit,
labelled assumption (`basis="assumed"`), so the cost view shows which figures are evidence.

How the seed's stack maps onto what the embedded service measures (seeds 000, 002, 003):
- every API request invokes the edge Worker once (static assets are not billed);
- the application cache tier ("app") is Workers KV: a lookup is a KV read, a miss fills
  the cache (a KV write), and a write request bumps the namespace generation (a KV write);
- the edge tier ("edge") is Cloudflare's cache, and the query tier ("query") lives in the
  worker: neither is billed per operation;
- uploads are R2 Class A operations, media reads of a pitch are R2 Class B operations;
- messages and notifications go through a Durable Object (WebSocket rooms);
- database statements run on Neon compute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from collectors.targets import PRODUCT_TARGETS

__all__ = [
    "Quantity",
    "UsageAssumptions",
    "UsageProfile",
    "ServiceTotals",
    "service_totals",
    "measure_usage",
    "split_endpoint",
]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HTTP_METHODS = WRITE_METHODS | {"GET", "HEAD", "OPTIONS"}
# The Auto-Scaling document's "Multi-tier Caching" section: the hit rates it claims per tier,
# used when a run has no measurement for a tier.
SEED_HIT_RATES = {"edge": 0.85, "app": 0.70, "query": 0.60}
KV_TIER = "app"


@dataclass(frozen=True)
class Quantity:
    """A per-request (or fixed) quantity and where it came from."""

    value: float
    basis: str  # "measured" | "assumed" | "derived"
    note: str = ""


@dataclass(frozen=True)
class UsageAssumptions:
    """Figures no load test on one machine can measure. Each is shown in the cost view."""

    cpu_ms_per_request: float = 2.0
    db_statements_per_write: float = 2.0
    r2_class_a_per_upload: float = 1.0
    r2_class_b_per_pitch_view: float = 1.0
    do_gb: float = 0.128  # Durable Objects are billed on 128 MB while active
    kv_storage_gb: float = 1.0
    r2_storage_gb: float = 50.0
    neon_storage_gb: float = 10.0
    neon_statements_per_cu_second: float = 500.0
    neon_min_cu_per_compute: float = 0.25
    # primary + three read replicas (the Auto-Scaling document, "Database Scaling")
    neon_computes: int = 4
    neon_plan: str = "scale"


@dataclass(frozen=True)
class UsageProfile:
    """Per-request use of every billed driver, plus fixed quantities (storage, computes)."""

    worker_invocations: Quantity
    cpu_ms: Quantity
    kv_reads: Quantity
    kv_writes: Quantity
    r2_class_a: Quantity
    r2_class_b: Quantity
    do_requests: Quantity
    do_gb_s: Quantity
    db_statements: Quantity
    hit_rates: Mapping[str, Quantity] = field(default_factory=dict)
    write_share: float = 0.0
    # unmeasured: assume responses at the product's latency target (collectors.targets)
    mean_response_s: float = PRODUCT_TARGETS.p95_ms / 1000.0
    assumptions: UsageAssumptions = field(default_factory=UsageAssumptions)

    def with_changes(self, **changes: Any) -> UsageProfile:
        """A copy with some quantities replaced (what-if analysis, recommendations)."""
        return replace(self, **changes)


def split_endpoint(name: str) -> tuple[str, str]:
    """'GET /api/pitches/{id}' -> ('GET', '/api/pitches/{id}'); a bare path is a GET."""
    head, _, rest = name.strip().partition(" ")
    if head.upper() in HTTP_METHODS and rest:
        return head.upper(), rest.strip()
    return "GET", name.strip()


@dataclass(frozen=True)
class ServiceTotals:
    """Counter increases over a run, summed over scrape targets, from service.parquet."""

    cache_lookups: Mapping[str, float] = field(default_factory=dict)
    cache_hits: Mapping[str, float] = field(default_factory=dict)
    db_statements: float | None = None
    cpu_seconds: float | None = None
    storage_bytes: float | None = None


def _metric_base(name: str) -> str:
    return name.removesuffix("_total")


def _label(labels: object, key: str) -> str:
    if isinstance(labels, str):
        try:
            labels = json.loads(labels) if labels else {}
        except ValueError:
            return ""
    return str(labels.get(key, "")) if isinstance(labels, Mapping) else ""


def _increases(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series (target, metric, labels): last value minus first, reset-tolerant."""
    ordered = frame.sort_values("t")
    grouped = ordered.groupby(["target", "metric", "labels"], sort=False)["value"]
    steps = grouped.diff().fillna(0.0)
    # A counter reset (process restart) shows as a drop; count the new value instead.
    steps = steps.where(steps >= 0, ordered["value"])
    ordered = ordered.assign(step=steps)
    return ordered.groupby(["target", "metric", "labels"], sort=False)["step"].sum().reset_index()


def service_totals(service: pd.DataFrame | None) -> ServiceTotals:
    """Reduce the scraped long-format series to the totals the usage profile needs."""
    needed = {"t", "target", "metric", "labels", "value"}
    if service is None or service.empty or not needed <= set(service.columns):
        return ServiceTotals()
    frame = service.assign(metric=service["metric"].map(_metric_base))
    counters = frame[frame["metric"].isin(
        ["pitchey_cache_lookups", "pitchey_cache_hits", "pitchey_db_queries",
         "process_cpu_seconds"])]
    inc = _increases(counters) if not counters.empty else counters.assign(step=0.0)
    by_tier: dict[str, dict[str, float]] = {"pitchey_cache_lookups": {}, "pitchey_cache_hits": {}}
    for row in inc.itertuples(index=False):
        if row.metric in by_tier:
            tier = _label(row.labels, "cache") or "app"
            by_tier[row.metric][tier] = by_tier[row.metric].get(tier, 0.0) + float(row.step)

    def total(metric: str) -> float | None:
        rows = inc[inc["metric"] == metric]
        return float(rows["step"].sum()) if not rows.empty else None

    storage = frame[frame["metric"] == "pitchey_storage_used_bytes"]
    storage_bytes = None
    if not storage.empty:
        last = storage.sort_values("t").groupby("target")["value"].last()
        storage_bytes = float(last.max())
    return ServiceTotals(
        cache_lookups=by_tier["pitchey_cache_lookups"], cache_hits=by_tier["pitchey_cache_hits"],
        db_statements=total("pitchey_db_queries"), cpu_seconds=total("process_cpu_seconds"),
        storage_bytes=storage_bytes,
    )


@dataclass(frozen=True)
class _Mix:
    """Shares of the measured request mix that drive specific resources."""

    total: float
    writes: float
    uploads: float
    pitch_views: float
    realtime: float


def _request_mix(requests_by_endpoint: Mapping[str, float]) -> _Mix:
    total = writes = uploads = views = realtime = 0.0
    for name, count in requests_by_endpoint.items():
        method, path = split_endpoint(name)
        count = float(count)
        total += count
        is_auth = path.startswith("/api/auth/")
        if method in WRITE_METHODS and not is_auth:
            writes += count
        if method in {"POST", "PUT"} and path.rstrip("/") in {"/api/pitches", "/api/pitches/{id}"}:
            uploads += count
        if method == "GET" and path.startswith("/api/pitches/") and path.count("/") == 3:
            views += count
        if path.startswith(("/api/messages", "/api/notifications")):
            realtime += count
    return _Mix(total, writes, uploads, views, realtime)


def _hit_rates(totals: ServiceTotals) -> dict[str, Quantity]:
    rates: dict[str, Quantity] = {}
    for tier, seed_rate in SEED_HIT_RATES.items():
        lookups = totals.cache_lookups.get(tier, 0.0)
        if lookups > 0:
            hits = totals.cache_hits.get(tier, 0.0)
            rates[tier] = Quantity(hits / lookups, "measured", f"{hits:,.0f}/{lookups:,.0f}")
        else:
            rates[tier] = Quantity(seed_rate, "assumed",
                                   "the Auto-Scaling document's multi-tier cache table")
    return rates


def _per_request(count: float | None, requests: float) -> float | None:
    return None if count is None or requests <= 0 else count / requests


def _kv_quantities(
    totals: ServiceTotals, mix: _Mix, rates: Mapping[str, Quantity], requests: float
) -> tuple[Quantity, Quantity]:
    write_share = mix.writes / mix.total if mix.total else 0.0
    lookups = _per_request(totals.cache_lookups.get(KV_TIER), requests)
    if lookups is not None and lookups > 0:
        misses = lookups * (1.0 - rates[KV_TIER].value)
        reads = Quantity(lookups, "measured", "application-cache lookups per request")
        writes = Quantity(misses + write_share, "measured",
                          "cache fills on misses + one generation bump per write request")
        return reads, writes
    read_share = 1.0 - write_share
    edge_miss = 1.0 - rates["edge"].value
    reads = Quantity(read_share * edge_miss, "assumed", "reads that miss the edge cache")
    fills = read_share * edge_miss * (1.0 - rates[KV_TIER].value)
    writes = Quantity(fills + write_share, "assumed", "fills on KV misses + write invalidations")
    return reads, writes


def _db_quantity(
    totals: ServiceTotals, mix: _Mix, rates: Mapping[str, Quantity], requests: float,
    assume: UsageAssumptions,
) -> Quantity:
    measured = _per_request(totals.db_statements, requests)
    if measured is not None:
        return Quantity(measured, "measured", "database statements per request")
    write_share = mix.writes / mix.total if mix.total else 0.0
    miss = 1.0
    for tier in ("edge", "app", "query"):
        miss *= 1.0 - rates[tier].value
    value = (1.0 - write_share) * miss + write_share * assume.db_statements_per_write
    return Quantity(value, "assumed", "reads missing all cache tiers + statements per write")


def measure_usage(
    requests_by_endpoint: Mapping[str, float],
    totals: ServiceTotals,
    *,
    mean_response_s: float,
    assumptions: UsageAssumptions | None = None,
) -> UsageProfile:
    """Per-request usage from a run's request mix and service counters."""
    assume = assumptions or UsageAssumptions()
    mix = _request_mix(requests_by_endpoint)
    requests = mix.total
    rates = _hit_rates(totals)
    kv_reads, kv_writes = _kv_quantities(totals, mix, rates, requests)
    cpu = _per_request(totals.cpu_seconds, requests)
    cpu_q = (Quantity(cpu * 1000.0, "measured", "service process CPU per request (Python)")
             if cpu is not None else
             Quantity(assume.cpu_ms_per_request, "assumed", "no CPU series in the run"))
    share = (lambda n: n / requests) if requests else (lambda n: 0.0)
    do_requests = share(mix.realtime)
    return UsageProfile(
        worker_invocations=Quantity(1.0, "derived", "each API request runs the edge Worker once"),
        cpu_ms=cpu_q,
        kv_reads=kv_reads,
        kv_writes=kv_writes,
        r2_class_a=Quantity(share(mix.uploads) * assume.r2_class_a_per_upload, "assumed",
                            "one object write per pitch create/update (measured share)"),
        r2_class_b=Quantity(share(mix.pitch_views) * assume.r2_class_b_per_pitch_view,
                            "assumed", "one media read per pitch view (measured share)"),
        do_requests=Quantity(do_requests, "derived",
                             "messages and notifications requests (measured share)"),
        do_gb_s=Quantity(do_requests * max(mean_response_s, 0.0) * assume.do_gb, "derived",
                         "Durable Object active for the request's response time at 128 MB"),
        db_statements=_db_quantity(totals, mix, rates, requests, assume),
        hit_rates=rates,
        write_share=share(mix.writes),
        mean_response_s=mean_response_s,
        assumptions=assume,
    )
