"""Capacity and cost for the product's targets, projected from one run: labelled model outputs.

A projection is never a measurement: it is the capacity model (``collectors.models.capacity``:
concurrency steps, a USL fit, sizing for a p95 target) or the cost model
(``collectors.models.cost`` priced with the run's measured usage), applied to the product's
users and budget. Each carries its assumptions, and a projection the run cannot support is
``available: false`` with the reason. The gate records them beside the measured checks; they
never change the verdict's status or exit code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collectors.targets import PRODUCT_TARGETS, ProductTargets
from gate.verdict import Projection

if TYPE_CHECKING:
    import pandas as pd

    from collectors.models.capacity import CapacityPlan, LatencyModel, UslFit
    from collectors.models.cost import CostBreakdown
    from collectors.run import Run
    from gate.window import Bounds

__all__ = [
    "DEFAULT_HEADROOM",
    "DEFAULT_THINK_S",
    "CapacityModel",
    "ProjectionInputs",
    "capacity_model",
    "cost_breakdown",
    "inputs_to_json",
    "model_from_steps",
    "model_to_json",
    "product_inputs",
    "project",
    "scenario_think_time",
    "steps_with_latency",
]

DEFAULT_HEADROOM = 0.3  # spare capacity kept above the required throughput (an assumption)
DEFAULT_THINK_S = 30.0  # when the scenario does not say (an assumption)


@dataclass(frozen=True)
class ProjectionInputs:
    """What a projection is for: users at a think time, a p95 target, headroom, a budget."""

    users: float
    think_time_s: float
    think_source: str  # how the think time was chosen, for the assumptions
    p95_ms: float
    headroom: float
    budget_usd: float
    origin: str = "product target"  # or "what-if (your inputs)"


def scenario_think_time(scenario: Mapping[str, Any]) -> tuple[float, str] | None:
    """Mean think time of the scenario as run, weighted by user class; None if it says none."""
    default = _mean_think(scenario.get("think_time"))
    users = scenario.get("users")
    if not isinstance(users, Mapping) or not users:
        return None if default is None else (default, "the scenario's think time")
    total = weighted = 0.0
    for spec in users.values():
        weight = float(spec.get("weight", 0.0)) if isinstance(spec, Mapping) else 0.0
        own = _mean_think(spec.get("think_time")) if isinstance(spec, Mapping) else None
        think = own if own is not None else default
        if think is None or weight <= 0:
            continue
        total += weight
        weighted += weight * think
    if total <= 0:
        return None
    return weighted / total, "the scenario's, weighted by user class"


def _mean_think(raw: object) -> float | None:
    from collectors.units import parse_duration_s

    if isinstance(raw, Mapping):
        low, high = _mean_think(raw.get("min")), _mean_think(raw.get("max"))
        return None if low is None or high is None else (low + high) / 2.0
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return float(parse_duration_s(raw))
    except ValueError:
        return None


def product_inputs(run: Run, targets: ProductTargets = PRODUCT_TARGETS) -> ProjectionInputs:
    """The product's users, p95 and budget, at the think time of the run's scenario."""
    think = scenario_think_time(run.scenario)
    think_s, source = think if think is not None else (
        DEFAULT_THINK_S, "assumed: the scenario does not say")
    return ProjectionInputs(float(targets.users), think_s, source, targets.p95_ms,
                            DEFAULT_HEADROOM, targets.budget_usd_month)


# --- capacity --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityModel:
    """The run's concurrency steps, the USL fit and the sizing for the inputs (or why not)."""

    steps: pd.DataFrame | None
    fit: UslFit | None
    latency: LatencyModel | None
    plan: CapacityPlan | None
    problem: str | None


def steps_with_latency(run: Run) -> tuple[pd.DataFrame | None, str | None]:
    """The run's concurrency steps with each step's p95 and mean latency (merged histograms)."""
    from collectors.errors import RunDirError
    from collectors.hdr import Histogram
    from collectors.models.capacity import CapacityError, concurrency_steps

    try:
        steps = concurrency_steps(run.load)
    except CapacityError as exc:
        return None, str(exc)
    if steps.empty:
        return None, "the run held no concurrency level long enough to measure (10 s or more)"
    p95, mean = [], []
    for row in steps.itertuples(index=False):
        try:
            hist = run.histogram(start=float(row.start), end=float(row.end))
        except RunDirError:
            hist = Histogram()
        p95.append(hist.quantile(0.95) if hist.total else math.nan)
        mean.append(hist.mean_ms if hist.total else math.nan)
    return steps.assign(p95_ms=p95, mean_ms=mean), None


def capacity_model(run: Run, inputs: ProjectionInputs) -> CapacityModel:
    return model_from_steps(*steps_with_latency(run), inputs)


