"""Figure builders and the models applied to prepared runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from dash import Patch

from collectors import load_run
from dashboards.analysis import Settings, capacity_for, cost_for
from dashboards.app import _Callbacks, create_app
from dashboards.catalog import RunCatalog
from dashboards.data import build_view
from dashboards.figures import (
    heatmap_figure,
    heatmap_patch_data,
    latency_extension,
    latency_figure,
    load_extension,
    load_figure,
)
from dashboards.figures.overview import heat_columns
from testing.demo import DemoRun, DemoSpec

SMALL = DemoSpec(endpoints=4, step_s=10)  # what the runs_dir fixture's `demo` run was made with


def test_usl_fit_on_a_synthetic_run_covers_the_known_parameters(demo_run: Path) -> None:
    view = build_view(load_run(demo_run))
    result = capacity_for(view, Settings())
    fit = result.fit
    assert fit is not None and fit.sigma_ci and fit.kappa_ci and fit.lam_ci
    assert SMALL.sigma in fit.sigma_ci
    assert SMALL.kappa in fit.kappa_ci
    assert SMALL.lam in fit.lam_ci
    # the law read back the think time the run actually had
    assert result.latency is not None
    assert result.latency.think_eff_s == pytest.approx(SMALL.think_s, abs=0.05)


def test_figures_have_one_trace_per_series(demo_run: Path) -> None:
    view = build_view(load_run(demo_run))
    assert len(load_figure(view)["data"]) == 3
    assert len(latency_figure(view)["data"]) == 3 * len(view.regions)
    heat = heatmap_figure(view)
    assert heat["data"][0]["type"] == "heatmap" and len(heat["data"]) == 5
    assert view.bins is not None
    # every request lands in exactly one bucket
    assert [sum(col) for col in heat_columns(view.bins)] == [h.total for h in view.bins.overall]


def test_missing_pieces_draw_explanations(sparse_runs: Path) -> None:
    flat = next(p for p in sparse_runs.iterdir() if p.name.endswith("-flat"))
    view = build_view(load_run(flat))
    result = capacity_for(view, Settings())
    assert result.fit is None and result.estimate is not None
    assert "3 distinct" in result.estimate.usl_note  # one level: no USL, an "at least" knee
    assert result.estimate.trusted == "knee (at least)"


def test_extensions_carry_only_new_points(tmp_path: Path) -> None:
    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(15)
    live.flush()
    catalog = RunCatalog(tmp_path, refresh_min_s=0.0)
    view = catalog.view(live.run_id if hasattr(live, "run_id") else live.path.name)
    sent_load, sent_bins = len(view.load), len(view.bins.starts) if view.bins else 0
    live.write_seconds(5)
    live.flush()
    view = catalog.refresh(view.run_id)
    data, traces = load_extension(view, sent_load)
    assert traces == [0, 1, 2] and all(len(x) == 5 for x in data["x"])
    lat, lat_traces = latency_extension(view, sent_bins)
    assert len(lat_traces) == 3 * len(view.regions)
    assert all(len(x) == 5 for x in lat["x"])
    heat = heatmap_patch_data(view, sent_bins)
    assert len(heat["x"]) == 5 and all(len(row) == 5 for row in heat["z"])


def test_live_tick_sends_patches_not_figures(tmp_path: Path) -> None:
    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(15)
    live.flush()
    catalog = RunCatalog(tmp_path, refresh_min_s=0.0)
    callbacks = _Callbacks(create_app(tmp_path, catalog=catalog), catalog, Settings(), 2000)
    view = catalog.view(live.path.name)
    sent = {"run": view.run_id, "load": len(view.load), "bins": len(view.bins.starts),
            "bin_s": view.bins.bin_s, "regions": view.regions}
    live.write_seconds(5)
    live.flush()
    catalog.refresh(view.run_id)  # what the background refresher does every second
    load, latency, heat, new_sent, status, disabled = callbacks.live_tick(1, sent, view.run_id)
    assert isinstance(load, Patch) and isinstance(latency, Patch) and isinstance(heat, Patch)
    assert new_sent["load"] == sent["load"] + 5 and not disabled
    assert status.startswith("live")
    live.write_seconds(40)
    live.finish()
    *_, status, disabled = callbacks.live_tick(2, new_sent, view.run_id)
    assert disabled and status == "run finished"
    catalog.stop()


def test_route_explains_unreadable_runs(sparse_runs: Path) -> None:
    catalog = RunCatalog(sparse_runs)
    callbacks = _Callbacks(create_app(sparse_runs, catalog=catalog), catalog, Settings(), 2000)
    _, verdict, page, run, _ = callbacks.route("/", "?run=20250101T000000Z-broken")
    assert verdict is None and run is None
    assert "cannot be read" in str(page) and "manifest.json: not valid JSON" in str(page)
    _, _, page, _, _ = callbacks.route("/", "?run=nope")
    assert "nope" in str(page)


def test_every_figure_dict_is_valid_plotly(demo_run: Path, runs_dir: Path) -> None:
    """Figures are plain dicts for speed; graph_objects validates them here instead."""
    import plotly.graph_objects as go

    from dashboards.figures import (
        breakdown_figure,
        burn_figure,
        capacity_figure,
        compare_figure,
        seed_comparison_figure,
    )
    from dashboards.figures.common import note_figure

    view = build_view(load_run(demo_run))
    settings = Settings()
    cost = cost_for(view, settings)
    figures = [load_figure(view), latency_figure(view), heatmap_figure(view),
               capacity_figure(capacity_for(view, settings), 100), breakdown_figure(cost),
               burn_figure(cost), seed_comparison_figure(cost, {"Workers": 1356.0}),
               compare_figure(view, view), note_figure("nothing")]
    for figure in figures:
        go.Figure(figure)  # raises ValueError naming any invalid property
