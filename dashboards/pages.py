"""Page layouts: Dash components built from a prepared view (no callbacks here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dash_ag_grid as dag
from dash import dcc, html

from collectors.models.cost import CostBreakdown
from collectors.models.prices import default_price_table
from collectors.models.recommendations import Recommendation
from dashboards.analysis import WHAT_IF_ORIGIN, Settings, format_interval
from dashboards.catalog import RunInfo
from dashboards.data import ALL, RunView
from dashboards.figures import (
    breakdown_figure,
    burn_figure,
    heatmap_figure,
    latency_figure,
    load_figure,
    seed_comparison_figure,
)
from dashboards.style import CARD, COLORS, NOTE
from dashboards.verdict_header import gate_projections
from gate.projections import CapacityModel

__all__ = [
    "PAGES",
    "capacity_page",
    "capacity_result",
    "compare_page",
    "cost_page",
    "cost_sections",
    "endpoint_grid_rows",
    "endpoints_page",
    "fit_table",
    "header",
    "message_page",
    "overview_page",
]

WHAT_IF = WHAT_IF_ORIGIN.capitalize()
PAGES = (("/", "Overview"), ("/endpoints", "Endpoints"), ("/capacity", "Capacity"),
         ("/cost", "Cost"), ("/compare", "Compare"))


def message_page(title: str, text: str) -> html.Div:
    """A panel that explains why there is nothing to show (never a traceback)."""
    return html.Div([html.H3(title), html.P(text, style=NOTE)], style=CARD, className="message")


# --- navigation ------------------------------------------------------------------------------

def header(runs: Sequence[RunInfo], selected: str | None, path: str) -> html.Div:
    options = [{"label": r.label, "value": r.run_id} for r in runs]
    query = f"?run={selected}" if selected else ""
    links = [dcc.Link(name, href=f"{href}{query}", id=f"nav-{name.lower()}",
                      style={"marginRight": "14px", "fontWeight": 700 if href == path else 400})
             for href, name in PAGES]
    return html.Div([
        html.Span("Pitchey perf", style={"fontWeight": 700, "fontSize": "18px",
                                         "marginRight": "18px"}),
        html.Span(links),
        html.Div(dcc.Dropdown(id="run-select", options=options, value=selected,
                              clearable=False, placeholder="no runs"),
                 style={"width": "420px", "marginLeft": "auto"}),
    ], style={"display": "flex", "alignItems": "center", "marginBottom": "10px"})


# --- overview --------------------------------------------------------------------------------

def _notes(view: RunView) -> html.Ul | None:
    if not view.notes:
        return None
    return html.Ul([html.Li(text, style=NOTE) for text in view.notes.values()])


def overview_page(view: RunView, live_interval_ms: int) -> html.Div:
    sent = {"run": view.run_id, "load": len(view.load),
            "bins": len(view.bins.starts) if view.bins else 0,
            "bin_s": view.bins.bin_s if view.bins else None, "regions": list(view.regions)}
    return html.Div([
        _notes(view),
        html.Div(id="live-status", style=NOTE,
                 children="live: refreshing every "
                          f"{live_interval_ms / 1000:g} s" if view.live else ""),
        html.Div(dcc.Graph(id="load-graph", figure=load_figure(view)), style=CARD),
        html.Div(dcc.Graph(id="latency-graph", figure=latency_figure(view)), style=CARD),
        html.Div(dcc.Graph(id="heatmap-graph", figure=heatmap_figure(view)), style=CARD),
        dcc.Store(id="live-sent", data=sent),
        dcc.Interval(id="live-tick", interval=live_interval_ms, disabled=not view.live),
    ], id="page-overview")


# --- endpoints -------------------------------------------------------------------------------

_ENDPOINT_COLUMNS = [
    {"field": "endpoint", "filter": "agTextColumnFilter", "minWidth": 280},
    {"field": "requests", "type": "numericColumn", "filter": "agNumberColumnFilter"},
    {"field": "failures", "type": "numericColumn", "filter": "agNumberColumnFilter"},
    {"field": "error_rate_pct", "headerName": "errors %", "type": "numericColumn"},
    {"field": "rps", "headerName": "req/s", "type": "numericColumn"},
    {"field": "p50_ms", "headerName": "p50 ms", "type": "numericColumn"},
    {"field": "p95_ms", "headerName": "p95 ms", "type": "numericColumn", "sort": "desc"},
    {"field": "p99_ms", "headerName": "p99 ms", "type": "numericColumn"},
]


def _round(value: float, digits: int = 1) -> float | None:
    return round(value, digits) if isinstance(value, float) and math.isfinite(value) else None


def endpoint_grid_rows(view: RunView, region: str, user_class: str) -> list[dict[str, Any]]:
    duration = max(view.duration_s, 1.0)
    return [{
        "endpoint": r.endpoint, "requests": r.requests, "failures": r.failures,
        "error_rate_pct": round(100.0 * r.failures / r.requests, 3) if r.requests else None,
        "rps": round(r.requests / duration, 2), "p50_ms": _round(r.p50_ms),
        "p95_ms": _round(r.p95_ms), "p99_ms": _round(r.p99_ms),
    } for r in view.endpoint_rows if r.region == region and r.user_class == user_class]


def endpoints_page(view: RunView) -> html.Div:
    if not view.endpoint_rows:
        return message_page("Endpoints", "The run recorded no per-endpoint histograms.")

    def choice(id_: str, label: str, values: Sequence[str]) -> html.Div:
        return html.Div([html.Label(label, style=NOTE),
                         dcc.Dropdown(id=id_, options=[ALL, *values], value=ALL,
                                      clearable=False)], style={"width": "240px"})

    return html.Div([
        html.Div([choice("ep-region", "Region", view.regions),
                  choice("ep-class", "User class", view.user_classes)],
                 style={"display": "flex", "gap": "16px", "marginBottom": "10px"}),
        html.P("Latency from merged HDR histograms of the whole run; click a column to sort, "
               "use the column menus to filter.", style=NOTE),
        dag.AgGrid(id="ep-grid", columnDefs=_ENDPOINT_COLUMNS,
                   rowData=endpoint_grid_rows(view, ALL, ALL),
                   defaultColDef={"sortable": True, "resizable": True, "flex": 1},
                   columnSize="sizeToFit", style={"height": "560px"}),
    ], style=CARD, id="page-endpoints")


# --- capacity --------------------------------------------------------------------------------

def _slider(id_: str, label: str, minimum: float, maximum: float, step: float, value: float,
            marks: dict[float, str], *, direct_input: bool = True) -> html.Div:
    return html.Div([
        html.Label(label, style=NOTE),
        dcc.Slider(id=id_, min=minimum, max=maximum, step=step, value=value, marks=marks,
                   allow_direct_input=direct_input,
                   tooltip={"placement": "bottom", "always_visible": False}),
    ], style={"marginBottom": "6px"})


def what_if_controls(prefix: str, view: RunView, settings: Settings, *,
                     sizing: bool = True) -> html.Div:
    """Users (log scale) and think time; with `sizing`, p95 target and headroom too."""
    users = math.log10(max(settings.users, 1000))
    controls = [
        _slider(f"{prefix}-users", "Users (log scale: 1k to 1M)", 3, 6, 0.01, users,
                {3: "1k", 4: "10k", 5: "100k", 6: "1M"}, direct_input=False),
        _slider(f"{prefix}-think", "Think time (s)", 0, 60, 0.25,
                min(settings.think_for(view), 60), {0: "0", 5: "5", 30: "30", 60: "60"}),
    ]
    if sizing:
        controls += [
            _slider(f"{prefix}-target", "p95 target (ms)", 20, 500, 5, settings.p95_target_ms,
                    {20: "20", 100: "100", 250: "250", 500: "500"}),
            _slider(f"{prefix}-headroom", "Headroom (%)", 0, 100, 5, settings.headroom * 100,
                    {0: "0", 30: "30", 50: "50", 100: "100"}),
        ]
    return html.Div(controls)


def fit_table(result: CapacityModel) -> html.Table | html.P:
    fit = result.fit
    if fit is None:
        return html.P(result.problem or "No fit.", style=NOTE)
    level = f"{fit.confidence:.0%} CI"

    def row(name: str, value: float, ci: Any, meaning: str) -> html.Tr:
        text = format_interval(ci.low, ci.high) if ci is not None else "n/a (too few steps)"
        return html.Tr([html.Td(name), html.Td(f"{value:.4g}"), html.Td(text),
                        html.Td(meaning, style=NOTE)])

    peak = "none (no crosstalk)" if math.isinf(fit.peak_users) else f"{fit.peak_users:,.0f}"
    return html.Table([
        html.Thead(html.Tr([html.Th("parameter"), html.Th("estimate"), html.Th(level),
                            html.Th("meaning")])),
        html.Tbody([
            row("σ", fit.sigma, fit.sigma_ci, "contention (serial fraction)"),
            row("κ", fit.kappa, fit.kappa_ci, "crosstalk (coherency delay)"),
            row("λ", fit.lam, fit.lam_ci, "requests/s of one user without contention"),
            html.Tr([html.Td("R²"), html.Td(f"{fit.r_squared:.4f}"), html.Td(""),
                     html.Td(f"{fit.points} steps; peak throughput at N* = {peak}",
                             style=NOTE)]),
        ]),
    ], id="cap-fit-table", style={"width": "100%"})


def capacity_result(result: CapacityModel, settings: Settings, view: RunView,
                    cost: CostBreakdown) -> html.Div:
    """The what-if answer for the sliders' inputs, beside the gate's own projections."""
    return html.Div([_what_if(result, settings, view, cost), gate_projections(view)],
                    style={"display": "flex", "gap": "14px", "flexWrap": "wrap"})


def _what_if(result: CapacityModel, settings: Settings, view: RunView,
             cost: CostBreakdown) -> html.Div:
    """The response-time-law projection for the user's inputs, in words: a what-if."""
    plan = result.plan
    think = settings.think_for(view)
    if plan is None:
        return html.Div(message_page(WHAT_IF, result.problem or "No capacity model."),
                        id="cap-result", style={"flex": "3", "minWidth": "360px"})
    met = plan.passes and cost.within_budget
    background, color = COLORS[met]
    lines = [
        f"Response time law: N = X·(R + Z) → {settings.users:,.0f} users at Z = {think:g} s and "
        f"R = {plan.response_s * 1000:,.1f} ms offer X = {plan.required_rps:,.0f} requests/s.",
        (f"One instance meets p95 ≤ {settings.p95_target_ms:g} ms up to "
         f"{plan.per_instance_users:,.0f} concurrent users = {plan.per_instance_rps:,.1f} "
         "requests/s." if plan.per_instance_rps else "No instance meets the p95 target."),
        (f"Instances needed with {settings.headroom:.0%} headroom: {plan.instances:,}"
         + (f" (95% CI {plan.instances_ci.low:,.0f}–{plan.instances_ci.high:,.0f})"
            if plan.instances_ci else "") if plan.instances else "Instances needed: -"),
        f"Projected cost at that load: ${cost.total_usd:,.0f}/month against "
        f"${cost.budget_usd:,.0f}.",
        *plan.reasons,
    ]
    outcome = ("your p95 target is reachable within your budget" if met
               else "your p95 target or budget is not met")
    return html.Div([
        html.H4(WHAT_IF),
        html.Span(outcome, id="cap-outcome", style={"color": color, "fontWeight": 700}),
        html.Ul([html.Li(line) for line in lines]),
    ], id="cap-result", style={**CARD, "background": background, "flex": "3",
                               "minWidth": "360px"})


