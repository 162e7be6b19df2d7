"""Two runs side by side: p95 and requests/s overlaid, and per-endpoint p95 deltas."""

from __future__ import annotations

import math
from typing import Any

from dashboards.data import ALL, SLO_MS, EndpointRow, RunView
from dashboards.figures.common import (
    BLUE,
    PURPLE,
    Figure,
    base_layout,
    hline,
    log_ms_axis,
    note_figure,
    panel_title,
    stacked_axes,
)

__all__ = ["compare_figure", "endpoint_deltas"]


def _p95_series(view: RunView) -> tuple[list[float], list[float | None]]:
    bins = view.bins
    if bins is None:
        return [], []
    x = [round(s + bins.bin_s / 2 - view.t0, 3) for s in bins.starts]
    return x, [h.quantile(0.95) if h.total else None for h in bins.overall]


def compare_figure(a: RunView, b: RunView) -> Figure:
    """p95 (top) and requests/s (bottom) of both runs against elapsed time."""
    if a.bins is None and b.bins is None:
        return note_figure("Neither run has latency over time.")
    (p_lo, p_hi), (r_lo, r_hi) = stacked_axes([1.0, 1.0], gap=0.12)
    data: list[dict[str, Any]] = []
    for view, color, dash in ((a, BLUE, "solid"), (b, PURPLE, "dash")):
        x, p95 = _p95_series(view)
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": p95,
                     "name": f"p95 {view.run_id}", "line": {"color": color, "dash": dash}})
        if len(view.load):
            data.append({"type": "scatter", "mode": "lines", "yaxis": "y2",
                         "x": [round(float(t) - view.t0, 3) for t in view.load["t"]],
                         "y": view.load["rps"].astype(float).tolist(),
                         "name": f"req/s {view.run_id}", "line": {"color": color, "dash": dash}})
    layout = base_layout(
        height=500, uirevision="compare",
        xaxis={"title": {"text": "elapsed (s)"}, "anchor": "y2"},
        yaxis=log_ms_axis(domain=[p_lo, p_hi], anchor="x"),
        yaxis2={"domain": [r_lo, r_hi], "anchor": "x", "title": {"text": "req/s"},
                "rangemode": "tozero"},
        shapes=[hline(SLO_MS, color="#cf222e", dash="dot") | {"label": {
            "text": f"product target p95 < {SLO_MS:g} ms", "textposition": "end",
            "yanchor": "bottom", "font": {"size": 10}}}],
        annotations=[panel_title("p95 (merged per bin)", p_hi), panel_title("requests/s", r_hi)],
    )
    return {"data": data, "layout": layout}


def _all_rows(view: RunView) -> dict[str, EndpointRow]:
    return {r.endpoint: r for r in view.endpoint_rows if r.region == ALL and r.user_class == ALL}


def endpoint_deltas(a: RunView, b: RunView) -> list[dict[str, Any]]:
    """Per endpoint: p95 in A and B, the change in ms and in %, largest regression first."""
    rows_a, rows_b = _all_rows(a), _all_rows(b)
    out = []
    for endpoint in sorted(set(rows_a) | set(rows_b)):
        pa = rows_a[endpoint].p95_ms if endpoint in rows_a else math.nan
        pb = rows_b[endpoint].p95_ms if endpoint in rows_b else math.nan
        delta = pb - pa
        out.append({
            "endpoint": endpoint, "p95_a": _num(pa), "p95_b": _num(pb), "delta_ms": _num(delta),
            "delta_pct": _num(100.0 * delta / pa) if pa and math.isfinite(pa) else None,
        })
    return sorted(out, key=lambda r: -(r["delta_ms"] if r["delta_ms"] is not None else -1e18))


def _num(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None