def model_from_steps(steps: pd.DataFrame | None, problem: str | None,
                     inputs: ProjectionInputs) -> CapacityModel:
    """The USL fit and the sizing for ``inputs`` from ``steps_with_latency``'s answer (the
    dashboard keeps the steps of a run and asks this for each what-if)."""
    from collectors.models.capacity import (
        CapacityError,
        WhatIf,
        fit_usl,
        latency_model,
        plan_capacity,
    )

    if steps is None:
        return CapacityModel(None, None, None, None, problem)
    usable = steps.dropna(subset=["p95_ms"])
    try:
        fit = fit_usl(usable["users"].tolist(), usable["throughput"].tolist())
    except CapacityError as exc:
        return CapacityModel(steps, None, None, None, str(exc))
    try:
        latency = latency_model(usable, inputs.think_time_s)
        what = WhatIf(users=inputs.users, think_time_s=inputs.think_time_s,
                      p95_target_ms=inputs.p95_ms, headroom=inputs.headroom)
        plan = plan_capacity(fit, latency, what)
    except CapacityError as exc:
        return CapacityModel(steps, fit, None, None, str(exc))
    return CapacityModel(steps, fit, latency, plan, None)


def inputs_to_json(inputs: ProjectionInputs) -> dict[str, Any]:
    return {"users": inputs.users, "think_time_s": inputs.think_time_s,
            "think_source": inputs.think_source, "p95_target_ms": inputs.p95_ms,
            "headroom": inputs.headroom, "budget_usd": inputs.budget_usd,
            "origin": inputs.origin}


def model_to_json(model: CapacityModel, inputs: ProjectionInputs) -> dict[str, Any]:
    """The capacity model as plain data: inputs, steps, USL fit with its intervals, the
    response time law at the inputs, and the sizing (None where the run gave no answer)."""
    steps = [] if model.steps is None else [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in model.steps.to_dict("records")]
    details: dict[str, Any] = {"inputs": inputs_to_json(inputs), "steps": steps,
                               "problem": model.problem, "usl": None, "plan": None,
                               "response_time_law": None}
    fit, plan = model.fit, model.plan
    if fit is not None:
        details["usl"] = {
            "sigma": fit.sigma, "kappa": fit.kappa, "lambda": fit.lam,
            "sigma_ci": _interval(fit.sigma_ci), "kappa_ci": _interval(fit.kappa_ci),
            "lambda_ci": _interval(fit.lam_ci), "confidence": fit.confidence,
            "r_squared": fit.r_squared, "points": fit.points,
            "peak_users": None if math.isinf(fit.peak_users) else fit.peak_users,
            "max_throughput": None if math.isinf(fit.max_throughput) else fit.max_throughput,
        }
    if plan is not None:
        cycle_s = plan.response_s + inputs.think_time_s
        details["response_time_law"] = {
            "users": inputs.users, "think_time_s": inputs.think_time_s,
            "response_ms": plan.response_s * 1000.0,
            "throughput_rps": inputs.users / cycle_s if cycle_s else None}
        details["plan"] = {
            "p95_target_ms": inputs.p95_ms, "headroom": inputs.headroom,
            "required_rps": plan.required_rps, "per_instance_users": plan.per_instance_users,
            "per_instance_rps": plan.per_instance_rps, "instances": plan.instances,
            "instances_ci": _interval(plan.instances_ci), "extrapolated": plan.extrapolated,
            "reasons": list(plan.reasons),
        }
    return details


def _interval(ci: object) -> list[float] | None:
    low, high = getattr(ci, "low", None), getattr(ci, "high", None)
    return [float(low), float(high)] if low is not None and high is not None else None


def _capacity_projections(run: Run, inputs: ProjectionInputs) -> list[Projection]:
    model = capacity_model(run, inputs)
    name = f"instances for {inputs.users:,.0f} users"
    cores_name = f"CPU cores for {inputs.users:,.0f} users"
    plan, fit = model.plan, model.fit
    if plan is None or fit is None or plan.instances is None:
        reason = model.problem or (plan.reasons[0] if plan and plan.reasons else
                                   "the capacity model gave no answer")
        base = _load_assumptions(inputs)
        return [_unavailable(name, "instances", reason, base),
                _unavailable(cores_name, "cores", reason, base)]
    low, high = (plan.instances_ci.low, plan.instances_ci.high) if plan.instances_ci else (
        None, None)
    assumptions = (*_load_assumptions(inputs),
                   f"p95 < {inputs.p95_ms:g} ms per instance ({inputs.origin})",
                   f"{inputs.headroom:.0%} headroom above the required throughput",
                   f"USL fitted to {fit.points} concurrency steps of this run "
                   f"(R² {fit.r_squared:.3f}); interval from the fit's {fit.confidence:.0%} "
                   "parameter uncertainty",
                   f"an instance is the deployment this run loaded ({_topology(run)})",
                   *plan.reasons)
    projections = [_ranged(name, float(plan.instances), low, high, "instances", assumptions)]
    cpus = _cpu_count(run)
    if cpus:
        projections.append(_ranged(
            cores_name, float(plan.instances * cpus), None if low is None else low * cpus,
            None if high is None else high * cpus, "cores",
            (*assumptions, f"{cpus} CPU cores per instance (the machine of this run)")))
    return projections


