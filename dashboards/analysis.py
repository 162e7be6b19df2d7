"""The models applied to a prepared run for the what-if pages: cost, capacity, and the figures
the header shows while a run has no verdict (pure functions of a view).

The dashboard never judges a run: the verdict is the gate's, read from summary.json
(`collectors.recorded_verdict`). What is computed here answers the user's own inputs (the
sliders) and is labelled "what-if". Defaults are the product targets
(`collectors.targets.PRODUCT_TARGETS`); the think time is the scenario's as the gate's
projections take it unless given. The capacity what-if is the gate's own model
(`gate.projections.model_from_steps`) asked with the user's inputs, so at the defaults it gives
the numbers of the verdict's projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collectors.hdr import Histogram
from collectors.models.cost import CostBreakdown, TargetLoad, project_cost
from collectors.models.prices import PriceTable, default_price_table
from collectors.models.recommendations import Recommendation, recommend
from collectors.models.usage import UsageProfile, measure_usage
from collectors.targets import PRODUCT_TARGETS
from dashboards.data import RunView
from gate.projections import (
    DEFAULT_HEADROOM,
    DEFAULT_THINK_S,
    CapacityModel,
    ProjectionInputs,
    model_from_steps,
)

__all__ = [
    "DEFAULT_THINK_S",
    "HeaderFigure",
    "WHAT_IF_ORIGIN",
    "Settings",
    "capacity_for",
    "cost_for",
    "format_interval",
    "inputs_for",
    "recommendations_for",
    "run_figures",
    "usage_for",
]

WHAT_IF_ORIGIN = "what-if (your inputs)"  # the label of every answer to the user's inputs


@dataclass(frozen=True)
class Settings:
    """What-if inputs shared by the capacity and the cost pages (defaults: product targets)."""

    users: float = PRODUCT_TARGETS.users
    think_time_s: float | None = None  # None: the run's own
    p95_target_ms: float = PRODUCT_TARGETS.p95_ms
    headroom: float = DEFAULT_HEADROOM
    budget_usd: float = PRODUCT_TARGETS.budget_usd_month

    def think_for(self, view: RunView) -> float:
        if self.think_time_s is not None:
            return self.think_time_s
        return view.think_time_s if view.think_time_s is not None else DEFAULT_THINK_S


def usage_for(view: RunView) -> UsageProfile:
    return measure_usage(view.requests_by_endpoint, view.totals,
                         mean_response_s=view.mean_response_s)


def cost_for(view: RunView, settings: Settings, prices: PriceTable | None = None) -> CostBreakdown:
    """Monthly cost of `settings.users` users at the run's measured mix and response time."""
    load = TargetLoad(settings.users, settings.think_for(view), view.mean_response_s)
    return project_cost(usage_for(view), load, prices=prices or default_price_table(),
                        budget_usd=settings.budget_usd)


def recommendations_for(view: RunView, settings: Settings) -> list[Recommendation]:
    load = TargetLoad(settings.users, settings.think_for(view), view.mean_response_s)
    return recommend(usage_for(view), load, budget_usd=settings.budget_usd)


@dataclass(frozen=True)
class HeaderFigure:
    """One figure the header shows for a run without a verdict: a value, never a judgement."""

    key: str
    label: str
    text: str


def _ms(value: float | None) -> str:
    return "no data" if value is None else f"{value:,.1f} ms"


def _live_figures(view: RunView) -> list[HeaderFigure]:
    """Figures of a run still being written, from its merged bins so far."""
    bins = view.bins
    requests = sum(h.total for h in bins.overall) if bins else 0
    failures = sum(bins.failures) if bins else 0
    overall = Histogram.merge(bins.overall) if bins else Histogram()
    figures = [
        HeaderFigure("users", "users now", f"{float(view.load['users'].iloc[-1]):,.0f}"
                     if len(view.load) else "no data"),
        HeaderFigure("requests", "requests so far", f"{requests:,}"),
        HeaderFigure("error_rate", "error rate so far",
                     f"{failures / requests:.3%}" if requests else "no data"),
        HeaderFigure("p95", "p95 so far",
                     _ms(overall.quantile(0.95) if overall.total else None)),
    ]
    for region, hists in (bins.by_region.items() if bins else []):
        merged = Histogram.merge(hists)
        figures.append(HeaderFigure(f"p95-{region}", f"p95 {region} so far",
                                    _ms(merged.quantile(0.95) if merged.total else None)))
    return figures


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _p95(entry: object) -> float | None:
    latency = entry.get("latency_ms") if isinstance(entry, dict) else None
    return _number(latency.get("p95")) if isinstance(latency, dict) else None


def _summary_figures(view: RunView) -> list[HeaderFigure]:
    """Figures a finished run's summary.json records (the whole run, or the gate's window)."""
    summary = view.summary
    users, requests = _number(summary.get("users_max")), _number(summary.get("requests"))
    errors = _number(summary.get("error_rate"))
    figures = [
        HeaderFigure("users", "users (max)", "no data" if users is None else f"{users:,.0f}"),
        HeaderFigure("requests", "requests",
                     "no data" if requests is None else f"{requests:,.0f}"),
        HeaderFigure("error_rate", "error rate",
                     "no data" if errors is None else f"{errors:.3%}"),
        HeaderFigure("p95", "p95", _ms(_p95(summary))),
    ]
    regions = summary.get("by_region")
    for region, entry in sorted(regions.items() if isinstance(regions, dict) else []):
        figures.append(HeaderFigure(f"p95-{region}", f"p95 {region}", _ms(_p95(entry))))
    return figures


def run_figures(view: RunView) -> list[HeaderFigure]:
    """What the header shows while a run has no verdict: measured figures, nothing judged."""
    return _live_figures(view) if view.live else _summary_figures(view)


def inputs_for(view: RunView, settings: Settings) -> ProjectionInputs:
    """The what-if as the gate's projection inputs (the same model answers both)."""
    think = settings.think_for(view)
    source = ("your input" if settings.think_time_s is not None else
              "the scenario's" if view.think_time_s is not None else
              "assumed: the scenario does not say")
    return ProjectionInputs(float(settings.users), think, source, settings.p95_target_ms,
                            settings.headroom, settings.budget_usd, origin=WHAT_IF_ORIGIN)


def capacity_for(view: RunView, settings: Settings) -> CapacityModel:
    """The capacity estimate of the run's steps (knee, X_max, USL) and the instances the
    what-if needs: the gate's model, asked with the user's inputs."""
    problem = view.notes.get("capacity", "The run has no load steps.")
    return model_from_steps(view.steps, problem, inputs_for(view, settings))


def format_interval(low: float, high: float, digits: int = 3) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"[{low:.{digits}g}, {high:.{digits}g}]"

