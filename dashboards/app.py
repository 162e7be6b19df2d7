"""The Dash application: layout shell, routing and callbacks (thin: pages and figures are
built by pure functions in dashboards.pages / dashboards.figures from prepared views).

Pages: / (overview), /endpoints, /capacity, /cost, /compare; `?run=<run_id>` picks the run
(default: the newest). While the chosen run is being written, the overview extends its
figures every `live_interval_ms` with only the new points (Patch), and the header follows
(the run's live figures, then the gate's verdict once the run has ended and been judged).
The dashboard never judges a run: the header shows the verdict recorded in summary.json.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, Input, Output, Patch, State, dcc, html, no_update

from dashboards.analysis import (
    Settings,
    capacity_for,
    cost_for,
    recommendations_for,
)
from dashboards.catalog import RunCatalog, ViewError
from dashboards.data import RunView
from dashboards.figures import (
    capacity_figure,
    compare_figure,
    endpoint_deltas,
    heatmap_figure,
    heatmap_patch_data,
    latency_extension,
    latency_figure,
    load_extension,
    load_figure,
)
from dashboards.figures.common import note_figure
from dashboards.pages import (
    capacity_page,
    capacity_result,
    compare_page,
    cost_page,
    cost_sections,
    endpoint_grid_rows,
    endpoints_page,
    fit_table,
    header,
    message_page,
    overview_page,
)
from dashboards.verdict_header import verdict_bar

__all__ = ["VERDICT_WAIT_S", "create_app", "header_settled"]

# After a run ends, the header keeps polling this long for the verdict `pitchey run` records.
VERDICT_WAIT_S = 120.0
PAGE_STYLE = {"fontFamily": "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
              "background": "#f6f8fa", "padding": "12px 18px", "minHeight": "100vh"}


def _run_from(search: str | None) -> str | None:
    values = parse_qs((search or "").lstrip("?")).get("run")
    return values[0] if values else None


def header_settled(view: RunView, now: float | None = None) -> bool:
    """For a header opened on a live run: True once it can no longer change, i.e. the run
    ended and the gate's verdict is recorded, or it ended VERDICT_WAIT_S ago without one.
    (A run already finished when opened is not polled: its header is what summary.json says.)"""
    if view.live:
        return False
    if view.summary.get("verdict") is not None:
        return True
    try:
        ended = datetime.fromisoformat(str(view.manifest.get("ended_at"))).timestamp()
    except ValueError:
        return True
    return (time.time() if now is None else now) - ended > VERDICT_WAIT_S


def create_app(
    runs_dir: Path | str, *, cache_dir: Path | str | None = None, live_interval_ms: int = 2000,
    settings: Settings | None = None, catalog: RunCatalog | None = None,
) -> Dash:
    """Build the dashboard over the run directories under `runs_dir`."""
    catalog = catalog or RunCatalog(runs_dir, cache_dir=cache_dir)
    app = Dash(__name__, title="Pitchey perf", suppress_callback_exceptions=True,
               update_title="")
    app.layout = html.Div([
        dcc.Location(id="url"),
        dcc.Store(id="current-run"),
        html.Div(id="header"),
        html.Div(id="verdict"),
        html.Div(id="page"),
        dcc.Interval(id="header-tick", interval=live_interval_ms, disabled=True),
    ], style=PAGE_STYLE)
    _Callbacks(app, catalog, settings or Settings(), live_interval_ms).register()
    return app


class _Callbacks:
    """Every callback of the app, closed over the catalog and the default settings."""

    def __init__(self, app: Dash, catalog: RunCatalog, settings: Settings,
                 live_interval_ms: int) -> None:
        self.app = app
        self.catalog = catalog
        self.settings = settings
        self.live_interval_ms = live_interval_ms

    def register(self) -> None:
        app = self.app
        app.callback(
            Output("header", "children"), Output("verdict", "children"),
            Output("page", "children"), Output("current-run", "data"),
            Output("header-tick", "disabled"),
            Input("url", "pathname"), Input("url", "search"),
        )(self.route)
        app.callback(Output("url", "search"), Input("run-select", "value"),
                     State("current-run", "data"), prevent_initial_call=True)(self.select_run)
        app.callback(Output("verdict", "children", allow_duplicate=True),
                     Output("header-tick", "disabled", allow_duplicate=True),
                     Input("header-tick", "n_intervals"), State("current-run", "data"),
                     prevent_initial_call=True)(self.refresh_verdict)
        app.callback(
            Output("load-graph", "figure"), Output("latency-graph", "figure"),
            Output("heatmap-graph", "figure"), Output("live-sent", "data"),
            Output("live-status", "children"), Output("live-tick", "disabled"),
            Input("live-tick", "n_intervals"), State("live-sent", "data"),
            State("current-run", "data"), prevent_initial_call=True,
        )(self.live_tick)
        app.callback(Output("ep-grid", "rowData"), Input("ep-region", "value"),
                     Input("ep-class", "value"), State("current-run", "data"))(self.endpoints)
        what_if = [Input(f"cap-{k}", "value") for k in ("users", "think", "target", "headroom")]
        app.callback(Output("cap-graph", "figure"), Output("cap-side", "children"),
                     Output("cap-fit", "children"), *what_if,
                     State("current-run", "data"))(self.capacity)
        cost_inputs = [Input(f"cost-{k}", "value") for k in ("users", "think")]
        app.callback(Output("cost-body", "children"), *cost_inputs,
                     State("current-run", "data"))(self.cost)
        app.callback(Output("cmp-graph", "figure"), Output("cmp-grid", "rowData"),
                     Input("cmp-a", "value"), Input("cmp-b", "value"))(self.compare)

    # routing --------------------------------------------------------------------------------
    def route(self, pathname: str | None, search: str | None) -> tuple[Any, ...]:
        path = pathname or "/"
        runs = self.catalog.list_runs()
        wanted = _run_from(search)
        info = self.catalog.find(wanted)
        top = header(runs, info.run_id if info else None, path)
        if info is None:
            text = (f"No run {wanted!r} under {self.catalog.runs_dir}." if wanted else
                    f"No run directories under {self.catalog.runs_dir}. Make one with "
                    "`pitchey run scenarios/smoke.yaml`, or point --runs at a folder of runs.")
            return top, None, message_page("No run", text), None, True
        try:
            view = self.catalog.view(info.run_id)
        except ViewError as exc:
            return top, None, message_page("This run cannot be read", str(exc)), None, True
        with self.catalog.locked(view.run_id):  # a live view is not refreshed halfway
            verdict = verdict_bar(view)
            page = self._page(path, view)
            return top, verdict, page, view.run_id, not view.live

    def _page(self, path: str, view: RunView) -> Any:
        if path == "/endpoints":
            return endpoints_page(view)
        if path == "/capacity":
            return capacity_page(view, self.settings)
        if path == "/cost":
            return cost_page(view, self.settings)
        if path == "/compare":
            runs = self.catalog.list_runs()
            other = next((r.run_id for r in runs if r.run_id != view.run_id), None)
            return compare_page(runs, view.run_id, other)
        if path in ("/", ""):
            return overview_page(view, self.live_interval_ms)
        return message_page("Not found", f"There is no page {path!r}.")

    def select_run(self, run_id: str | None, shown: str | None) -> Any:
        if not run_id or run_id == shown:
            return no_update
        return f"?run={run_id}"

    def _view(self, run_id: str | None) -> RunView | None:
        if not run_id:
            return None
        try:
            return self.catalog.view(run_id)
        except ViewError:
            return None

    # live -----------------------------------------------------------------------------------
    def refresh_verdict(self, _n: int, run_id: str | None) -> tuple[Any, bool]:
        if not run_id:
            return no_update, True
        try:
            view = self.catalog.live_view(run_id)
        except ViewError:
            return no_update, True
        with self.catalog.locked(run_id):
            bar = verdict_bar(view)
            return bar, header_settled(view)

    def live_tick(self, _n: int, sent: dict[str, Any] | None,
                  run_id: str | None) -> tuple[Any, ...]:
        if not run_id or not sent or sent.get("run") != run_id:
            return (no_update,) * 5 + (True,)
        try:
            view = self.catalog.live_view(run_id)
        except ViewError as exc:
            return (no_update,) * 4 + (f"live refresh failed: {exc}", True)
        with self.catalog.locked(run_id):
            bin_s = view.bins.bin_s if view.bins else None
            same_bins = sent.get("bin_s") in (None, bin_s)
            load = self._load_update(view, int(sent.get("load", 0)))
            latency, heat = self._latency_updates(
                view, int(sent.get("bins", 0)) if same_bins else 0, sent.get("regions"))
            new_sent = {"run": run_id, "load": len(view.load),
                        "bins": len(view.bins.starts) if view.bins else 0, "bin_s": bin_s,
                        "regions": list(view.regions)}
            live = view.live
        status = ("live: refreshing every "
                  f"{self.live_interval_ms / 1000:g} s" if live else "run finished")
        return load, latency, heat, new_sent, status, not live

    @staticmethod
    def _load_update(view: RunView, sent: int) -> Any:
        if len(view.load) <= sent:
            return no_update
        if sent == 0:
            return load_figure(view)  # first points: the figure had none to extend
        data, traces = load_extension(view, sent)
        patch = Patch()
        for i, trace in enumerate(traces):
            patch["data"][trace]["x"].extend(data["x"][i])
            patch["data"][trace]["y"].extend(data["y"][i])
        return patch

    @staticmethod
    def _latency_updates(view: RunView, sent: int, regions: Any) -> tuple[Any, Any]:
        bins = view.bins
        if bins is None or len(bins.starts) <= sent:
            return no_update, no_update
        if sent == 0 or (regions is not None and list(regions) != list(view.regions)):
            return latency_figure(view), heatmap_figure(view)
        data, traces = latency_extension(view, sent)
        latency = Patch()
        for i, trace in enumerate(traces):
            latency["data"][trace]["x"].extend(data["x"][i])
            latency["data"][trace]["y"].extend(data["y"][i])
        columns = heatmap_patch_data(view, sent)
        heat = Patch()
        heat["data"][0]["x"].extend(columns["x"])
        for row, (z, counts) in enumerate(zip(columns["z"], columns["counts"], strict=True)):
            heat["data"][0]["z"][row].extend(z)
            heat["data"][0]["customdata"][row].extend(counts)
        for trace, key in enumerate(("within", "near", "over", "failed"), start=1):
            heat["data"][trace]["x"].extend(columns["x"])
            heat["data"][trace]["y"].extend(columns["ranges"][key])
        return latency, heat

    # pages ----------------------------------------------------------------------------------
    def endpoints(self, region: str, user_class: str, run_id: str | None) -> Any:
        view = self._view(run_id)
        if view is None:
            return no_update
        return endpoint_grid_rows(view, region, user_class)

    def _what_if(self, view: RunView, users_log: float | None, think: float | None,
                 target: float | None, headroom: float | None) -> Settings:
        base = self.settings
        return Settings(
            users=round(10 ** users_log) if users_log is not None else base.users,
            think_time_s=think if think is not None else base.think_for(view),
            p95_target_ms=target if target else base.p95_target_ms,
            headroom=(headroom / 100.0) if headroom is not None else base.headroom,
            budget_usd=base.budget_usd,
        )

    def capacity(self, users_log: float | None, think: float | None, target: float | None,
                 headroom: float | None, run_id: str | None) -> tuple[Any, Any, Any]:
        view = self._view(run_id)
        if view is None:
            return note_figure("No run selected."), None, None
        settings = self._what_if(view, users_log, think, target, headroom)
        result = capacity_for(view, settings)
        cost = cost_for(view, settings)
        return (capacity_figure(result, settings.p95_target_ms),
                capacity_result(result, settings, view, cost), fit_table(result))

    def cost(self, users_log: float | None, think: float | None, run_id: str | None) -> Any:
        view = self._view(run_id)
        if view is None:
            return message_page("Cost", "No run selected.")
        settings = self._what_if(view, users_log, think, None, None)
        return cost_sections(view, cost_for(view, settings),
                             recommendations_for(view, settings))

    def compare(self, a: str | None, b: str | None) -> tuple[Any, Any]:
        view_a, view_b = self._view(a), self._view(b)
        if view_a is None or view_b is None:
            return note_figure("Choose two readable runs."), []
        return compare_figure(view_a, view_b), endpoint_deltas(view_a, view_b)
