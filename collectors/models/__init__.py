"""Pure models shared by the dashboard, the gate and `pitchey capacity`.

- cost: monthly cost of a target load, driver by driver (prices.yaml, usage profile);
- capacity: interactive response time law, Universal Scalability Law fit, sizing;
- recommendations: cost savings re-priced with the model.

No Dash here: the gate imports these without pulling in a web framework. Names are imported
lazily so that importing one model does not import scipy for another.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collectors.models.capacity import (
        CapacityError,
        CapacityPlan,
        UslFit,
        WhatIf,
        concurrency_steps,
        fit_usl,
        latency_model,
        plan_capacity,
        throughput_for,
    )
    from collectors.models.cost import CostBreakdown, TargetLoad, project_cost
    from collectors.models.knee import CapacityEstimate, Knee, capacity_estimate, knee
    from collectors.models.prices import PriceTable, PriceTableError, load_price_table
    from collectors.models.recommendations import Recommendation, recommend
    from collectors.models.steps import breakpoint_steps
    from collectors.models.usage import UsageProfile, measure_usage, service_totals

__all__ = [
    "CapacityError",
    "CapacityEstimate",
    "CapacityPlan",
    "CostBreakdown",
    "Knee",
    "PriceTable",
    "PriceTableError",
    "Recommendation",
    "TargetLoad",
    "UsageProfile",
    "UslFit",
    "WhatIf",
    "breakpoint_steps",
    "capacity_estimate",
    "concurrency_steps",
    "fit_usl",
    "knee",
    "latency_model",
    "load_price_table",
    "measure_usage",
    "plan_capacity",
    "project_cost",
    "recommend",
    "service_totals",
    "throughput_for",
]

_HOME = {
    **dict.fromkeys(
        ["CapacityError", "CapacityPlan", "UslFit", "WhatIf", "concurrency_steps", "fit_usl",
         "latency_model", "plan_capacity", "throughput_for"], "collectors.models.capacity"),
    **dict.fromkeys(["CapacityEstimate", "Knee", "capacity_estimate", "knee"],
                    "collectors.models.knee"),
    "breakpoint_steps": "collectors.models.steps",
    **dict.fromkeys(["CostBreakdown", "TargetLoad", "project_cost"], "collectors.models.cost"),
    **dict.fromkeys(["PriceTable", "PriceTableError", "load_price_table"],
                    "collectors.models.prices"),
    **dict.fromkeys(["Recommendation", "recommend"], "collectors.models.recommendations"),
    **dict.fromkeys(["UsageProfile", "measure_usage", "service_totals"],
                    "collectors.models.usage"),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'collectors.models' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
