"""Cost recommendations tied to the measured drivers, each with a modelled saving.

The Auto-Scaling document ("Optimization Recommendations") lists four optimisations with
claimed savings (aggressive caching 30% of Workers compute, request coalescing 15% of
database queries, regional caching 20% of bandwidth, archiving 40% of storage). Here each
one is re-priced with the cost model on this run's usage profile, so the saving is in
dollars at the target load and can be zero when the driver it acts on is not what costs
money. Rules the data adds (KV reads out-costing the requests, cache fills, CPU, plan
choice) work the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from collectors.models.cost import CostBreakdown, TargetLoad, project_cost
from collectors.models.prices import PriceTable, default_price_table
from collectors.models.usage import SEED_HIT_RATES, Quantity, UsageProfile

__all__ = ["Recommendation", "recommend"]

# The architecture's claimed hit rates, defined once in collectors.models.usage.
SEED_EDGE_HIT = SEED_HIT_RATES["edge"]
SEED_APP_HIT = SEED_HIT_RATES["app"]
SEED_COALESCING = 0.15
SEED_ARCHIVE = 0.40


@dataclass(frozen=True)
class Recommendation:
    key: str
    title: str
    group: str
    evidence: str
    action: str
    saving_usd: float
    origin: str  # "Auto-Scaling document" or "measured data"


@dataclass(frozen=True)
class _Context:
    usage: UsageProfile
    load: TargetLoad
    prices: PriceTable
    base: CostBreakdown

    def saving(self, usage: UsageProfile) -> float:
        after = project_cost(usage, self.load, prices=self.prices, budget_usd=self.base.budget_usd)
        return max(0.0, self.base.total_usd - after.total_usd)

    def cost(self, key: str) -> float:
        return self.base.driver(key).cost_usd


def _scaled(q: Quantity, factor: float, note: str) -> Quantity:
    return Quantity(q.value * factor, q.basis, note)


def _edge_cache(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    edge = u.hit_rates.get("edge")
    # A run whose KV reads were measured without an edge tier had no edge cache at all.
    had_edge = edge is not None and (edge.basis == "measured" or u.kv_reads.basis != "measured")
    current = edge.value if edge is not None and had_edge else 0.0
    target = max(current, SEED_EDGE_HIT)
    if ctx.cost("kv_reads") <= 0 or target <= current:
        return None
    factor = (1.0 - target) / (1.0 - current)
    changed = u.with_changes(
        kv_reads=_scaled(u.kv_reads, factor, "after edge caching"),
        kv_writes=_kv_writes(u, u.cache_fills.value * factor, "after edge caching"),
    )
    kv, req = ctx.cost("kv_reads"), ctx.cost("workers_requests")
    lead = (f"KV reads cost ${kv:,.0f}/month, more than the Workers requests (${req:,.0f})"
            if kv > req else f"KV reads cost ${kv:,.0f}/month")
    return Recommendation(
        "edge_cache", "Cache public reads at the edge before KV", "KV",
        f"{lead}: {u.kv_reads.value:.2f} KV reads per request ({u.kv_reads.basis}), "
        f"edge hit rate {current:.0%}.",
        "Serve public GETs from Cloudflare's cache (not billed per read) at the Auto-Scaling "
        f"document's {SEED_EDGE_HIT:.0%} hit rate; only misses read KV. The document claims 30% "
        "of Workers compute; modelled here on KV reads and fills only.",
        ctx.saving(changed), "Auto-Scaling document",
    )


def _kv_writes(u: UsageProfile, fills: float, note: str) -> Quantity:
    """KV writes per request for `fills` fills: the share of the cache's writes billed."""
    share = u.assumptions.kv_write_share
    return Quantity((fills + u.write_share) * share, u.kv_writes.basis, note,
                    0.0 if u.kv_writes.low is not None else None,
                    (fills + u.write_share) if u.kv_writes.high is not None else None)


