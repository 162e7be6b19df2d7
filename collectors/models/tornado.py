"""Which assumption moves the monthly bill most: a tornado over the cost model's assumptions.

For every assumption a priced month rests on (`UsageProfile.assumed_keys`, each with its
range in `collectors.models.usage.ASSUMPTION_RANGES`), the month is priced again with that
assumption at the low end and at the high end of its range, everything else at its central
value; the bars are sorted by swing (the larger total minus the smaller).

The total's range is the **bounded combination**: every assumption at whichever end of its
range lowers the bill, all together (the low total), and at whichever end raises it (the high
total). Every charge is nondecreasing in its quantity and every quantity is monotone in each
assumption, so these two corners are the cheapest and dearest of all combinations of the
ranges' ends: the range bounds the bill over the whole box, not one assumption at a time.
Measured figures are not varied: the run's own measurement is the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collectors.models.cost import CostBreakdown, TargetLoad, project_cost
from collectors.models.prices import PriceTable, default_price_table
from collectors.models.usage import UsageProfile, assumption_range, number_text

__all__ = ["COMBINATION", "Tornado", "TornadoBar", "cost_tornado", "tornado"]

COMBINATION = ("every assumption at the end of its range that lowers (raises) the bill, all "
               "together: the bounds over every combination, since the bill is monotone in "
               "each assumption")


@dataclass(frozen=True)
class TornadoBar:
    """One assumption: its range and the monthly total at either end of it."""

    key: str
    label: str
    unit: str
    why: str
    low: float  # the assumption's value at each end, and its central value
    central: float
    high: float
    total_at_low: float  # the monthly total with the assumption at `low`, the rest central
    total_at_high: float

    @property
    def swing_usd(self) -> float:
        return abs(self.total_at_high - self.total_at_low)

    @property
    def cheap_end(self) -> float:
        """The assumption's value that gives the lower total (central when it moves nothing)."""
        if self.total_at_low == self.total_at_high:
            return self.central
        return self.low if self.total_at_low < self.total_at_high else self.high

    @property
    def dear_end(self) -> float:
        if self.total_at_low == self.total_at_high:
            return self.central
        return self.high if self.total_at_low < self.total_at_high else self.low

    @property
    def text(self) -> str:
        """'application-cache writes billed as KV writes 0–1 share (central 0.5): $1,000 at
        0, $9,000 at 1'."""
        return (f"{self.label} {number_text(self.low)}–{number_text(self.high)} {self.unit} "
                f"(central {number_text(self.central)}): ${self.total_at_low:,.0f}/month at "
                f"{number_text(self.low)}, ${self.total_at_high:,.0f} at "
                f"{number_text(self.high)}")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "why": self.why,
                "low": self.low, "central": self.central, "high": self.high,
                "total_at_low": self.total_at_low, "total_at_high": self.total_at_high,
                "swing_usd": self.swing_usd}


@dataclass(frozen=True)
class Tornado:
    central_usd: float
    bars: tuple[TornadoBar, ...]  # largest swing first
    low_usd: float  # the bounded combination (COMBINATION)
    high_usd: float
    combination: str = COMBINATION

    @property
    def largest(self) -> TornadoBar | None:
        return self.bars[0] if self.bars and self.bars[0].swing_usd > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"central_usd": self.central_usd, "low_usd": self.low_usd,
                "high_usd": self.high_usd, "combination": self.combination,
                "bars": [b.to_json() for b in self.bars]}


def tornado(usage: UsageProfile, load: TargetLoad, *, prices: PriceTable | None = None,
            budget_usd: float | None = None) -> Tornado:
    """The tornado of a usage profile measured from a run (`usage.source` is needed to
    measure it again under other assumptions)."""
    table = prices or default_price_table()

    def total(profile: UsageProfile) -> float:
        cost = (project_cost(profile, load, prices=table) if budget_usd is None
                else project_cost(profile, load, prices=table, budget_usd=budget_usd))
        return cost.total_usd

    central = total(usage)
    bars = []
    for key in usage.assumed_keys:
        r = assumption_range(key)
        bars.append(TornadoBar(
            key, r.label, r.unit, r.why, r.low, float(getattr(usage.assumptions, key)), r.high,
            total(usage.with_assumptions(**{key: r.low})),
            total(usage.with_assumptions(**{key: r.high}))))
    bars.sort(key=lambda b: (-b.swing_usd, b.key))
    low = total(usage.with_assumptions(**{b.key: b.cheap_end for b in bars}))
    high = total(usage.with_assumptions(**{b.key: b.dear_end for b in bars}))
    return Tornado(central, tuple(bars), low, high)


def cost_tornado(cost: CostBreakdown) -> Tornado | None:
    """The tornado of a priced month, or None when its profile cannot be measured again (a
    hand-made or what-if profile without a source)."""
    if cost.usage is None or cost.usage.source is None:
        return None
    return tornado(cost.usage, cost.load, prices=cost.prices, budget_usd=cost.budget_usd)
