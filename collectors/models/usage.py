"""What one request uses of each billed resource, measured from a run where possible.

A run measures the request mix (requests per endpoint), the cache lookups and hits per tier
(so the fills: a miss fills the cache), database statements and the application's CPU. The
cost model multiplies those per-request quantities by a target request rate. Whatever a run
cannot measure is an explicit assumption with a range (`ASSUMPTION_RANGES`): its `Quantity`
is "assumed (low–high)", never a hidden constant, and `collectors.models.tornado` shows what
each range does to the bill.

How the seed's stack maps onto what the embedded service measures (seeds 000, 002, 003):
- every API request invokes the edge Worker once (static assets are not billed);
- the application cache tier ("app") is read through Workers KV: a lookup is a KV read. Its
  writes (a fill on every miss, a generation bump on every write request) are KV writes only
  if the cache's writes go to KV at all: the share billed is an assumption from 0 % (fills in
  the Cache API or memory) to 100 % (every fill a KV `put`, as the documents draw it);
- the edge tier ("edge") is Cloudflare's cache (HAProxy's cache in the geo topology, measured
  from its exporter), and the query tier ("query") lives in the worker: neither is billed per
  operation;
- uploads are R2 Class A operations, media reads of a pitch are R2 Class B operations;
- messages and notifications go through a Durable Object (WebSocket rooms);
- database statements run on Neon compute;
- Workers CPU is the application's CPU: the scrape targets that export `pitchey_*` series
  (the single service, the regional workers), never the HAProxy edge, which stands for
  Cloudflare's network and is not billed per CPU-ms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from collectors.targets import PRODUCT_TARGETS

__all__ = [
    "ASSUMPTION_RANGES",
    "AssumptionRange",
    "Quantity",
    "UsageAssumptions",
    "UsageProfile",
    "UsageSource",
    "ServiceTotals",
    "assumption_range",
    "service_totals",
    "measure_usage",
    "number_text",
    "split_endpoint",
]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HTTP_METHODS = WRITE_METHODS | {"GET", "HEAD", "OPTIONS"}
# The Auto-Scaling document's "Multi-tier Caching" section: the hit rates it claims per tier,
# the central values of the hit-rate assumptions when a run has no measurement for a tier.
SEED_HIT_RATES = {"edge": 0.85, "app": 0.70, "query": 0.60}
KV_TIER = "app"
# HAProxy's exporter (the geo topology's edge): its cache counters, per frontend.
EDGE_CACHE_METRICS = {"haproxy_frontend_http_cache_lookups": "pitchey_cache_lookups",
                      "haproxy_frontend_http_cache_hits": "pitchey_cache_hits"}


def number_text(value: float) -> str:
    """1500 -> '1,500', 0.25 -> '0.25', 3.1e9 -> '3.1e+09'."""
    if abs(value) >= 1e7:
        return f"{value:.3g}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


@dataclass(frozen=True)
class Quantity:
    """A per-request (or fixed) quantity and where it came from: "measured" from the run,
    "derived" from measured figures by a stated rule, or "assumed" with its range."""

    value: float
    basis: str  # "measured" | "assumed" | "derived"
    note: str = ""
    low: float | None = None  # an assumed quantity's range
    high: float | None = None

    @property
    def basis_text(self) -> str:
        """"measured", "derived" or "assumed (0.1–0.3)"."""
        if self.basis == "assumed" and self.low is not None and self.high is not None:
            return f"assumed ({number_text(self.low)}–{number_text(self.high)})"
        return self.basis


@dataclass(frozen=True)
class UsageAssumptions:
    """Figures no load test on one machine can measure, at their central values. Each one a
    profile uses is shown with its range (`ASSUMPTION_RANGES`) in the cost view."""

    cpu_ms_per_request: float = 2.0
    db_statements_per_write: float = 2.0
    kv_write_share: float = 0.5
    edge_hit_rate: float = SEED_HIT_RATES["edge"]
    app_hit_rate: float = SEED_HIT_RATES["app"]
    query_hit_rate: float = SEED_HIT_RATES["query"]
    r2_class_a_per_upload: float = 1.0
    r2_class_b_per_pitch_view: float = 1.0
    do_gb: float = 0.128  # Durable Objects are billed on 128 MB while active (a price fact)
    kv_storage_gb: float = 1.0
    r2_storage_gb: float = 50.0
    neon_storage_gb: float = 10.0
    neon_statements_per_cu_second: float = 500.0
    neon_min_cu_per_compute: float = 0.25
    # primary + three read replicas (the Auto-Scaling document, "Database Scaling")
    neon_computes: int = 4
    neon_plan: str = "scale"


@dataclass(frozen=True)
class AssumptionRange:
    """The range of one `UsageAssumptions` field; its central value is the field's value."""

    key: str
    label: str
    low: float
    high: float
    unit: str
    why: str


