"""Response time and throughput against load, with the USL fit and the sizing over them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from collectors.models.capacity import CapacityPlan, LatencyModel, UslFit, usl_throughput
from dashboards.figures.common import (
    AMBER,
    BLUE,
    GREY,
    RED,
    Figure,
    base_layout,
    hline,
    note_figure,
    vline,
)
from gate.projections import CapacityModel

__all__ = ["capacity_figure"]

CI_SAMPLES = 400


def _grid(fit: UslFit, plan: CapacityPlan | None) -> np.ndarray:
    top = fit.max_users_measured * 1.5
    if plan is not None and plan.per_instance_users:
        top = max(top, plan.per_instance_users * 1.2)
    if math.isfinite(fit.peak_users):
        top = max(top, min(fit.peak_users * 1.2, fit.max_users_measured * 4))
    return np.linspace(1.0, top, 120)


def _band(fit: UslFit, n: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if fit.covariance is None:
        return None
    draws = fit.samples(CI_SAMPLES, seed=1)
    sigma, kappa, lam = (draws[:, i : i + 1] for i in range(3))
    curves = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
    low, high = np.percentile(curves, [2.5, 97.5], axis=0)
    return low, high


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def _throughput_traces(result: CapacityModel, fit: UslFit, n: np.ndarray) -> list[dict[str, Any]]:
    steps = result.steps
    assert steps is not None
    traces: list[dict[str, Any]] = []
    band = _band(fit, n)
    if band is not None:
        traces.append({"type": "scatter", "x": _rounded(np.concatenate([n, n[::-1]])),
                       "y": _rounded(np.concatenate([band[1], band[0][::-1]])),
                       "fill": "toself", "fillcolor": "rgba(9,105,218,0.15)",
                       "line": {"width": 0}, "name": "USL 95% band", "hoverinfo": "skip"})
    traces += [
        {"type": "scatter", "mode": "lines", "x": _rounded(n), "y": _rounded(fit.lam * n),
         "name": "linear (λN)", "line": {"color": GREY, "dash": "dot"}},
        {"type": "scatter", "mode": "lines", "x": _rounded(n),
         "y": _rounded(usl_throughput(n, fit.sigma, fit.kappa, fit.lam)), "name": "USL fit",
         "line": {"color": BLUE}},
        {"type": "scatter", "mode": "markers", "x": steps["users"].tolist(),
         "y": steps["throughput"].tolist(), "name": "measured steps",
         "marker": {"color": "black", "size": 8}},
    ]
    return traces


def _latency_traces(result: CapacityModel, fit: UslFit, model: LatencyModel,
                    n: np.ndarray) -> list[dict[str, Any]]:
    steps = result.steps
    assert steps is not None
    return [
        {"type": "scatter", "mode": "lines", "x": _rounded(n),
         "y": _rounded(model.p95(fit, n) * 1000), "name": "modelled p95",
         "line": {"color": AMBER}, "xaxis": "x2", "yaxis": "y2"},
        {"type": "scatter", "mode": "markers", "x": steps["users"].tolist(),
         "y": steps["p95_ms"].tolist(), "name": "measured p95",
         "marker": {"color": RED, "size": 8}, "xaxis": "x2", "yaxis": "y2"},
    ]


def capacity_figure(result: CapacityModel, target_ms: float) -> Figure:
    """Left: throughput vs users with the USL fit and its band; right: p95 vs users."""
    if result.fit is None or result.steps is None:
        return note_figure(result.problem or "No capacity model.", height=320)
    fit = result.fit
    n = _grid(fit, result.plan)
    data = _throughput_traces(result, fit, n)
    shapes = []
    measured = [v for v in result.steps["p95_ms"].tolist() if v == v]
    top = max([target_ms * 3.0, *(v * 1.3 for v in measured)])
    if result.latency is not None:
        data += _latency_traces(result, fit, result.latency, n)
        shapes.append(hline(target_ms, yref="y2", xref="x2 domain"))
        plan = result.plan
        if plan is not None and plan.per_instance_users:
            shapes.append(vline(plan.per_instance_users, xref="x2") | {"yref": "y2 domain"})
    layout = base_layout(
        height=440, uirevision="capacity", hovermode="closest",
        margin={"l": 70, "r": 30, "t": 50, "b": 110},
        legend={"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0},
        xaxis={"domain": [0, 0.45], "title": {"text": "concurrent users (N)"}, "anchor": "y"},
        yaxis={"title": {"text": "requests/s"}, "rangemode": "tozero", "anchor": "x"},
        xaxis2={"domain": [0.55, 1], "title": {"text": "concurrent users (N)"}, "anchor": "y2"},
        yaxis2={"title": {"text": "p95 ms"}, "range": [0, top], "anchor": "x2"},
        shapes=shapes,
        annotations=[
            {"text": "Throughput vs concurrent users (one instance)", "x": 0.225, "y": 1.02,
             "xref": "paper", "yref": "paper", "showarrow": False, "xanchor": "center",
             "yanchor": "bottom"},
            {"text": f"p95 vs users; dashed: {target_ms:g} ms target, dotted: operating point",
             "x": 0.775, "y": 1.02, "xref": "paper", "yref": "paper", "showarrow": False,
             "xanchor": "center", "yanchor": "bottom"},
        ],
    )
    return {"data": data, "layout": layout}