def capacity_page(view: RunView, settings: Settings) -> html.Div:
    return html.Div([
        html.Div([
            html.Div([html.H4("What if"), what_if_controls("cap", view, settings)],
                     style={"flex": "1", "minWidth": "320px"}),
            html.Div(id="cap-side", style={"flex": "2"}),
        ], style={"display": "flex", "gap": "20px", **CARD}),
        html.Div(dcc.Graph(id="cap-graph"), style=CARD),
        html.Div(id="cap-fit", style=CARD),
    ], id="page-capacity")


# --- cost ------------------------------------------------------------------------------------

_DRIVER_COLUMNS = [{"field": f, "headerName": h} for f, h in (
    ("group", "product"), ("label", "driver"), ("quantity", "per month"), ("cost", "$/month"),
    ("basis", "basis"), ("note", "how"))]
_PRICE_COLUMNS = [{"field": f, "headerName": h} for f, h in (
    ("product", "product"), ("item", "item"), ("rate", "price"), ("included", "included/month"),
    ("source", "source"), ("as_of", "as of"), ("note", "note"))]


def cost_sections(view: RunView, cost: CostBreakdown,
                  recommendations: Sequence[Recommendation]) -> list[Any]:
    """Everything on the cost page that depends on the what-if inputs."""
    prices = default_price_table()
    ok = cost.within_budget
    _, color = COLORS[ok]
    summary = html.Div([
        html.Div(f"{WHAT_IF}: {cost.load.users:,.0f} users", style=NOTE),
        html.Span(f"${cost.total_usd:,.0f}/month", id="cost-total",
                  style={"fontSize": "26px", "fontWeight": 700, "color": color}),
        html.Span(f" vs budget ${cost.budget_usd:,.0f} · ${cost.per_day:,.0f}/day · "
                  f"${cost.per_million_requests:,.2f} per million requests · "
                  f"${cost.per_user_month:,.4f} per user-month · "
                  f"{cost.requests_per_month / 1e9:,.2f} billion requests/month",
                  style={"marginLeft": "8px"}),
    ])
    drivers = [{"group": d.group, "label": d.label,
                "quantity": f"{d.monthly_quantity:,.0f} {d.unit}", "cost": round(d.cost_usd, 2),
                "basis": d.basis, "note": d.note} for d in cost.drivers]
    recs = html.Ol([html.Li([
        html.B(f"{r.title}: save ${r.saving_usd:,.0f}/month"),
        html.Span(f" ({r.origin})", style=NOTE), html.Br(),
        html.Span(r.evidence), html.Br(), html.Span(r.action, style=NOTE),
    ], style={"marginBottom": "8px"}) for r in recommendations], id="cost-recs")
    return [
        html.Div(summary, style=CARD),
        gate_projections(view),
        html.Div([dcc.Graph(id="cost-breakdown", figure=breakdown_figure(cost))], style=CARD),
        html.Div([dcc.Graph(id="cost-burn", figure=burn_figure(cost)),
                  dcc.Graph(id="cost-seed", figure=seed_comparison_figure(
                      cost, prices.reference_estimates))], style=CARD),
        html.Div([html.H4("Recommendations, re-priced with this model"), recs], style=CARD),
        html.Div([html.H4("Drivers: what was measured and what was assumed"),
                  dag.AgGrid(id="cost-drivers", columnDefs=_DRIVER_COLUMNS, rowData=drivers,
                             defaultColDef={"sortable": True, "resizable": True},
                             dashGridOptions={"domLayout": "autoHeight"},
                             columnSize="autoSize", style={"height": None})], style=CARD),
    ]


