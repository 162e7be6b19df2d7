"""The measured steps of a run: throughput and p95 per step against the load offered, with
the p95 target, the knee and X_max marked (and the USL curve of a closed-model run)."""

from __future__ import annotations

from typing import Any

import numpy as np

from collectors.models.capacity import usl_throughput
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


def _rounded(values: Any) -> list[float | None]:
    return [None if v != v else round(float(v), 4) for v in values]


def capacity_figure(result: CapacityModel, target_ms: float) -> Figure:
    """Left: throughput per step (knee, X_max); right: p95 per step (target, knee)."""
    steps = result.steps
    if steps is None or not len(steps):
        return note_figure(result.problem or "The run has no load steps.", height=320)
    column = "rate" if result.load == "rate" else "users"
    label = "offered rate (req/s)" if column == "rate" else "concurrent users (N)"
    ordered = steps.sort_values(column)
    x = ordered[column].tolist()
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "x": _rounded(x),
         "y": _rounded(ordered["throughput"]), "name": "measured throughput",
         "marker": {"color": "black", "size": 8}, "line": {"color": GREY}},
        {"type": "scatter", "mode": "lines+markers", "x": _rounded(x),
         "y": _rounded(ordered["p95_ms"]), "name": "measured p95",
         "marker": {"color": RED, "size": 8}, "line": {"color": RED},
         "xaxis": "x2", "yaxis": "y2"},
    ]
    if result.fit is not None and column == "users":
        grid = np.linspace(1.0, max(x) * 1.5, 120)
        fit = result.fit
        data.append({"type": "scatter", "mode": "lines", "x": _rounded(grid),
                     "y": _rounded(usl_throughput(grid, fit.sigma, fit.kappa, fit.lam)),
                     "name": "USL fit (cross-check)", "line": {"color": BLUE, "dash": "dot"}})
    shapes = [hline(target_ms, yref="y2", xref="x2 domain")]
    estimate = result.estimate
    found = estimate.knee if estimate is not None else None
    if found is not None and found.throughput_rps is not None:
        data.append({"type": "scatter", "mode": "markers", "name": f"knee ({found.status})",
                     "x": _rounded([found.offered if found.offered is not None else x[-1]]),
                     "y": _rounded([found.throughput_rps]),
                     "marker": {"color": AMBER, "size": 14, "symbol": "diamond"}})
        if found.offered is not None:
            shapes.append(vline(found.offered, xref="x2") | {"yref": "y2 domain"})
    if estimate is not None and estimate.x_max_rps is not None:
        shapes.append(hline(estimate.x_max_rps, yref="y", xref="x domain", color=BLUE))
    measured = [v for v in ordered["p95_ms"].tolist() if v == v]
    top = max([target_ms * 1.5, *(v * 1.15 for v in measured)])
    layout = base_layout(
        height=440, uirevision="capacity", hovermode="closest",
        margin={"l": 70, "r": 30, "t": 50, "b": 110},
        legend={"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0},
        xaxis={"domain": [0, 0.45], "title": {"text": label}, "anchor": "y"},
        yaxis={"title": {"text": "requests/s"}, "rangemode": "tozero", "anchor": "x"},
        xaxis2={"domain": [0.55, 1], "title": {"text": label}, "anchor": "y2"},
        yaxis2={"title": {"text": "p95 ms"}, "range": [0, top], "anchor": "x2"},
        shapes=shapes,
        annotations=[
            {"text": "Throughput per step (one instance); dashed: X_max", "x": 0.225,
             "y": 1.02, "xref": "paper", "yref": "paper", "showarrow": False,
             "xanchor": "center", "yanchor": "bottom"},
            {"text": f"p95 per step; dashed: {target_ms:g} ms target, dotted: the knee",
             "x": 0.775, "y": 1.02, "xref": "paper", "yref": "paper", "showarrow": False,
             "xanchor": "center", "yanchor": "bottom"},
        ],
    )
    return {"data": data, "layout": layout}
