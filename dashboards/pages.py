"""Page layouts: Dash components built from a prepared view (no callbacks here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dash_ag_grid as dag
from dash import dcc, html

from collectors.models.cost import CostBreakdown, reference_comparison
from collectors.models.prices import default_price_table
from collectors.models.recommendations import Recommendation
from collectors.models.tornado import cost_tornado
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
from dashboards.figures.cost import tornado_figure
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
    """The three figures of one instance's capacity (knee, X_max, USL) and which is trusted."""
    estimate = result.estimate
    if estimate is None:
        return html.P(result.problem or "No capacity estimate.", style=NOTE)
    found = estimate.knee

    def row(name: str, value: float | None, low: float | None, high: float | None,
            meaning: str) -> html.Tr:
        shown = "-" if value is None else f"{value:,.1f} req/s"
        spread = format_interval(low, high) if low is not None and high is not None else ""
        return html.Tr([html.Td(name), html.Td(shown), html.Td(spread),
                        html.Td(meaning, style=NOTE)])

    rows = [
        row("knee", None if found is None else found.throughput_rps,
            None if found is None else found.low, None if found is None else found.high,
            "no steps" if found is None else found.text),
        row("X_max", estimate.x_max_rps, None, None, estimate.x_max_note or "no CPU series"),
        row("USL peak", estimate.usl_peak_rps, None, None, estimate.usl_note or "no fit"),
        html.Tr([html.Td("trusted"), html.Td(estimate.trusted), html.Td(""),
                 html.Td(estimate.why, style=NOTE)]),
        *[html.Tr([html.Td("disagreement"), html.Td(""), html.Td(""),
                   html.Td(text, style=NOTE)]) for text in estimate.disagreements],
    ]
    return html.Table([
        html.Thead(html.Tr([html.Th("figure"), html.Th("one instance"),
                            html.Th("95% interval"), html.Th("how")])),
        html.Tbody(rows),
    ], id="cap-fit-table", style={"width": "100%"})


def capacity_result(result: CapacityModel, settings: Settings, view: RunView,
                    cost: CostBreakdown) -> html.Div:
    """Measured (the steps, the knee, X_max) beside projected (the what-if for the sliders'
    inputs and the gate's own projections, each with its assumptions)."""
    return html.Div([_measured(result, settings),
                     html.Div([_what_if(result, settings, view, cost), gate_projections(view)],
                              id="cap-projected", style={"flex": "3", "minWidth": "360px"})],
                    style={"display": "flex", "gap": "14px", "flexWrap": "wrap"})


def _measured(result: CapacityModel, settings: Settings) -> html.Div:
    """What the run measured: per step the load, throughput, p95 and errors; the knee; X_max."""
    steps, estimate = result.steps, result.estimate
    column = "rate" if result.load == "rate" else "users"
    head = html.Tr([html.Th("offered" if column == "rate" else "users"), html.Th("req/s"),
                    html.Th("p95 ms"), html.Th("errors"), html.Th("held")])
    body = []
    for row in ([] if steps is None else steps.sort_values(column).to_dict("records")):
        p95, err = row["p95_ms"], row.get("error_rate") or 0.0
        held = p95 == p95 and p95 <= settings.p95_target_ms and err <= 0.01
        body.append(html.Tr([html.Td(f"{row[column]:,.4g}"),
                             html.Td(f"{row['throughput']:,.1f}"),
                             html.Td("-" if p95 != p95 else f"{p95:,.1f}"),
                             html.Td(f"{err:.2%}"), html.Td("yes" if held else "no")]))
    lines = [] if estimate is None else [
        f"Knee at p95 ≤ {settings.p95_target_ms:g} ms: "
        + (estimate.knee.text if estimate.knee is not None else "no steps"),
        "X_max (CPU ceiling): " + (f"{estimate.x_max_rps:,.1f} req/s, {estimate.x_max_note}"
                                   if estimate.x_max_rps else estimate.x_max_note or "none"),
        f"USL cross-check: {estimate.usl_note or 'none'}",
    ]
    return html.Div([
        html.H4("Measured (this run's steps)"),
        html.Table([html.Thead(head), html.Tbody(body)], id="cap-steps",
                   style={"width": "100%"}) if body else
        html.P(result.problem or "The run has no load steps.", style=NOTE),
        html.Ul([html.Li(line) for line in lines]),
    ], id="cap-measured", style={**CARD, "flex": "2", "minWidth": "320px"})