ASSUMPTION_RANGES: tuple[AssumptionRange, ...] = (
    AssumptionRange(
        "kv_write_share", "application-cache writes billed as KV writes", 0.0, 1.0, "share",
        "the documents put the application cache in Workers KV, where every fill and every "
        "generation bump is a $5-per-million write (100 %); a cache in the Cache API or in "
        "memory bills none (0 %). No run can tell which: the centre is the midpoint"),
    AssumptionRange(
        "neon_statements_per_cu_second", "database statements per Neon CU-second", 250.0,
        1000.0, "statements/s per CU",
        "the throughput of one Neon compute unit on these statements is not measured here; "
        "500/s is a rule of thumb for short indexed queries"),
    AssumptionRange(
        "neon_min_cu_per_compute", "Neon minimum CU per compute", 0.25, 1.0, "CU",
        "Neon's smallest autoscaling floor is 0.25 CU; a production floor is often 1 CU"),
    AssumptionRange(
        "r2_class_a_per_upload", "R2 object writes per pitch create/update", 0.0, 3.0,
        "writes", "a pitch may carry no media or several files (deck, video, thumbnail)"),
    AssumptionRange(
        "r2_class_b_per_pitch_view", "R2 media reads per pitch view", 0.0, 3.0, "reads",
        "media may be served from the edge cache (none) or as several files"),
    AssumptionRange(
        "cpu_ms_per_request", "Workers CPU-ms per request (no CPU series)", 0.5, 10.0,
        "CPU-ms", "used only when the run has no process_cpu_seconds series"),
    AssumptionRange(
        "db_statements_per_write", "database statements per write request (no series)", 1.0,
        5.0, "statements", "used only when the run has no pitchey_db_queries series"),
    AssumptionRange(
        "edge_hit_rate", "edge cache hit rate (not measured)", 0.5, 0.95, "share",
        "the Auto-Scaling document claims 85 %; used only when the run measured no edge tier"),
    AssumptionRange(
        "app_hit_rate", "application cache hit rate (not measured)", 0.4, 0.9, "share",
        "the Auto-Scaling document claims 70 %; used only when the run measured no app tier"),
    AssumptionRange(
        "query_hit_rate", "query cache hit rate (not measured)", 0.3, 0.9, "share",
        "the Auto-Scaling document claims 60 %; used only when the run measured no query tier"),
    AssumptionRange(
        "kv_storage_gb", "KV stored data", 0.5, 5.0, "GB", "cached objects; not measured"),
    AssumptionRange(
        "r2_storage_gb", "R2 stored media", 10.0, 500.0, "GB", "pitch media; not measured"),
    AssumptionRange(
        "neon_storage_gb", "Neon stored data", 1.0, 100.0, "GB",
        "the run's database is seeded, not production-sized"),
)
_RANGES = {r.key: r for r in ASSUMPTION_RANGES}
_HIT_RATE_KEYS = {"edge": "edge_hit_rate", "app": "app_hit_rate", "query": "query_hit_rate"}


def assumption_range(key: str) -> AssumptionRange:
    return _RANGES[key]


def _ranged(assume: UsageAssumptions, key: str, note: str, scale: float = 1.0) -> Quantity:
    """An assumed quantity `scale` × the assumption, with the range scaled alike."""
    r = _RANGES[key]
    value = float(getattr(assume, key))
    return Quantity(value * scale, "assumed", note, r.low * scale, r.high * scale)