def cost_page(view: RunView, settings: Settings) -> html.Div:
    prices = default_price_table()
    return html.Div([
        html.Div([html.H4("Load to price"), what_if_controls("cost", view, settings, sizing=False),
                  html.P(view.notes.get("cost", ""), style=NOTE)], style=CARD),
        html.Div(id="cost-body"),
        html.Div([
            html.H4(f"Price table, version {prices.version} (figures as of "
                    f"{prices.oldest_as_of} to {max(p.as_of for p in prices.prices.values())})"),
            dag.AgGrid(id="price-grid", columnDefs=_PRICE_COLUMNS, rowData=prices.rows(),
                       defaultColDef={"sortable": True, "resizable": True},
                       dashGridOptions={"domLayout": "autoHeight"},
                       columnSize="autoSize", style={"height": None}),
            html.P(f"Source file: {prices.path}", style=NOTE),
        ], style=CARD),
    ], id="page-cost")


# --- compare ---------------------------------------------------------------------------------

_DELTA_COLUMNS = [
    {"field": "endpoint", "minWidth": 280}, {"field": "p95_a", "headerName": "p95 A (ms)"},
    {"field": "p95_b", "headerName": "p95 B (ms)"},
    {"field": "delta_ms", "headerName": "Δ ms", "sort": "desc"},
    {"field": "delta_pct", "headerName": "Δ %"},
]


def compare_page(runs: Sequence[RunInfo], a: str, b: str | None) -> html.Div:
    options = [{"label": r.label, "value": r.run_id} for r in runs]
    if len(runs) < 2:
        return message_page("Compare", "Only one run here: make another to compare them.")
    return html.Div([
        html.Div([
            html.Div([html.Label("Run A", style=NOTE),
                      dcc.Dropdown(id="cmp-a", options=options, value=a, clearable=False)],
                     style={"flex": 1}),
            html.Div([html.Label("Run B", style=NOTE),
                      dcc.Dropdown(id="cmp-b", options=options, value=b, clearable=False)],
                     style={"flex": 1}),
        ], style={"display": "flex", "gap": "16px", **CARD}),
        html.Div(dcc.Graph(id="cmp-graph"), style=CARD),
        html.Div([html.H4("Per-endpoint p95, B against A"),
                  dag.AgGrid(id="cmp-grid", columnDefs=_DELTA_COLUMNS, rowData=[],
                             defaultColDef={"sortable": True, "resizable": True, "flex": 1},
                             style={"height": "420px"})], style=CARD),
    ], id="page-compare")