def _what_if(result: CapacityModel, settings: Settings, view: RunView,
             cost: CostBreakdown) -> html.Div:
    """The response-time-law projection for the user's inputs, in words: a what-if."""
    sizing, estimate = result.sizing, result.estimate
    think = settings.think_for(view)
    if sizing is None or estimate is None:
        return html.Div(message_page(WHAT_IF, result.problem or "No capacity estimate."),
                        id="cap-result")
    met = cost.within_budget
    background, color = COLORS[met]
    ci = sizing.instances_ci
    cores = sizing.cores
    lines = [
        f"Response time law: X/N = 1/(R + Z) → {settings.users:,.0f} users at Z = {think:g} s "
        f"and R = {sizing.response_s * 1000:,.1f} ms ({sizing.response_source}) offer "
        f"X = {sizing.required_rps:,.0f} requests/s.",
        f"One instance holds p95 ≤ {settings.p95_target_ms:g} ms at "
        f"{sizing.per_instance_rps:,.1f} requests/s (range {sizing.per_instance_low:,.1f}–"
        f"{sizing.per_instance_high:,.1f}; trusted: {estimate.trusted}).",
        f"Instances needed with {settings.headroom:.0%} headroom: {sizing.instances:,}"
        + (f" (range {ci.low:,.0f}–{ci.high:,.0f})" if ci else ""),
        (f"CPU cores: {cores[0]:,.0f} (range {cores[1]:,.0f}–{cores[2]:,.0f}) at "
         f"{sizing.cores_per_instance:g} per instance ({sizing.cores_source})"
         if cores is not None else "CPU cores: unknown"),
        f"Projected cost at that load: ${cost.total_usd:,.0f}/month against "
        f"${cost.budget_usd:,.0f}.",
        *estimate.disagreements,
    ]
    outcome = ("within your budget" if met else "over your budget")
    return html.Div([
        html.H4(WHAT_IF),
        html.Span(outcome, id="cap-outcome", style={"color": color, "fontWeight": 700}),
        html.Ul([html.Li(line) for line in lines]),
        html.P(f"Why this figure: {estimate.why}", style=NOTE),
    ], id="cap-result", style={**CARD, "background": background})


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
                "basis": d.basis_text or d.basis, "note": d.note} for d in cost.drivers]
    recs = html.Ol([html.Li([
        html.B(f"{r.title}: save ${r.saving_usd:,.0f}/month"),
        html.Span(f" ({r.origin})", style=NOTE), html.Br(),
        html.Span(r.evidence), html.Br(), html.Span(r.action, style=NOTE),
    ], style={"marginBottom": "8px"}) for r in recommendations], id="cost-recs")
    return [
        html.Div(summary, style=CARD),
        gate_projections(view),
        html.Div([dcc.Graph(id="cost-breakdown", figure=breakdown_figure(cost))], style=CARD),
        _tornado_section(cost),
        html.Div([dcc.Graph(id="cost-burn", figure=burn_figure(cost)),
                  dcc.Graph(id="cost-seed", figure=seed_comparison_figure(
                      cost, prices.reference_estimates)), _reference_table(cost)], style=CARD),
        html.Div([html.H4("Recommendations, re-priced with this model"), recs], style=CARD),
        html.Div([html.H4("Drivers: what was measured and what was assumed"),
                  dag.AgGrid(id="cost-drivers", columnDefs=_DRIVER_COLUMNS, rowData=drivers,
                             defaultColDef={"sortable": True, "resizable": True},
                             dashGridOptions={"domLayout": "autoHeight"},
                             columnSize="autoSize", style={"height": None})], style=CARD),
    ]


def _tornado_section(cost: CostBreakdown) -> html.Div:
    """The assumptions' tornado: which one moves the total most, and the total's range."""
    spread = cost_tornado(cost)
    if spread is None:
        return html.Div(html.P("No tornado: this profile was not measured from a run.",
                               style=NOTE), id="cost-tornado-note", style=CARD)
    largest = spread.largest
    lead = (f"The largest swing is {largest.label}: ${largest.swing_usd:,.0f}/month between "
            f"the ends of its range ({largest.why})." if largest else "No assumption moves it.")
    return html.Div([
        html.H4(f"Assumptions: ${spread.low_usd:,.0f}–${spread.high_usd:,.0f}/month "
                f"(central ${spread.central_usd:,.0f})", id="cost-range"),
        html.P([lead, html.Br(), f"Range: {spread.combination}. Measured figures are not "
                "varied."], style=NOTE),
        dcc.Graph(id="cost-tornado", figure=tornado_figure(spread)),
    ], style=CARD)


def _reference_table(cost: CostBreakdown) -> html.Div:
    """The document's own estimate, item by item, beside the model's cost of the same item."""
    ref = reference_comparison(cost)
    head = html.Tr([html.Th(t) for t in ("item (document)", "document $/month",
                                         "this model $/month")])
    rows = [html.Tr([html.Td(r.document_label), html.Td(f"${r.document_usd:,.0f}"),
                     html.Td(f"${r.model_usd:,.0f}")]) for r in ref.rows]
    total = html.Tr([html.Th("Total"), html.Th(f"${ref.items_total_usd:,.0f}"),
                     html.Th(f"${ref.model_total_usd:,.0f}")])
    return html.Div([
        html.H4("The document's own estimate beside this model"),
        html.Table([html.Thead(head), html.Tbody([*rows, total])], id="cost-reference"),
        html.P([f"Source: {ref.source}. Check: {ref.check_text}.", html.Br(),
                f"The model's column prices {cost.load.users:,.0f} users at this run's measured "
                "mix, with every assumption at its centre."],
               id="cost-reference-check", style=NOTE),
    ])


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