def corners(assume: UsageAssumptions, keys: tuple[str, ...]) -> list[UsageAssumptions]:
    """`assume` with the `keys` set to every combination of their range ends."""
    found = [assume]
    for key in keys:
        r = _RANGES[key]
        ends: list[dict[str, Any]] = [{key: r.low}, {key: r.high}]
        found = [replace(a, **end) for a in found for end in ends]
    return found


def assumed(fn: Any, assume: UsageAssumptions, keys: tuple[str, ...], note: str) -> Quantity:
    """An assumed quantity `fn(assumptions)`, its range over every corner of `keys`' ranges."""
    ends = [float(fn(a)) for a in corners(assume, keys)]
    return Quantity(float(fn(assume)), "assumed", note, min(ends), max(ends))


# Assumptions every priced month rests on (collectors.models.cost uses them directly).
ALWAYS_ASSUMED = ("neon_statements_per_cu_second", "neon_min_cu_per_compute", "kv_storage_gb",
                  "r2_storage_gb", "neon_storage_gb")


@dataclass(frozen=True)
class UsageSource:
    """What a profile was measured from, so that it can be measured again under other
    assumptions (the tornado)."""

    requests_by_endpoint: Mapping[str, float]
    totals: ServiceTotals
    mean_response_s: float


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
    # application-cache fills per request (its misses), before the share billed as KV writes
    cache_fills: Quantity = field(default_factory=lambda: Quantity(0.0, "derived"))
    # keys of ASSUMPTION_RANGES this profile (and a month priced with it) rests on
    assumed_keys: tuple[str, ...] = ALWAYS_ASSUMED
    source: UsageSource | None = None

    def with_changes(self, **changes: Any) -> UsageProfile:
        """A copy with some quantities replaced (what-if analysis, recommendations). The copy
        is no longer what its source measures, so it forgets the source."""
        return replace(self, source=None, **changes)

    def with_assumptions(self, **values: Any) -> UsageProfile:
        """The same run measured again with some assumptions changed (needs the source)."""
        if self.source is None:
            raise ValueError("this profile has no source to measure again (a what-if copy)")
        s = self.source
        return measure_usage(s.requests_by_endpoint, s.totals, mean_response_s=s.mean_response_s,
                             assumptions=replace(self.assumptions, **values))


def split_endpoint(name: str) -> tuple[str, str]:
    """'GET /api/pitches/{id}' -> ('GET', '/api/pitches/{id}'); a bare path is a GET."""
    head, _, rest = name.strip().partition(" ")
    if head.upper() in HTTP_METHODS and rest:
        return head.upper(), rest.strip()
    return "GET", name.strip()


@dataclass(frozen=True)
class ServiceTotals:
    """Counter increases over a run, summed over scrape targets, from service.parquet.
    `cpu_seconds` is the application's (targets exporting `pitchey_*` series) and
    `cpu_targets` names them; `edge_cpu_seconds` is the other targets' (HAProxy)."""

    cache_lookups: Mapping[str, float] = field(default_factory=dict)
    cache_hits: Mapping[str, float] = field(default_factory=dict)
    db_statements: float | None = None
    cpu_seconds: float | None = None
    storage_bytes: float | None = None
    cpu_targets: tuple[str, ...] = ()
    edge_cpu_seconds: float | None = None


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


_COUNTERS = ("pitchey_cache_lookups", "pitchey_cache_hits", "pitchey_db_queries",
             "process_cpu_seconds", *EDGE_CACHE_METRICS)