def _ranged(name: str, value: float, low: float | None, high: float | None, unit: str,
            assumptions: tuple[str, ...]) -> Projection:
    spread = f" ({low:,.0f}-{high:,.0f})" if low is not None and high is not None else ""
    return Projection(name, value, low, high, unit, None, None,
                      f"{value:,.0f}{spread} {unit}", assumptions, True)


def _unavailable(name: str, unit: str, reason: str, assumptions: tuple[str, ...],
                 limit: float | None = None) -> Projection:
    return Projection(name, None, None, None, unit, limit, None, f"not available: {reason}",
                      assumptions, False, reason)


def _load_assumptions(inputs: ProjectionInputs) -> tuple[str, ...]:
    return (f"{inputs.users:,.0f} concurrent users ({inputs.origin})",
            f"think time {inputs.think_time_s:.3g} s ({inputs.think_source})")


def _topology(run: Run) -> str:
    kind = run.topology.get("kind") or run.scenario.get("topology") or "single"
    return f"topology {kind}"


def _cpu_count(run: Run) -> int:
    machine = run.manifest.get("machine")
    count = machine.get("cpu_count") if isinstance(machine, Mapping) else None
    return int(count) if isinstance(count, int) and count > 0 else 0


# --- cost ------------------------------------------------------------------------------------


def cost_breakdown(run: Run, bounds: Bounds,
                   inputs: ProjectionInputs) -> tuple[CostBreakdown | None, str]:
    """The monthly cost of the inputs' users at the run's measured mix, or why there is none."""
    from collectors.models.cost import TargetLoad, project_cost
    from collectors.models.usage import measure_usage, service_totals

    stats = _between(run.stats, bounds)
    requests = stats.groupby("endpoint", observed=True)["requests"].sum() if len(stats) else None
    by_endpoint = {} if requests is None else {str(k): float(v) for k, v in requests.items()}
    hist = run.histogram(start=bounds.cut) if bounds.cut is not None else run.histogram()
    if not sum(by_endpoint.values()) or not hist.total:
        return None, "no request was recorded in the gated window"
    mean_s = hist.mean_ms / 1000.0
    usage = measure_usage(by_endpoint, service_totals(_between(run.service, bounds)),
                          mean_response_s=mean_s)
    load = TargetLoad(inputs.users, inputs.think_time_s, mean_s)
    return project_cost(usage, load, budget_usd=inputs.budget_usd), ""


def _between(frame: pd.DataFrame, bounds: Bounds) -> pd.DataFrame:
    if not len(frame) or "t" not in frame:
        return frame
    keep = frame["t"] < bounds.end
    if bounds.cut is not None:
        keep &= frame["t"] >= bounds.cut
    return frame[keep]


def _cost_projection(run: Run, bounds: Bounds, inputs: ProjectionInputs) -> Projection:
    name = f"monthly cost for {inputs.users:,.0f} users"
    cost, problem = cost_breakdown(run, bounds, inputs)
    if cost is None:
        return _unavailable(name, "USD/month", problem, _load_assumptions(inputs),
                            inputs.budget_usd)
    load = cost.load
    assumed = [f"{d.label}: {d.note or 'assumed'}" for d in cost.drivers if d.basis == "assumed"]
    assumptions = (
        *_load_assumptions(inputs),
        f"response time {load.response_time_s * 1000:.3g} ms (mean over the gated window)",
        f"{load.requests_per_s:,.0f} requests/s by the response time law N = X(R+Z)",
        f"usage per request measured in this run where it could be; assumed: "
        f"{'; '.join(assumed) or 'nothing'}",
        f"prices {cost.price_version}, {cost.month_days}-day month",
        f"budget ${inputs.budget_usd:,.0f}/month ({inputs.origin})",
    )
    total = cost.total_usd
    return Projection(name, total, None, None, "USD/month", inputs.budget_usd,
                      cost.within_budget,
                      f"${total:,.0f}/month (budget ${inputs.budget_usd:,.0f})", assumptions,
                      True)


def project(run: Run, bounds: Bounds, inputs: ProjectionInputs) -> tuple[Projection, ...]:
    """Capacity (instances, cores) and cost for the inputs; never raises for a thin run."""
    return (*_capacity_projections(run, inputs), _cost_projection(run, bounds, inputs))
