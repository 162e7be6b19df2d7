"""The models applied to a prepared run: verdict, cost, capacity (pure functions of a view).

Defaults follow the issue and seed 003: 100,000 users, p95 < 100 ms, error rate < 0.1%,
$5,000/month; the think time is the run's own (the scenario as run) unless given, 30 s when
the run does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from collectors.hdr import Histogram
from collectors.models.capacity import (
    CapacityError,
    CapacityPlan,
    LatencyModel,
    UslFit,
    WhatIf,
    fit_usl,
    latency_model,
    plan_capacity,
)
from collectors.models.cost import CostBreakdown, TargetLoad, project_cost
from collectors.models.prices import PriceTable, default_price_table
from collectors.models.recommendations import Recommendation, recommend
from collectors.models.usage import UsageProfile, measure_usage
from collectors.models.verdict import Measured, Targets, Verdict, evaluate, measured_from_summary
from dashboards.data import RunView

__all__ = [
    "DEFAULT_THINK_S",
    "CapacityResult",
    "Settings",
    "capacity_for",
    "capacity_report",
    "cost_for",
    "live_measured",
    "recommendations_for",
    "usage_for",
    "verdict_for",
]

DEFAULT_THINK_S = 30.0


@dataclass(frozen=True)
class Settings:
    """What-if inputs shared by the header, the capacity and the cost pages."""

    users: float = 100_000
    think_time_s: float | None = None  # None: the run's own
    p95_target_ms: float = 100.0
    headroom: float = 0.3
    budget_usd: float = 5000.0
    error_rate: float = 0.001

    def think_for(self, view: RunView) -> float:
        if self.think_time_s is not None:
            return self.think_time_s
        return view.think_time_s if view.think_time_s is not None else DEFAULT_THINK_S

    @property
    def targets(self) -> Targets:
        return Targets(users=self.users, p95_ms=self.p95_target_ms,
                       error_rate=self.error_rate, budget_usd=self.budget_usd)


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


def live_measured(view: RunView) -> Measured:
    """Verdict inputs of a run still being written, from its merged bins so far."""
    bins = view.bins
    load = view.load
    stats_requests = sum(h.total for h in bins.overall) if bins else 0
    failures = sum(bins.failures) if bins else 0
    overall = Histogram.merge(bins.overall) if bins else Histogram()
    regions = {r: Histogram.merge(hs) for r, hs in (bins.by_region.items() if bins else [])}
    return Measured(
        users_max=float(load["users"].max()) if len(load) else None,
        p95_ms=overall.quantile(0.95) if overall.total else None,
        region_p95_ms={r: h.quantile(0.95) for r, h in regions.items() if h.total},
        error_rate=failures / stats_requests if stats_requests else None,
        requests=float(stats_requests), valid=None,
        invalid_reasons=("run still being written",),
    )


def verdict_for(view: RunView, settings: Settings | None = None) -> Verdict:
    chosen = settings or Settings()
    cost = cost_for(view, chosen).total_usd
    if view.live:
        measured = live_measured(view)
        measured = Measured(**{**measured.__dict__, "monthly_cost_usd": cost})
    else:
        measured = measured_from_summary(view.summary, monthly_cost_usd=cost)
    return evaluate(measured, chosen.targets)


@dataclass(frozen=True)
class CapacityResult:
    steps: pd.DataFrame | None
    fit: UslFit | None
    model: LatencyModel | None
    plan: CapacityPlan | None
    problem: str | None


def capacity_for(view: RunView, settings: Settings) -> CapacityResult:
    """USL fit of the run's steps and the instances the what-if needs."""
    steps = view.steps
    if steps is None or steps.empty:
        return CapacityResult(None, None, None, None,
                              view.notes.get("capacity", "The run has no concurrency steps."))
    usable = steps.dropna(subset=["p95_ms"])
    try:
        fit = fit_usl(usable["users"].tolist(), usable["throughput"].tolist())
    except CapacityError as exc:
        return CapacityResult(steps, None, None, None, str(exc))
    try:
        model = latency_model(usable, view.think_time_s)
        what = WhatIf(users=settings.users, think_time_s=settings.think_for(view),
                      p95_target_ms=settings.p95_target_ms, headroom=settings.headroom)
        plan = plan_capacity(fit, model, what)
    except CapacityError as exc:
        return CapacityResult(steps, fit, None, None, str(exc))
    return CapacityResult(steps, fit, model, plan, None)


def format_interval(low: float, high: float, digits: int = 3) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"[{low:.{digits}g}, {high:.{digits}g}]"


def _interval(ci: object) -> list[float] | None:
    low, high = getattr(ci, "low", None), getattr(ci, "high", None)
    return [float(low), float(high)] if low is not None and high is not None else None


def capacity_report(view: RunView, settings: Settings) -> dict[str, object]:
    """Panel 6 as plain data: steps, USL fit with CIs, the law's projection, sizing, cost."""
    result = capacity_for(view, settings)
    cost = cost_for(view, settings)
    steps = [] if result.steps is None else [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in result.steps.to_dict("records")]
    report: dict[str, object] = {
        "run_id": view.run_id, "scenario": view.scenario_name, "steps": steps,
        "problem": result.problem, "usl": None, "plan": None,
        "cost": {"monthly_usd": round(cost.total_usd, 2), "budget_usd": cost.budget_usd,
                 "within_budget": cost.within_budget},
    }
    fit, plan = result.fit, result.plan
    think = settings.think_for(view)
    response_s = plan.response_s if plan is not None else view.mean_response_s
    report["response_time_law"] = {
        "users": settings.users, "think_time_s": think, "response_ms": response_s * 1000.0,
        "throughput_rps": settings.users / (response_s + think) if response_s + think else None,
    }
    if fit is not None:
        report["usl"] = {
            "sigma": fit.sigma, "kappa": fit.kappa, "lambda": fit.lam,
            "sigma_ci": _interval(fit.sigma_ci), "kappa_ci": _interval(fit.kappa_ci),
            "lambda_ci": _interval(fit.lam_ci), "confidence": fit.confidence,
            "r_squared": fit.r_squared, "points": fit.points,
            "peak_users": None if math.isinf(fit.peak_users) else fit.peak_users,
            "max_throughput": None if math.isinf(fit.max_throughput) else fit.max_throughput,
        }
    if plan is not None:
        report["plan"] = {
            "p95_target_ms": settings.p95_target_ms, "headroom": settings.headroom,
            "required_rps": plan.required_rps, "per_instance_users": plan.per_instance_users,
            "per_instance_rps": plan.per_instance_rps, "instances": plan.instances,
            "instances_ci": _interval(plan.instances_ci), "extrapolated": plan.extrapolated,
        }
    reasons = list(plan.reasons) if plan is not None else []
    if not cost.within_budget:
        reasons.append(f"projected ${cost.total_usd:,.0f}/month is over the "
                       f"${cost.budget_usd:,.0f} budget")
    report["reasons"] = reasons
    report["passes"] = bool(plan is not None and plan.passes and cost.within_budget)
    return report