def service_totals(service: pd.DataFrame | None) -> ServiceTotals:
    """Reduce the scraped long-format series to the totals the usage profile needs."""
    needed = {"t", "target", "metric", "labels", "value"}
    if service is None or service.empty or not needed <= set(service.columns):
        return ServiceTotals()
    frame = service.assign(metric=service["metric"].map(_metric_base))
    app_targets = set(frame.loc[frame["metric"].str.startswith("pitchey_"), "target"])
    counters = frame[frame["metric"].isin(_COUNTERS)]
    inc = _increases(counters) if not counters.empty else counters.assign(step=0.0)
    by_tier: dict[str, dict[str, float]] = {"pitchey_cache_lookups": {}, "pitchey_cache_hits": {}}
    for row in inc.itertuples(index=False):
        metric = str(row.metric)
        if metric in EDGE_CACHE_METRICS:
            by_tier[EDGE_CACHE_METRICS[metric]]["edge"] = (
                by_tier[EDGE_CACHE_METRICS[metric]].get("edge", 0.0) + float(row.step))
        elif metric in by_tier:
            tier = _label(row.labels, "cache") or "app"
            by_tier[metric][tier] = by_tier[metric].get(tier, 0.0) + float(row.step)

    def total(rows: pd.DataFrame) -> float | None:
        return float(rows["step"].sum()) if not rows.empty else None

    cpu = inc[inc["metric"] == "process_cpu_seconds"]
    app_cpu = cpu[cpu["target"].isin(app_targets)]
    storage = frame[frame["metric"] == "pitchey_storage_used_bytes"]
    storage_bytes = None
    if not storage.empty:
        last = storage.sort_values("t").groupby("target")["value"].last()
        storage_bytes = float(last.max())
    return ServiceTotals(
        cache_lookups=by_tier["pitchey_cache_lookups"], cache_hits=by_tier["pitchey_cache_hits"],
        db_statements=total(inc[inc["metric"] == "pitchey_db_queries"]),
        cpu_seconds=total(app_cpu), storage_bytes=storage_bytes,
        cpu_targets=tuple(sorted(str(t) for t in set(app_cpu["target"]))),
        edge_cpu_seconds=total(cpu[~cpu["target"].isin(app_targets)]),
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


def _measured_rates(totals: ServiceTotals) -> dict[str, Quantity]:
    rates: dict[str, Quantity] = {}
    for tier in SEED_HIT_RATES:
        lookups = totals.cache_lookups.get(tier, 0.0)
        if lookups > 0:
            hits = totals.cache_hits.get(tier, 0.0)
            rates[tier] = Quantity(hits / lookups, "measured", f"{hits:,.0f}/{lookups:,.0f}")
    return rates


def _rate(a: UsageAssumptions, measured: Mapping[str, Quantity], tier: str) -> float:
    """The tier's hit rate: measured when the run has it, else the assumption."""
    return measured[tier].value if tier in measured else float(
        getattr(a, _HIT_RATE_KEYS[tier]))


def _per_request(count: float | None, requests: float) -> float | None:
    return None if count is None or requests <= 0 else count / requests


@dataclass(frozen=True)
class _Context:
    mix: _Mix
    totals: ServiceTotals
    measured_rates: Mapping[str, Quantity]
    assume: UsageAssumptions
    used: set[str] = field(default_factory=set)

    @property
    def requests(self) -> float:
        return self.mix.total

    @property
    def write_share(self) -> float:
        return self.mix.writes / self.mix.total if self.mix.total else 0.0

    def rate_keys(self, *tiers: str) -> tuple[str, ...]:
        keys = tuple(_HIT_RATE_KEYS[t] for t in tiers if t not in self.measured_rates)
        self.used.update(keys)
        return keys

    def quantity(self, fn: Any, keys: tuple[str, ...], note: str) -> Quantity:
        self.used.update(keys)
        return assumed(fn, self.assume, keys, note)


def _kv_quantities(ctx: _Context) -> tuple[Quantity, Quantity, Quantity]:
    """KV reads, KV writes and application-cache fills per request."""
    ws = ctx.write_share
    rates = ctx.measured_rates
    lookups = _per_request(ctx.totals.cache_lookups.get(KV_TIER), ctx.requests)
    if lookups is not None and lookups > 0:
        reads = Quantity(lookups, "measured", "application-cache lookups per request")
        misses = lookups * (1.0 - rates[KV_TIER].value)
        fills = Quantity(misses, "measured", "application-cache misses (each fills the cache)")
        writes = ctx.quantity(
            lambda a: (misses + ws) * a.kv_write_share, ("kv_write_share",),
            f"{misses:.3f} fills (measured) + {ws:.3f} generation bumps per request, the share "
            "of them billed as KV writes assumed")
        return reads, writes, fills
    keys = ctx.rate_keys("edge", "app")
    read_share = 1.0 - ws

    def edge_misses(a: UsageAssumptions) -> float:
        return read_share * (1.0 - _rate(a, rates, "edge"))

    def fill_count(a: UsageAssumptions) -> float:
        return edge_misses(a) * (1.0 - _rate(a, rates, KV_TIER))

    reads = ctx.quantity(edge_misses, keys, "reads that miss the edge cache (no app-cache series)")
    fills = ctx.quantity(fill_count, keys, "misses of the application cache (no series)")
    writes = ctx.quantity(lambda a: (fill_count(a) + ws) * a.kv_write_share,
                          (*keys, "kv_write_share"),
                          "fills + generation bumps, the share billed as KV writes assumed")
    return reads, writes, fills


def _db_quantity(ctx: _Context) -> Quantity:
    measured = _per_request(ctx.totals.db_statements, ctx.requests)
    if measured is not None:
        return Quantity(measured, "measured", "database statements per request")
    ws = ctx.write_share
    keys = ctx.rate_keys("edge", "app", "query")

    def statements(a: UsageAssumptions) -> float:
        miss = 1.0
        for tier in ("edge", "app", "query"):
            miss *= 1.0 - _rate(a, ctx.measured_rates, tier)
        return (1.0 - ws) * miss + ws * a.db_statements_per_write

    return ctx.quantity(statements, (*keys, "db_statements_per_write"),
                        "reads missing all cache tiers + statements per write (no series)")


def _cpu_quantity(ctx: _Context) -> Quantity:
    cpu = _per_request(ctx.totals.cpu_seconds, ctx.requests)
    if cpu is not None:
        where = ", ".join(ctx.totals.cpu_targets) or "the service"
        return Quantity(cpu * 1000.0, "measured",
                        f"application CPU per request ({where}; Python on this machine)")
    return ctx.quantity(lambda a: a.cpu_ms_per_request, ("cpu_ms_per_request",),
                        "no CPU series in the run")


def _hit_rate_quantities(ctx: _Context) -> dict[str, Quantity]:
    rates = dict(ctx.measured_rates)
    for tier in SEED_HIT_RATES:
        if tier not in rates:
            key = _HIT_RATE_KEYS[tier]
            rates[tier] = assumed(lambda a, k=key: getattr(a, k), ctx.assume, (key,),
                                  "the Auto-Scaling document's multi-tier cache table")
    return rates


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
    ctx = _Context(mix, totals, _measured_rates(totals), assume, set(ALWAYS_ASSUMED))
    kv_reads, kv_writes, fills = _kv_quantities(ctx)
    requests = mix.total

    def share(n: float) -> float:
        return n / requests if requests else 0.0

    uploads, views = share(mix.uploads), share(mix.pitch_views)
    do_requests = share(mix.realtime)
    profile = UsageProfile(
        worker_invocations=Quantity(1.0, "derived", "each API request runs the edge Worker once"),
        cpu_ms=_cpu_quantity(ctx),
        kv_reads=kv_reads,
        kv_writes=kv_writes,
        r2_class_a=ctx.quantity(lambda a: uploads * a.r2_class_a_per_upload,
                                ("r2_class_a_per_upload",),
                                f"object writes per pitch create/update × their measured share "
                                f"({uploads:.3f})"),
        r2_class_b=ctx.quantity(lambda a: views * a.r2_class_b_per_pitch_view,
                                ("r2_class_b_per_pitch_view",),
                                f"media reads per pitch view × their measured share "
                                f"({views:.3f})"),
        do_requests=Quantity(do_requests, "derived",
                             "messages and notifications requests (measured share)"),
        do_gb_s=Quantity(do_requests * max(mean_response_s, 0.0) * assume.do_gb, "derived",
                         "Durable Object active for the request's response time at 128 MB"),
        db_statements=_db_quantity(ctx),
        hit_rates=_hit_rate_quantities(ctx),
        write_share=ctx.write_share,
        mean_response_s=mean_response_s,
        assumptions=assume,
        cache_fills=fills,
        source=UsageSource(dict(requests_by_endpoint), totals, mean_response_s),
    )
    order = [r.key for r in ASSUMPTION_RANGES]
    return replace(profile, assumed_keys=tuple(k for k in order if k in ctx.used))

