"""Monthly cost of serving a target load, driver by driver.

The request rate comes from the interactive response time law, X = N / (R + Z), for N
concurrent users with think time Z and response time R; a month of it is multiplied by the
per-request usage profile (collectors.models.usage) and priced with the versioned price
table (prices.yaml). Worked check from the reference: 100,000 users, 5 s think time, 100 ms
response -> 19,608 requests/s -> 50.8 billion requests in 30 days -> about $15,200 of Workers
requests and, at one KV read per request, about $25,400 of KV reads.

Every driver says where its quantity came from (`DriverCost.basis_text`: "measured",
"derived" or "assumed (low–high)"); `collectors.models.tornado` prices each assumption's range.
`reference_comparison` sets the Auto-Scaling document's own monthly estimate (prices.yaml,
`reference_estimates`) beside the model's, item by item, and checks that its items add up to
the total it states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collectors.models.prices import PriceTable, default_price_table
from collectors.models.usage import (
    Quantity,
    UsageAssumptions,
    UsageProfile,
    assumed,
    number_text,
)
from collectors.targets import PRODUCT_TARGETS

__all__ = [
    "TargetLoad",
    "DriverCost",
    "CostBreakdown",
    "ReferenceComparison",
    "ReferenceRow",
    "project_cost",
    "group_order",
    "reference_comparison",
]


@dataclass(frozen=True)
class TargetLoad:
    """N users, each thinking Z seconds between requests answered in R seconds."""

    users: float
    think_time_s: float
    response_time_s: float

    def __post_init__(self) -> None:
        if self.users < 0:
            raise ValueError(f"users must not be negative, got {self.users}")
        if self.think_time_s < 0 or self.response_time_s < 0:
            raise ValueError("think time and response time must not be negative")
        if self.think_time_s + self.response_time_s <= 0:
            raise ValueError("think time + response time must be positive")

    @property
    def requests_per_s(self) -> float:
        return self.users / (self.response_time_s + self.think_time_s)

    def requests_per_month(self, month_days: float) -> float:
        return self.requests_per_s * 86400.0 * month_days


@dataclass(frozen=True)
class DriverCost:
    """One billed driver: how much of it a month takes and what that costs."""

    key: str
    group: str
    label: str
    monthly_quantity: float
    unit: str
    cost_usd: float
    price_key: str
    basis: str
    note: str
    basis_text: str = ""  # "measured", "derived" or "assumed (low–high)" of the quantity


@dataclass(frozen=True)
class CostBreakdown:
    load: TargetLoad
    requests_per_month: float
    drivers: tuple[DriverCost, ...]
    budget_usd: float
    price_version: str
    month_days: int
    usage: UsageProfile | None = None  # what was priced (the tornado prices it again)
    prices: PriceTable | None = None

    @property
    def total_usd(self) -> float:
        return sum(d.cost_usd for d in self.drivers)

    @property
    def within_budget(self) -> bool:
        return self.total_usd <= self.budget_usd

    @property
    def per_million_requests(self) -> float:
        millions = self.requests_per_month / 1e6
        return self.total_usd / millions if millions else 0.0

    @property
    def per_user_month(self) -> float:
        return self.total_usd / self.load.users if self.load.users else 0.0

    @property
    def per_day(self) -> float:
        return self.total_usd / self.month_days

    @property
    def budget_days(self) -> float:
        """Days of a month after which the budget is spent at this burn rate."""
        return self.budget_usd / self.per_day if self.per_day else float("inf")

    def driver(self, key: str) -> DriverCost:
        for d in self.drivers:
            if d.key == key:
                return d
        raise KeyError(key)

    def by_group(self) -> dict[str, float]:
        groups: dict[str, float] = {}
        for d in self.drivers:
            groups[d.group] = groups.get(d.group, 0.0) + d.cost_usd
        return groups


def _per_request_driver(
    prices: PriceTable, key: str, group: str, label: str, quantity: Quantity,
    requests: float, price_key: str | None = None,
) -> DriverCost:
    price = prices[price_key or key]
    monthly = quantity.value * requests
    return DriverCost(key, group, label, monthly, price.unit, price.charge(monthly),
                      price.key, quantity.basis, quantity.note, _per_month_text(quantity, requests))


def _per_month_text(quantity: Quantity, scale: float) -> str:
    """The quantity's basis, an assumed range scaled to the month ("assumed (0–3.1e+09)")."""
    if quantity.basis == "assumed" and quantity.low is not None and quantity.high is not None:
        return (f"assumed ({number_text(quantity.low * scale)}–"
                f"{number_text(quantity.high * scale)})")
    return quantity.basis


def _fixed_driver(
    prices: PriceTable, key: str, group: str, label: str, amount: Quantity,
    price_key: str | None = None,
) -> DriverCost:
    price = prices[price_key or key]
    return DriverCost(key, group, label, amount.value, price.unit, price.charge(amount.value),
                      price.key, amount.basis, amount.note, amount.basis_text)