def _kv_fills(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    app = u.hit_rates.get("app")
    if app is None or app.value >= SEED_APP_HIT or ctx.cost("kv_writes") <= 0:
        return None
    fills = u.cache_fills.value
    factor = (1.0 - SEED_APP_HIT) / (1.0 - app.value)
    changed = u.with_changes(kv_writes=_kv_writes(u, fills * factor, "fewer fills"))
    share = u.assumptions.kv_write_share
    return Recommendation(
        "kv_fills", "Stop paying KV writes for cache fills", "KV",
        f"Application-cache hit rate {app.value:.0%} ({app.basis}): "
        f"{fills:.3f} fills per request ({u.cache_fills.basis}), {share:.0%} of them assumed "
        f"billed as KV writes at $5 per million: ${ctx.cost('kv_writes'):,.0f}/month in KV "
        "writes.",
        f"Lengthen the 60 s application TTL or fill KV only for hot keys, to reach seed "
        f"003's {SEED_APP_HIT:.0%} hit rate.",
        ctx.saving(changed), "measured data",
    )


def _coalescing(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    changed = u.with_changes(db_statements=_scaled(u.db_statements, 1 - SEED_COALESCING, ""))
    saving = ctx.saving(changed)
    neon = ctx.base.driver("neon_compute")
    why = "" if saving > 0 else " Compute sits at its floor, so fewer statements save nothing."
    return Recommendation(
        "coalescing", "Coalesce identical concurrent requests", "Neon",
        f"{u.db_statements.value:.2f} database statements per request "
        f"({u.db_statements.basis}); Neon compute ${neon.cost_usd:,.0f}/month. {neon.note}.",
        f"Share one upstream call among identical GETs within 100 ms. The document claims "
        f"{SEED_COALESCING:.0%} fewer database queries.{why}",
        saving, "Auto-Scaling document",
    )


def _regional_caching(ctx: _Context) -> Recommendation:
    return Recommendation(
        "regional_caching", "Regional caching", "R2",
        "This price table bills no egress: R2 egress and Workers bandwidth are free.",
        "Cache popular content in each region: it buys latency, not dollars. The Auto-Scaling "
        "document's 20% bandwidth saving is $0 at these prices.",
        0.0, "Auto-Scaling document",
    )


def _archiving(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    a = u.assumptions
    moved = a.neon_storage_gb * SEED_ARCHIVE
    changed = u.with_changes(assumptions=replace(
        a, neon_storage_gb=a.neon_storage_gb - moved, r2_storage_gb=a.r2_storage_gb + moved))
    return Recommendation(
        "archiving", "Archive old data to R2", "Neon",
        f"Neon storage {a.neon_storage_gb:g} GB (assumed) costs "
        f"${ctx.cost('neon_storage'):,.2f}/month.",
        f"Move {SEED_ARCHIVE:.0%} of it ({moved:g} GB) to R2 at $0.015/GB-month. The "
        "Auto-Scaling document claims 40% of storage costs; storage is a small driver at this "
        "load.",
        ctx.saving(changed), "Auto-Scaling document",
    )


def _cpu(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    cpu = ctx.cost("workers_cpu_ms")
    if cpu <= 0:
        return None
    changed = u.with_changes(cpu_ms=_scaled(u.cpu_ms, 0.5, "halved"))
    return Recommendation(
        "cpu", "Halve CPU time per request", "Workers",
        f"{u.cpu_ms.value:.2f} CPU-ms per request ({u.cpu_ms.basis}; {u.cpu_ms.note}) "
        f"-> ${cpu:,.0f}/month of CPU-ms.",
        "Profile the hot handlers; answer cache hits before parsing and validating. "
        "Saving shown if CPU per request halves.",
        ctx.saving(changed), "measured data",
    )


def _neon_plan(ctx: _Context) -> Recommendation | None:
    u = ctx.usage
    if u.assumptions.neon_plan == "launch":
        return None
    changed = u.with_changes(assumptions=replace(u.assumptions, neon_plan="launch"))
    return Recommendation(
        "neon_plan", "Price Neon compute on the Launch plan", "Neon",
        f"Scale plan compute ${ctx.cost('neon_compute'):,.0f}/month at "
        f"${ctx.prices['neon_compute_scale'].price}/CU-hour.",
        f"Launch bills ${ctx.prices['neon_compute_launch'].price}/CU-hour; check that its "
        "autoscaling limit covers the CU needed.",
        ctx.saving(changed), "measured data",
    )


_RULES: tuple[Callable[[_Context], Recommendation | None], ...] = (
    _edge_cache, _kv_fills, _coalescing, _regional_caching, _archiving, _cpu, _neon_plan,
)


def recommend(
    usage: UsageProfile, load: TargetLoad, *, prices: PriceTable | None = None,
    budget_usd: float | None = None,
) -> list[Recommendation]:
    """Every applicable recommendation, largest modelled saving first."""
    table = prices or default_price_table()
    base = (project_cost(usage, load, prices=table) if budget_usd is None
            else project_cost(usage, load, prices=table, budget_usd=budget_usd))
    ctx = _Context(usage, load, table, base)
    found = [rec for rule in _RULES if (rec := rule(ctx)) is not None]
    return sorted(found, key=lambda r: -r.saving_usd)
