"""Overview figures: load (users, requests/s, failures/s), latency per region over time,
latency heatmap with response-time ranges. Each has a matching `*_extension` that returns
only the new points, for live mode (Patch on the drawn figure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from collectors.hdr import Histogram
from dashboards.data import HEAT_EDGES_MS, NEAR_SLO_MS, SLO_MS, Bins, RunView
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
    log_ms_axis,
    note_figure,
    panel_title,
    stacked_axes,
    vline,
)

__all__ = [
    "QUANTILES",
    "TARGET_LABEL",
    "heat_columns",
    "heatmap_figure",
    "heatmap_patch_data",
    "latency_extension",
    "latency_figure",
    "load_extension",
    "load_figure",
]

QUANTILES = ((0.5, "p50", GREEN), (0.95, "p95", BLUE), (0.99, "p99", PURPLE))
_EVENT_COLORS = {"stage": GREY, "failover": RED, "alert_firing": RED, "alert_resolved": GREEN,
                 "abort": RED, "invalid": AMBER}
MAX_EVENT_MARKS = 40
# Every region is held to the product's p95 target (docs/targets.md); no per-region targets.
TARGET_LABEL = f"product target p95 < {SLO_MS:g} ms"


def _elapsed(values: Any, t0: float) -> list[float]:
    return [round(float(v) - t0, 3) for v in values]


def _line(x: list[float], y: list[Any], name: str, color: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name,
            "line": {"color": color, "width": 1.5}, **extra}


# --- load ----------------------------------------------------------------------------------

def load_figure(view: RunView) -> Figure:
    """Users (left axis), requests/s and failures/s (right axis) over elapsed seconds."""
    if not len(view.load):
        return note_figure(view.notes.get("load", "No load data."))
    x = _elapsed(view.load["t"], view.t0)
    data = [
        _line(x, view.load["users"].astype(float).tolist(), "users", GREY,
              line={"color": GREY, "shape": "hv", "width": 1.5}),
        _line(x, view.load["rps"].astype(float).tolist(), "requests/s", BLUE, yaxis="y2"),
        _line(x, view.load["failures_per_s"].astype(float).tolist(), "failures/s", RED,
              yaxis="y2"),
    ]
    shapes = [vline(float(e["t"]) - view.t0, color=_EVENT_COLORS.get(e["type"], GREY))
              for e in view.events[:MAX_EVENT_MARKS]]
    layout = base_layout(
        height=300, title="Users, requests/s and failures/s", uirevision="load",
        margin={"l": 70, "r": 70, "t": 90, "b": 45},
        xaxis={"title": {"text": "elapsed (s)"}},
        yaxis={"title": {"text": "users"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "per second"}, "rangemode": "tozero", "overlaying": "y",
                "side": "right", "showgrid": False},
        shapes=shapes,
    )
    return {"data": data, "layout": layout}


def load_extension(view: RunView, sent: int) -> tuple[dict[str, list[list[float]]], list[int]]:
    """New load points after the first `sent` rows, as extendData for traces 0, 1, 2."""
    rows = view.load.iloc[sent:]
    x = _elapsed(rows["t"], view.t0)
    data = {"x": [x, x, x], "y": [rows["users"].astype(float).tolist(),
                                  rows["rps"].astype(float).tolist(),
                                  rows["failures_per_s"].astype(float).tolist()]}
    return data, [0, 1, 2]


# --- latency per region ----------------------------------------------------------------------

def _bin_x(bins: Bins, t0: float, first: int = 0) -> list[float]:
    return [round(s + bins.bin_s / 2.0 - t0, 3) for s in bins.starts[first:]]


def _q(hist: Histogram, q: float) -> float | None:
    return hist.quantile(q) if hist.total else None


def _axis_name(index: int) -> str:
    return "y" if index == 0 else f"y{index + 1}"


def latency_figure(view: RunView) -> Figure:
    """p50/p95/p99 per time bin, one panel per region, log y, the product's p95 target drawn."""
    bins = view.bins
    if bins is None or not bins.starts or not view.regions:
        return note_figure(view.notes.get("latency", "No latency data yet."))
    regions = view.regions
    domains = stacked_axes([1.0] * len(regions), gap=0.07)
    x = _bin_x(bins, view.t0)
    data, shapes, titles = [], [], []
    layout_axes: dict[str, Any] = {}
    for index, region in enumerate(regions):
        axis = _axis_name(index)
        hists = bins.by_region.get(region, [])
        for q, label, color in QUANTILES:
            data.append(_line(x, [_q(h, q) for h in hists], label, color, yaxis=axis,
                              legendgroup=label, showlegend=index == 0, connectgaps=False))
        shapes.append(hline(SLO_MS, yref=axis) | {"label": {
            "text": TARGET_LABEL, "textposition": "end", "yanchor": "bottom",
            "font": {"size": 10, "color": RED}}})
        titles.append(panel_title(region, domains[index][1]))
        layout_axes[f"yaxis{index + 1 if index else ''}"] = log_ms_axis(
            domain=list(domains[index]), anchor="x")
    title = (f"Latency per region ({bins.bin_s:g} s bins, merged HDR histograms); "
             f"red dashed: {TARGET_LABEL}")
    layout = base_layout(height=170 * len(regions) + 110, title=title, uirevision="latency",
                         xaxis={"title": {"text": "elapsed (s)"}, "anchor": _axis_name(
                             len(regions) - 1)},
                         shapes=shapes, annotations=titles, **layout_axes)
    return {"data": data, "layout": layout}