def _neon_compute(
    prices: PriceTable, usage: UsageProfile, load: TargetLoad,
) -> DriverCost:
    assume = usage.assumptions
    statements_per_s = usage.db_statements.value * load.requests_per_s

    def cu_of(a: UsageAssumptions) -> float:
        floor_cu = a.neon_min_cu_per_compute * a.neon_computes
        return max(floor_cu, statements_per_s / a.neon_statements_per_cu_second)

    hours_per_cu = 24.0 * prices.month_days
    hours = assumed(lambda a: cu_of(a) * hours_per_cu, assume,
                    ("neon_statements_per_cu_second", "neon_min_cu_per_compute"), "")
    plan = "neon_compute_launch" if assume.neon_plan == "launch" else "neon_compute_scale"
    note = (f"{statements_per_s:,.0f} statements/s ({usage.db_statements.basis}) at "
            f"{assume.neon_statements_per_cu_second:g}/s per CU (assumed) -> "
            f"{cu_of(assume):,.1f} CU around the clock; floor {assume.neon_computes} computes x "
            f"{assume.neon_min_cu_per_compute:g} CU")
    return DriverCost("neon_compute", "Neon", f"Neon compute ({assume.neon_plan})", hours.value,
                      prices[plan].unit, prices[plan].charge(hours.value), plan, "assumed", note,
                      hours.basis_text)


def _storage_drivers(prices: PriceTable, usage: UsageProfile) -> list[DriverCost]:
    a = usage.assumptions

    def gb(key: str, note: str) -> Quantity:
        return assumed(lambda x: getattr(x, key), a, (key,), note)

    return [
        _fixed_driver(prices, "kv_storage", "KV", "KV stored data",
                      gb("kv_storage_gb", "cached objects")),
        _fixed_driver(prices, "r2_storage", "R2", "R2 storage", gb("r2_storage_gb", "pitch media")),
        _fixed_driver(prices, "neon_storage", "Neon", "Neon storage",
                      gb("neon_storage_gb", "primary database; read replicas share storage")),
    ]


def project_cost(
    usage: UsageProfile,
    load: TargetLoad,
    *,
    prices: PriceTable | None = None,
    budget_usd: float = PRODUCT_TARGETS.budget_usd_month,
) -> CostBreakdown:
    """Price a month of `load` with the per-request `usage` profile, against `budget_usd` (the
    product's monthly budget unless a what-if gives another)."""
    table = prices or default_price_table()
    requests = load.requests_per_month(table.month_days)
    per_request = [
        ("workers_requests", "Workers", "Workers requests", usage.worker_invocations),
        ("workers_cpu_ms", "Workers", "Workers CPU-ms", usage.cpu_ms),
        ("kv_reads", "KV", "KV reads", usage.kv_reads),
        ("kv_writes", "KV", "KV writes", usage.kv_writes),
        ("r2_class_a", "R2", "R2 Class A (writes)", usage.r2_class_a),
        ("r2_class_b", "R2", "R2 Class B (reads)", usage.r2_class_b),
        ("do_requests", "Durable Objects", "Durable Objects requests", usage.do_requests),
        ("do_duration", "Durable Objects", "Durable Objects duration", usage.do_gb_s),
    ]
    drivers: list[DriverCost] = [
        _fixed_driver(table, "workers_base", "Workers", "Workers Paid plan",
                      Quantity(1.0, "derived", "monthly minimum"))
    ]
    drivers += [_per_request_driver(table, k, g, lbl, q, requests) for k, g, lbl, q in per_request]
    drivers.append(_neon_compute(table, usage, load))
    drivers += _storage_drivers(table, usage)
    return CostBreakdown(load, requests, tuple(drivers), budget_usd, table.version,
                         table.month_days, usage, table)


def group_order(drivers: Iterable[DriverCost]) -> list[str]:
    """Groups in first-seen order (Workers, KV, R2, Durable Objects, Neon)."""
    seen: list[str] = []
    for d in drivers:
        if d.group not in seen:
            seen.append(d.group)
    return seen


@dataclass(frozen=True)
class ReferenceRow:
    """One item of the document's estimate beside the model's cost of the same item."""

    group: str  # the model's product group
    document_label: str  # the document's name for it ("Database")
    document_usd: float
    model_usd: float


@dataclass(frozen=True)
class ReferenceComparison:
    rows: tuple[ReferenceRow, ...]
    stated_total_usd: float | None  # the total the document prints
    source: str

    @property
    def items_total_usd(self) -> float:
        return sum(r.document_usd for r in self.rows)

    @property
    def model_total_usd(self) -> float:
        """The model's cost of the same items (every product the document prices)."""
        return sum(r.model_usd for r in self.rows)

    @property
    def adds_up(self) -> bool:
        """The document's items sum to the total it states (to the dollar)."""
        return (self.stated_total_usd is None
                or abs(self.items_total_usd - self.stated_total_usd) < 0.5)

    @property
    def check_text(self) -> str:
        items = " + ".join(f"${r.document_usd:,.0f}" for r in self.rows)
        if self.stated_total_usd is None:
            return f"{items} = ${self.items_total_usd:,.0f} (the document states no total)"
        verb = "matches" if self.adds_up else "does NOT match"
        return (f"{items} = ${self.items_total_usd:,.0f}, which {verb} the document's stated "
                f"total of ${self.stated_total_usd:,.0f}/month")


def reference_comparison(cost: CostBreakdown,
                         prices: PriceTable | None = None) -> ReferenceComparison:
    """The document's own monthly estimate beside this model's cost, product by product."""
    table = prices or cost.prices or default_price_table()
    model = cost.by_group()
    rows = tuple(
        ReferenceRow(group, table.reference_labels.get(group, group), usd, model.get(group, 0.0))
        for group, usd in table.reference_estimates.items())
    return ReferenceComparison(rows, table.reference_total, table.reference_source)
