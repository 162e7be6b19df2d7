"""Plotly figures of one run, pure functions of its data (used by `pitchey report`).

Latency over time comes from merged interval histograms per region (never from averaging the
per-second, per-endpoint percentiles); the latency spectrum from the whole-run histogram.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from collectors.hdr import Histogram
from collectors.run import Run
from collectors.targets import PRODUCT_TARGETS

__all__ = [
    "SERVICE_PANELS",
    "TARGET_LABEL",
    "every_second",
    "generator_figure",
    "latency_figure",
    "load_figure",
    "service_figure",
    "spectrum_figure",
]

SLO_MS = PRODUCT_TARGETS.p95_ms
TARGET_LABEL = f"product target p95 < {SLO_MS:g} ms"
# (title, metric, how): per target, "sum" adds the series at each scrape, "min" takes the
# lowest (so `up` shows any failed endpoint), "rate" is the per-second increase of the sum.
SERVICE_PANELS: tuple[tuple[str, str, str], ...] = (
    ("Service requests/s (from the service's own histogram)",
     "http_server_request_duration_seconds_count", "rate"),
    ("Requests in flight", "http_server_active_requests", "sum"),
    ("DB pool connections in use", "pitchey_db_pool_connections_in_use", "sum"),
    ("Process CPU (cores)", "process_cpu_seconds_total", "rate"),
    ("Scrape health (up: 1 scraped, 0 failed)", "up", "min"),
)


def _slo_line(fig: go.Figure) -> None:
    # A shape, not an annotation: annotations on log axes take log10 positions.
    fig.add_hline(y=SLO_MS, line_dash="dash", line_color="red")
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=TARGET_LABEL,
                             line={"dash": "dash", "color": "red"}))


def _elapsed(t: pd.Series, t0: float) -> pd.Series:
    return t - t0


def every_second(load: pd.DataFrame) -> pd.DataFrame:
    """load.parquet with a row for every second from its first to its last: a run written
    before every second got a row (a second in which nothing completed had none) shows its
    stalls as 0 requests/s instead of a line drawn straight across them (users carried on)."""
    if len(load) < 2:
        return load
    t = load["t"].to_numpy(dtype=float)
    if not np.all(np.mod(t - t.min(), 1.0) == 0.0):  # not on a one-second grid: as it is
        return load
    seconds = np.arange(t.min(), t.max() + 0.5, 1.0)
    if len(seconds) == len(load):
        return load
    frame = load.drop_duplicates("t", keep="last").set_index("t").reindex(seconds)
    frame["rps"] = frame["rps"].fillna(0.0)
    frame["failures_per_s"] = frame["failures_per_s"].fillna(0.0)
    frame["users"] = frame["users"].ffill().fillna(0).astype("int64")
    return frame.rename_axis("t").reset_index()


def load_figure(run: Run, t0: float) -> go.Figure:
    load = every_second(run.load)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = _elapsed(load["t"], t0)
    fig.add_trace(go.Scatter(x=x, y=load["users"], name="users", line={"color": "#636efa"}),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=load["rps"], name="requests/s", line={"color": "#00a36c"}),
                  secondary_y=True)
    fig.add_trace(go.Scatter(x=x, y=load["failures_per_s"], name="failures/s",
                             line={"color": "#ef553b"}), secondary_y=True)
    fig.update_layout(title="Users, requests/s and failures/s", height=360,
                      margin={"t": 50, "b": 40}, legend={"orientation": "h"})
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text="users", secondary_y=False)
    fig.update_yaxes(title_text="per second", secondary_y=True)
    return fig


def latency_figure(run: Run, t0: float, quantiles: Sequence[float] = (0.5, 0.95, 0.99)
                   ) -> go.Figure:
    fig = go.Figure()
    series = run.percentile_series(quantiles, by=["region"])
    if len(series):
        for region, rows in series.groupby("region", sort=True):
            x = _elapsed(rows["t"] + rows["interval_s"] / 2.0, t0)
            for column in [c for c in rows.columns if c.endswith("_ms")]:
                fig.add_trace(go.Scatter(x=x, y=rows[column], mode="lines",
                                         name=f"{region} {column.removesuffix('_ms')}"))
    _slo_line(fig)
    fig.update_layout(title="Latency over time by region (merged HDR histograms)", height=420,
                      margin={"t": 50, "b": 40}, yaxis_type="log", yaxis_title="ms",
                      xaxis_title="seconds since start")
    return fig


def spectrum_figure(run: Run) -> go.Figure:
    """Latency by percentile (HdrHistogram's classic plot), service and corrected."""
    fig = go.Figure()
    levels = 1.0 - np.logspace(0, -5, 60)  # 0 .. 0.99999
    for kind in ("service", "corrected"):
        if not any(key[3] == kind for key in run.histogram_keys()):
            continue
        hist: Histogram = run.histogram(kind=kind)
        if not hist.total:
            continue
        values = [hist.quantile(float(q)) for q in levels]
        fig.add_trace(go.Scatter(x=1.0 / (1.0 - levels), y=values, mode="lines", name=kind))
    _slo_line(fig)
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    fig.update_layout(
        title="Latency by percentile (whole run)", height=380, margin={"t": 50, "b": 40},
        xaxis={"type": "log", "tickvals": ticks,
               "ticktext": ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"],
               "title": "percentile"},
        yaxis={"type": "log", "title": "ms"},
    )
    return fig


def generator_figure(run: Run, t0: float) -> go.Figure:
    gen = run.generator
    fig = make_subplots(rows=1, cols=2, subplot_titles=("CPU %", "scheduling lag (ms)"))
    for worker, rows in gen.groupby("worker", sort=True):
        x = _elapsed(rows["t"], t0)
        fig.add_trace(go.Scatter(x=x, y=rows["cpu_percent"], name=f"{worker} CPU"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=rows["lag_ms"], name=f"{worker} lag"), row=1, col=2)
    fig.update_layout(title="Load generator health", height=340, margin={"t": 60, "b": 40})
    return fig


def service_figure(service: pd.DataFrame, t0: float, title: str, metric: str, how: str
                   ) -> go.Figure | None:
    """One panel of scraped series, summed per target (rates from counters); None if absent."""
    rows = service[service["metric"] == metric]
    if not len(rows):
        return None
    fig = go.Figure()
    for target, part in rows.groupby("target", sort=True):
        grouped = part.groupby("t", sort=True)["value"]
        per_t = grouped.min() if how == "min" else grouped.sum()
        values = per_t.to_numpy(dtype=float)
        times = per_t.index.to_numpy(dtype=float)
        if how == "rate":
            if values.size < 2:
                continue
            values = np.clip(np.diff(values), 0, None) / np.diff(times)
            times = times[1:]
        fig.add_trace(go.Scatter(x=times - t0, y=values, mode="lines", name=str(target)))
    fig.update_layout(title=title, height=300, margin={"t": 50, "b": 40},
                      xaxis_title="seconds since start")
    return fig