def latency_extension(view: RunView, first_bin: int) -> tuple[dict[str, list[list[Any]]],
                                                              list[int]]:
    """New bins after `first_bin` for every region x quantile trace."""
    bins = view.bins
    assert bins is not None
    x = _bin_x(bins, view.t0, first_bin)
    xs: list[list[Any]] = []
    ys: list[list[Any]] = []
    for region in view.regions:
        hists = bins.by_region.get(region, [])[first_bin:]
        for q, _label, _color in QUANTILES:
            xs.append(x)
            ys.append([_q(h, q) for h in hists])
    return {"x": xs, "y": ys}, list(range(len(xs)))


# --- heatmap and response-time ranges --------------------------------------------------------

def _fmt(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def bucket_labels() -> list[str]:
    edges = HEAT_EDGES_MS
    return ([f"< {_fmt(edges[0])}"]
            + [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(edges, edges[1:], strict=False)]
            + [f">= {_fmt(edges[-1])}"])


def heat_columns(bins: Bins, first: int = 0) -> list[list[int]]:
    """Per bin, the request count in each latency bucket (rows = buckets)."""
    columns = []
    for hist in bins.overall[first:]:
        below = [hist.count_at_or_below(edge) for edge in HEAT_EDGES_MS]
        counts = [below[0]] + [b - a for a, b in zip(below, below[1:], strict=False)]
        counts.append(hist.total - below[-1])
        columns.append(counts)
    return columns


def _ranges(bins: Bins, first: int = 0) -> dict[str, list[float | None]]:
    """Shares (%) of responses within the p95 target's latency, near it, over it; failed share
    of requests."""
    within: list[float | None] = []
    near: list[float | None] = []
    over: list[float | None] = []
    failed: list[float | None] = []
    for hist, failures in zip(bins.overall[first:], bins.failures[first:], strict=False):
        total = hist.total
        if not total:
            for series in (within, near, over, failed):
                series.append(None)
            continue
        ok, slo = hist.count_at_or_below(NEAR_SLO_MS), hist.count_at_or_below(SLO_MS)
        within.append(round(100.0 * ok / total, 3))
        near.append(round(100.0 * (slo - ok) / total, 3))
        over.append(round(100.0 * (total - slo) / total, 3))
        failed.append(round(100.0 * failures / total, 3))
    return {"within": within, "near": near, "over": over, "failed": failed}


def _log_z(columns: Sequence[Sequence[int]]) -> tuple[list[list[float | None]],
                                                       list[list[int]]]:
    """Rows of log10(count) (None where empty) and rows of counts, bucket-major."""
    if not columns:
        rows = len(HEAT_EDGES_MS) + 1
        return [[] for _ in range(rows)], [[] for _ in range(rows)]
    counts = np.asarray(columns, dtype=np.int64).T
    with np.errstate(divide="ignore"):
        logs = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan)
    z = [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in logs]
    return z, counts.tolist()


_RANGE_STYLE = (("within", f"within target (<= {NEAR_SLO_MS:g} ms)", GREEN),
                ("near", f"near target ({NEAR_SLO_MS:g}-{SLO_MS:g} ms)", AMBER),
                ("over", f"over target (> {SLO_MS:g} ms)", RED))


def heatmap_figure(view: RunView) -> Figure:
    """Requests per latency bucket over time (log colour), and the target ranges below it."""
    bins = view.bins
    if bins is None or not bins.starts:
        return note_figure(view.notes.get("latency", "No latency data yet."))
    (heat_lo, heat_hi), (range_lo, range_hi) = stacked_axes([0.62, 0.38], gap=0.1)
    x = _bin_x(bins, view.t0)
    z, counts = _log_z(heat_columns(bins))
    data: list[dict[str, Any]] = [{
        "type": "heatmap", "x": x, "y": bucket_labels(), "z": z, "customdata": counts,
        "colorscale": "Viridis", "showlegend": False,
        "hovertemplate": "%{x:.0f} s, %{y}: %{customdata} requests<extra></extra>",
        "colorbar": {"title": {"text": "log10 n"}, "len": 0.55, "y": 0.75},
    }]
    ranges = _ranges(bins)
    for key, label, color in _RANGE_STYLE:
        data.append(_line(x, ranges[key], label, color, yaxis="y2", stackgroup="ranges",
                          line={"color": color, "width": 0.5}))
    data.append(_line(x, ranges["failed"], "failed (% of requests)", "black", yaxis="y2",
                      line={"color": "black", "dash": "dot", "width": 1.5}))
    layout = base_layout(
        height=580, uirevision="heatmap", hovermode="closest",
        margin={"l": 120, "r": 30, "t": 60, "b": 45},
        xaxis={"title": {"text": "elapsed (s)"}, "anchor": "y2"},
        yaxis={"domain": [heat_lo, heat_hi], "anchor": "x", "type": "category"},
        yaxis2={"domain": [range_lo, range_hi], "anchor": "x", "range": [0, 100],
                "title": {"text": "%"}},
        annotations=[panel_title("Requests per latency bucket (colour: log10 count)", heat_hi),
                     panel_title("Response-time ranges (% of responses)", range_hi)],
    )
    return {"data": data, "layout": layout}


def heatmap_patch_data(view: RunView, first_bin: int) -> dict[str, Any]:
    """New columns for the heatmap (x, z rows, customdata rows) and range series."""
    bins = view.bins
    assert bins is not None
    z, counts = _log_z(heat_columns(bins, first_bin))
    return {"x": _bin_x(bins, view.t0, first_bin), "z": z, "counts": counts,
            "ranges": _ranges(bins, first_bin)}
