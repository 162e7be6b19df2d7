"""Cost figures: breakdown by driver, a month's burn against the budget, the tornado of the
assumptions (which one moves the total most), and the estimates of the Auto-Scaling document
(docs/targets.md) beside the model's."""

from __future__ import annotations

from collections.abc import Mapping

from collectors.models.cost import CostBreakdown, group_order
from collectors.models.tornado import Tornado
from dashboards.figures.common import (
    AMBER,
    BLUE,
    GREEN,
    GREY,
    PURPLE,
    RED,
    Figure,
    base_layout,
    hline,
    vline,
)

__all__ = ["breakdown_figure", "burn_figure", "seed_comparison_figure", "tornado_figure",
           "GROUP_COLORS"]

GROUP_COLORS = {"Workers": BLUE, "KV": AMBER, "R2": GREEN, "Durable Objects": PURPLE,
                "Neon": GREY}


def breakdown_figure(cost: CostBreakdown) -> Figure:
    """One bar per billed driver, largest first, coloured by product."""
    drivers = sorted(cost.drivers, key=lambda d: d.cost_usd)
    bar = {
        "type": "bar", "orientation": "h", "x": [round(d.cost_usd, 2) for d in drivers],
        "y": [d.label for d in drivers],
        "marker": {"color": [GROUP_COLORS.get(d.group, GREY) for d in drivers]},
        "text": [f"${d.cost_usd:,.0f}" for d in drivers], "textposition": "outside",
        "customdata": [[d.basis, f"{d.monthly_quantity:,.0f} {d.unit}"] for d in drivers],
        "hovertemplate": "%{y}: $%{x:,.0f}/month<br>%{customdata[1]} (%{customdata[0]})"
                         "<extra></extra>",
    }
    title = (f"Monthly cost by driver at {cost.load.users:,.0f} users "
             f"({cost.load.requests_per_s:,.0f} requests/s)")
    layout = base_layout(height=440, title=title, uirevision="breakdown", hovermode="closest",
                         margin={"l": 190, "r": 60, "t": 60, "b": 45},
                         xaxis={"title": {"text": "$ per month"}}, showlegend=False)
    return {"data": [bar], "layout": layout}


def burn_figure(cost: CostBreakdown) -> Figure:
    """Cumulative spend over the billing month against the budget."""
    days = list(range(cost.month_days + 1))
    line = {"type": "scatter", "mode": "lines", "x": days,
            "y": [round(cost.per_day * d, 2) for d in days], "name": "projected spend",
            "line": {"color": GREEN if cost.within_budget else RED}}
    shapes = [hline(cost.budget_usd, color=GREY)]
    notes = [{"text": f"budget ${cost.budget_usd:,.0f}", "x": 1, "xref": "paper",
              "xanchor": "right", "y": cost.budget_usd, "yref": "y", "yanchor": "bottom",
              "showarrow": False}]
    if not cost.within_budget:
        shapes.append(vline(cost.budget_days, color=RED))
        notes.append({"text": f"budget spent on day {cost.budget_days:.1f}",
                      "x": cost.budget_days, "xref": "x", "y": 1, "yref": "paper",
                      "xanchor": "left", "showarrow": False})
    layout = base_layout(height=300, title="Burn against the budget", uirevision="burn",
                         xaxis={"title": {"text": "day of the month"}},
                         yaxis={"title": {"text": "$"}, "rangemode": "tozero"},
                         shapes=shapes, annotations=notes)
    return {"data": [line], "layout": layout}


def seed_comparison_figure(cost: CostBreakdown, seed: Mapping[str, float]) -> Figure:
    """The model's monthly cost per product beside the Auto-Scaling document's own estimate."""
    groups = group_order(cost.drivers)
    model = cost.by_group()
    data = [
        {"type": "bar", "x": groups, "y": [round(seed.get(g, 0.0), 2) for g in groups],
         "name": "Auto-Scaling document's estimate", "marker": {"color": GREY}},
        {"type": "bar", "x": groups, "y": [round(model.get(g, 0.0), 2) for g in groups],
         "name": "this model (measured mix)", "marker": {"color": BLUE}},
    ]
    layout = base_layout(height=320,
                         title="Why the document's estimate is low, product by product",
                         uirevision="seed", barmode="group", hovermode="closest",
                         yaxis={"title": {"text": "$ per month"}, "type": "log"})
    return {"data": data, "layout": layout}


def tornado_figure(spread: Tornado) -> Figure:
    """One bar per assumption, from the central total to the total at each end of its range
    (the rest at their centres), largest swing on top; the bounded range as a band."""
    bars = list(reversed(spread.bars))  # plotly draws the first category at the bottom
    labels = [f"{b.label} ({b.low:,.3g}–{b.high:,.3g} {b.unit})" for b in bars]
    central = spread.central_usd

    def side(name: str, ends: list[float], values: list[float], color: str) -> dict[str, object]:
        return {"type": "bar", "orientation": "h", "name": name, "y": labels,
                "x": [round(v - central, 2) for v in values], "base": central,
                "marker": {"color": color}, "customdata": [[e, v] for e, v in zip(
                    ends, values, strict=True)],
                "hovertemplate": "%{y}<br>at %{customdata[0]:,.3g}: $%{customdata[1]:,.0f}"
                                 "/month<extra></extra>"}

    data = [side("assumption at the low end of its range", [b.low for b in bars],
                 [b.total_at_low for b in bars], GREEN),
            side("assumption at the high end of its range", [b.high for b in bars],
                 [b.total_at_high for b in bars], RED)]
    shapes = [vline(central, color=GREY)]
    notes = [{"text": f"central ${central:,.0f}/month · range ${spread.low_usd:,.0f}–"
                      f"${spread.high_usd:,.0f} (all together)", "x": 0, "xref": "paper",
              "y": 1.0, "yref": "paper", "yanchor": "bottom", "showarrow": False}]
    layout = base_layout(height=max(260, 60 + 34 * len(bars)),
                         title="Which assumption moves the monthly total most",
                         uirevision="tornado", barmode="overlay", hovermode="closest",
                         margin={"l": 330, "r": 40, "t": 70, "b": 45},
                         xaxis={"title": {"text": "$ per month"}}, shapes=shapes,
                         annotations=notes, legend={"orientation": "h", "y": -0.25})
    return {"data": data, "layout": layout}
