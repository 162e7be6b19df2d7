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

    from collectors.models.capacity import InstanceDemand, Interval, LatencyModel, UslFit
    from collectors.models.cost import CostBreakdown
    from collectors.models.knee import CapacityEstimate
    from collectors.models.steps import MeasuredSteps
    from collectors.run import Run
    from gate.window import Bounds

__all__ = [
    "DEFAULT_HEADROOM",
    "DEFAULT_THINK_S",
    "CapacityModel",
    "ProjectionInputs",
    "Sizing",
    "capacity_model",
    "cost_breakdown",
    "inputs_to_json",
    "model_from_steps",
    "model_to_json",
    "measured_capacity",
    "product_inputs",
    "project",
    "project_with_capacity",
    "scenario_think_time",
    "size",
    "sizing_projections",
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
class Sizing:
    """The response time law and the instances and cores for the inputs, from an estimate."""

    response_s: float  # R: measured mean response time
    response_source: str
    per_user_rps: float  # 1 / (R + Z)
    required_rps: float  # users / (R + Z)
    per_instance_rps: float
    per_instance_low: float
    per_instance_high: float
    instances: int
    instances_ci: Interval | None  # from the estimate's high and low
    cores_per_instance: float | None
    cores_source: str
    busy_cores: float | None  # required × the instance's CPU per request

    @property
    def cores(self) -> tuple[float, float, float] | None:
        """(value, low, high) CPU cores, or None when the cores of an instance are unknown."""
        if self.cores_per_instance is None:
            return None
        ci = self.instances_ci
        low, high = (ci.low, ci.high) if ci else (self.instances, self.instances)
        c = self.cores_per_instance
        return self.instances * c, low * c, high * c


@dataclass(frozen=True)
class CapacityModel:
    """The run's steps, the capacity estimate (knee, X_max, USL) and the sizing (or why not).

    `plan` is the sizing (its old name); `fit` the USL cross-check; `latency` the law's
    latency model of a closed-model run's steps."""

    steps: pd.DataFrame | None
    fit: UslFit | None
    latency: LatencyModel | None
    sizing: Sizing | None
    problem: str | None
    estimate: CapacityEstimate | None = None
    demand: InstanceDemand | None = None
    load: str = "rate"

    @property
    def plan(self) -> Sizing | None:
        return self.sizing


@dataclass(frozen=True, eq=False)
class _Measured:
    """What a run measured for the capacity model, hung on the steps frame's ``attrs`` so the
    dashboard's what-if (which keeps only the frame) asks the same model as the gate."""

    measured: MeasuredSteps | None
    demand: InstanceDemand
    run_mean_ms: float | None
    cpu_count: int


_ATTR = "pitchey_capacity"


def steps_with_latency(run: Run) -> tuple[pd.DataFrame | None, str | None]:
    """The run's load steps (breakpoint steps, else concurrency plateaus) with each step's
    throughput, p95, p99, mean and error rate, and (in ``attrs``) their seconds and the run's
    service demand; None and why when the run has no steps and no service demand."""
    import pandas as pd

    from collectors.models.capacity import instance_demand
    from collectors.models.steps import STEP_COLUMNS, measure_steps

    measured = measure_steps(run)
    problem = measured if isinstance(measured, str) else None
    steps = None if isinstance(measured, str) else measured
    window = (None, None) if steps is None or not len(steps.frame) else (
        float(steps.frame["start"].min()), float(steps.frame["end"].max()))
    demand = instance_demand(run, start=window[0], end=window[1])
    whole = run.histogram()
    bundle = _Measured(steps, demand, whole.mean_ms if whole.total else None, _cpu_count(run))
    if steps is None and demand.x_max_rps is None:
        return None, f"{problem} and no X_max ({demand.note})"
    frame = steps.frame.copy() if steps is not None else pd.DataFrame(columns=STEP_COLUMNS)
    frame.attrs[_ATTR] = bundle
    return frame, problem


def capacity_model(run: Run, inputs: ProjectionInputs) -> CapacityModel:
    return model_from_steps(*steps_with_latency(run), inputs)


def _held_mean_ms(frame: pd.DataFrame, inputs: ProjectionInputs) -> float | None:
    from collectors.models.knee import MAX_ERROR_RATE

    held = frame.dropna(subset=["p95_ms", "mean_ms"])
    held = held[(held["p95_ms"] <= inputs.p95_ms) & (held["error_rate"].fillna(0.0)
                                                      <= MAX_ERROR_RATE)]
    weights = held["requests"].clip(lower=0)
    if not len(held) or float(weights.sum()) <= 0:
        return None
    return float((held["mean_ms"] * weights).sum() / weights.sum())


def size(estimate: CapacityEstimate, inputs: ProjectionInputs, response_s: float,
         response_source: str, cores_per_instance: float | None, cores_source: str,
         request_ms: float | None) -> Sizing | None:
    """Response time law → required throughput → instances (with headroom) → cores (pure)."""
    from collectors.models.capacity import Interval

    if not estimate.available or estimate.per_instance_rps is None:
        return None
    per_user = 1.0 / (response_s + inputs.think_time_s)
    required = inputs.users * per_user
    need = required * (1.0 + inputs.headroom)
    value = estimate.per_instance_rps
    low = estimate.low if estimate.low else value
    high = estimate.high if estimate.high else value
    instances = math.ceil(need / value)
    ci = Interval(float(math.ceil(need / high)), float(math.ceil(need / low)))
    busy = required * request_ms / 1000.0 if request_ms else None
    return Sizing(response_s, response_source, per_user, required, value, low, high,
                  instances, ci, cores_per_instance, cores_source, busy)


def model_from_steps(steps: pd.DataFrame | None, problem: str | None,
                     inputs: ProjectionInputs) -> CapacityModel:
    """The estimate and the sizing for ``inputs`` from ``steps_with_latency``'s answer (the
    dashboard keeps the steps of a run and asks this for each what-if)."""
    from collectors.models.capacity import CapacityError, fit_usl, latency_model, usl_cross_check
    from collectors.models.knee import capacity_estimate, knee

    bundle = steps.attrs.get(_ATTR) if steps is not None else None
    if steps is None or not isinstance(bundle, _Measured):
        return CapacityModel(steps, None, None, None, problem or "the run has no load steps")
    measured, demand = bundle.measured, bundle.demand
    frame = measured.frame if measured is not None else steps
    kind = measured.load if measured is not None else "rate"
    fit, latency, found = None, None, None
    usl_note = problem or "no steps"
    if measured is not None and len(frame):
        found = knee(frame, inputs.p95_ms, measured.seconds)
        if kind == "users":
            usable = frame.dropna(subset=["p95_ms"])
            try:
                fit = fit_usl(usable["users"].tolist(), usable["throughput"].tolist())
                usl_note = (f"USL on the {fit.points} concurrency steps "
                            f"(R² {fit.r_squared:.3f})")
                latency = latency_model(usable, inputs.think_time_s)
            except CapacityError as exc:
                usl_note = str(exc)
        else:
            fit, usl_note = usl_cross_check(frame)
    peak = None if fit is None or math.isinf(fit.max_throughput) else fit.max_throughput
    estimate = capacity_estimate(found, demand.x_max_rps, peak, x_max_note=demand.note,
                                 usl_note=usl_note, no_knee=problem or "the run has no steps")
    held = _held_mean_ms(frame, inputs) if len(frame) else None
    if held is not None:
        response_ms, source = held, "mean of the steps that held the p95 target"
    else:
        response_ms = bundle.run_mean_ms or 0.0
        source = "mean over the whole run"
    cores, cores_source = (demand.cores, "the cores its processes can use (service demand)") \
        if demand.cores else (float(bundle.cpu_count) or None,
                              "the CPU cores of the machine of this run")
    sizing = size(estimate, inputs, response_ms / 1000.0, source, cores, cores_source,
                  demand.request_ms)
    reason = None if sizing is not None else estimate.why
    return CapacityModel(steps, fit, latency, sizing, reason, estimate, demand, kind)


def inputs_to_json(inputs: ProjectionInputs) -> dict[str, Any]:
    return {"users": inputs.users, "think_time_s": inputs.think_time_s,
            "think_source": inputs.think_source, "p95_target_ms": inputs.p95_ms,
            "headroom": inputs.headroom, "budget_usd": inputs.budget_usd,
            "origin": inputs.origin}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def model_to_json(model: CapacityModel, inputs: ProjectionInputs) -> dict[str, Any]:
    """The capacity model as plain data: inputs, steps, the estimate (knee, X_max, USL, which
    is trusted and why), service demand, the response time law and the sizing (None where the
    run gave no answer)."""
    steps = [] if model.steps is None else [
        {k: _clean(v) for k, v in row.items()} for row in model.steps.to_dict("records")]
    details: dict[str, Any] = {
        "inputs": inputs_to_json(inputs), "load": model.load, "steps": steps,
        "problem": model.problem, "usl": None, "plan": None, "response_time_law": None,
        "estimate": None if model.estimate is None else model.estimate.to_json(),
        "demand": None if model.demand is None else {
            "x_max_rps": model.demand.x_max_rps, "bottleneck": model.demand.bottleneck,
            "cores": model.demand.cores, "request_ms": model.demand.request_ms,
            "note": model.demand.note}}
    fit, plan = model.fit, model.sizing
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
        details["response_time_law"] = {
            "users": inputs.users, "think_time_s": inputs.think_time_s,
            "response_ms": plan.response_s * 1000.0, "response_source": plan.response_source,
            "per_user_rps": plan.per_user_rps, "throughput_rps": plan.required_rps}
        cores = plan.cores
        details["plan"] = {
            "p95_target_ms": inputs.p95_ms, "headroom": inputs.headroom,
            "required_rps": plan.required_rps, "per_instance_rps": plan.per_instance_rps,
            "per_instance_range": [plan.per_instance_low, plan.per_instance_high],
            "instances": plan.instances, "instances_ci": _interval(plan.instances_ci),
            "cores_per_instance": plan.cores_per_instance, "cores_source": plan.cores_source,
            "cores": None if cores is None else list(cores), "busy_cores": plan.busy_cores,
        }
    return details


def _interval(ci: object) -> list[float] | None:
    low, high = getattr(ci, "low", None), getattr(ci, "high", None)
    return [float(low), float(high)] if low is not None and high is not None else None


def _estimate_assumptions(model: CapacityModel, inputs: ProjectionInputs) -> tuple[str, ...]:
    estimate, sizing = model.estimate, model.sizing
    assert estimate is not None and sizing is not None
    out = [f"p95 < {inputs.p95_ms:g} ms per instance ({inputs.origin})",
           f"one instance: {sizing.per_instance_rps:,.1f} req/s "
           f"(range {sizing.per_instance_low:,.1f}–{sizing.per_instance_high:,.1f}), "
           f"trusted: {estimate.trusted}: {estimate.why}",
           f"response time law: per user X/N = 1/(R+Z) = {sizing.per_user_rps:.4g} req/s with "
           f"R = {sizing.response_s * 1000:.3g} ms ({sizing.response_source}) → "
           f"{sizing.required_rps:,.0f} req/s required",
           f"{inputs.headroom:.0%} headroom above the required throughput"]
    if estimate.x_max_rps is not None:
        out.append(f"X_max {estimate.x_max_rps:,.1f} req/s ({estimate.x_max_note})")
    elif estimate.x_max_note:
        out.append(f"no X_max: {estimate.x_max_note}")
    if estimate.usl_note:
        out.append(f"cross-check: {estimate.usl_note}")
    out += [f"disagreement: {d}" for d in estimate.disagreements]
    return tuple(out)




def sizing_projections(model: CapacityModel, inputs: ProjectionInputs,
                       topology: str = "topology single") -> list[Projection]:
    """The instances and cores projections of a capacity model (or why not)."""
    name = f"instances for {inputs.users:,.0f} users"
    cores_name = f"CPU cores for {inputs.users:,.0f} users"
    sizing = model.sizing
    if sizing is None or model.estimate is None:
        reason = model.problem or "the capacity model gave no answer"
        base = _load_assumptions(inputs)
        return [_unavailable(name, "instances", reason, base),
                _unavailable(cores_name, "cores", reason, base)]
    ci = sizing.instances_ci
    assumptions = (*_load_assumptions(inputs), *_estimate_assumptions(model, inputs),
                   f"an instance is the deployment this run loaded ({topology})")
    projections = [_ranged(name, float(sizing.instances), ci.low if ci else None,
                           ci.high if ci else None, "instances", assumptions)]
    cores = sizing.cores
    if cores is not None:
        busy = ("" if sizing.busy_cores is None else
                f"; CPU busy at the required load: {sizing.busy_cores:,.1f} cores")
        projections.append(_ranged(
            cores_name, *cores, "cores",
            (*assumptions, f"{sizing.cores_per_instance:g} CPU cores per instance "
                           f"({sizing.cores_source}){busy}")))
    else:
        projections.append(_unavailable(cores_name, "cores", "the cores of an instance are "
                                        "unknown (no service demand, no machine record)",
                                        assumptions))
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


def cost_breakdown(run: Run, bounds: Bounds, inputs: ProjectionInputs,
                   response_s: tuple[float, str] | None = None,
                   ) -> tuple[CostBreakdown | None, str]:
    """The monthly cost of the inputs' users at the run's measured mix, or why there is none.

    `response_s` is the R of the response time law and where it comes from (the capacity
    sizing's, so cost and instances project the same load); else the gated window's mean."""
    from collectors.models.cost import TargetLoad, project_cost
    from collectors.models.usage import measure_usage, service_totals

    stats = _between(run.stats, bounds)
    requests = stats.groupby("endpoint", observed=True)["requests"].sum() if len(stats) else None
    by_endpoint = {} if requests is None else {str(k): float(v) for k, v in requests.items()}
    hist = run.histogram(start=bounds.cut) if bounds.cut is not None else run.histogram()
    if not sum(by_endpoint.values()) or not hist.total:
        return None, "no request was recorded in the gated window"
    mean_s = response_s[0] if response_s is not None else hist.mean_ms / 1000.0
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


def _cost_projection(run: Run, bounds: Bounds, inputs: ProjectionInputs,
                     response_s: tuple[float, str] | None = None) -> Projection:
    """The month's cost as a range: the central value with every assumption at its centre, low
    and high the tornado's bounded combination (collectors.models.tornado); the assumptions
    list each range and name the one that moves the total most."""
    from collectors.models.tornado import cost_tornado

    name = f"monthly cost for {inputs.users:,.0f} users"
    cost, problem = cost_breakdown(run, bounds, inputs, response_s)
    if cost is None:
        return _unavailable(name, "USD/month", problem, _load_assumptions(inputs),
                            inputs.budget_usd)
    load = cost.load
    spread = cost_tornado(cost)
    bars = spread.bars if spread is not None else ()
    largest = spread.largest if spread is not None else None
    measured = [d.label for d in cost.drivers if d.basis == "measured"]
    assumptions = (
        *_load_assumptions(inputs),
        f"response time {load.response_time_s * 1000:.3g} ms "
        f"({response_s[1] if response_s is not None else 'mean over the gated window'})",
        f"{load.requests_per_s:,.0f} requests/s by the response time law N = X(R+Z)",
        f"measured in this run, per request: {', '.join(measured) or 'nothing'}",
        ("largest swing: " + (f"{largest.label}, ${largest.swing_usd:,.0f}/month between the "
                              f"ends of its range" if largest is not None else "none")),
        *(f"assumed: {b.text}" for b in bars if b.swing_usd > 0),
        (f"range: {spread.combination}" if spread is not None else
         "range: not available (the usage profile has no source to measure again)"),
        f"prices {cost.price_version}, {cost.month_days}-day month",
        f"budget ${inputs.budget_usd:,.0f}/month ({inputs.origin})",
    )
    total = cost.total_usd
    low, high = (spread.low_usd, spread.high_usd) if spread is not None else (None, None)
    span = f" (${low:,.0f}-${high:,.0f})" if low is not None and high is not None else ""
    return Projection(name, total, low, high, "USD/month", inputs.budget_usd,
                      cost.within_budget,
                      f"${total:,.0f}{span}/month (budget ${inputs.budget_usd:,.0f})",
                      assumptions, True)


def project(run: Run, bounds: Bounds, inputs: ProjectionInputs) -> tuple[Projection, ...]:
    """Capacity (instances, cores) and cost for the inputs; never raises for a thin run."""
    return project_with_capacity(run, bounds, inputs)[0]


def project_with_capacity(run: Run, bounds: Bounds, inputs: ProjectionInputs,
                          ) -> tuple[tuple[Projection, ...], dict[str, Any]]:
    """The projections, and what the run measured of one instance's capacity (the knee of its
    steps, X_max from service demand, the USL cross-check: the verdict's `capacity`)."""
    model = capacity_model(run, inputs)
    # one load for both: the cost is priced at the response time the sizing used
    sizing = model.sizing
    response = (sizing.response_s, sizing.response_source) if sizing is not None else None
    projections = (*sizing_projections(model, inputs, _topology(run)),
                   _cost_projection(run, bounds, inputs, response))
    from collectors.models.endpoint_demand import endpoint_demand

    capacity = measured_capacity(model, inputs)
    capacity["endpoints"] = endpoint_demand(run, start=bounds.cut, end=bounds.end).to_json()
    return projections, capacity


def measured_capacity(model: CapacityModel, inputs: ProjectionInputs) -> dict[str, Any]:
    """One line a reader can take in (`line`), and the figures behind it."""
    estimate, demand = model.estimate, model.demand
    parts: list[str] = []
    if estimate is not None and estimate.knee is not None:
        parts.append(f"knee {estimate.knee.text}")
    if demand is not None and demand.x_max_rps is not None:
        cpu = f", {demand.request_ms:.3g} ms CPU per request" if demand.request_ms else ""
        parts.append(f"CPU ceiling X_max {demand.x_max_rps:,.1f} req/s "
                     f"(bottleneck {demand.bottleneck}{cpu})")
    if estimate is not None and estimate.available:
        # the why repeats the knee's own text; its reason is the part after the last "; "
        reason = estimate.why.rsplit("; ", 1)[-1]
        parts.append(f"trusted: {estimate.trusted}, {reason}")
    line = "; ".join(parts) if parts else (
        f"not measured: {model.problem or 'the run has no steps and no CPU series'}")
    return {
        "line": line,
        "p95_target_ms": inputs.p95_ms,
        "estimate": None if estimate is None else estimate.to_json(),
        "demand": None if demand is None else {
            "x_max_rps": demand.x_max_rps, "bottleneck": demand.bottleneck,
            "cores": demand.cores, "request_ms": demand.request_ms, "note": demand.note,
            "processes": demand.report},
    }
