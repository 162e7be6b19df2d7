"""The prepared view: figures read off merged histograms, consistent with the run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from collectors import load_run
from collectors.hdr import Histogram
from dashboards.data import ALL, build_view, choose_bin_s, extend_view, think_time_s
from testing.demo import DemoRun, DemoSpec


def test_choose_bin_s_keeps_bins_bounded() -> None:
    assert choose_bin_s(60) == 1
    assert choose_bin_s(600) == 5
    assert choose_bin_s(3600) == 15
    assert 3600 * 24 / choose_bin_s(3600 * 24) <= 240


@pytest.mark.parametrize(("raw", "seconds"), [
    (30, 30.0), ("30s", 30.0), ("500ms", 0.5), ({"min": 1, "max": 3}, 2.0),
    ({"min": "1s", "max": "5s"}, 3.0), ("soon", None),
])
def test_think_time_forms(raw: object, seconds: float | None) -> None:
    assert think_time_s({"think_time": raw}) == seconds


def test_bins_cover_the_run_and_match_merged_histograms(demo_run: Path) -> None:
    run = load_run(demo_run)
    view = build_view(run)
    bins = view.bins
    assert bins is not None and bins.bin_s == 1.0
    assert len(bins.starts) == len(run.load)
    assert sum(h.total for h in bins.overall) == run.summary["requests"]  # type: ignore[index]
    assert sum(bins.failures) == run.summary["failures"]  # type: ignore[index]
    middle = len(bins.starts) // 2
    start = bins.starts[middle]
    expected = run.histogram(start=start, end=start + 1.0)
    assert bins.overall[middle] == expected
    for region in view.regions:
        merged = Histogram.merge(bins.by_region[region])
        assert merged.quantile(0.95) == run.histogram(region=region).quantile(0.95)


def test_endpoint_rows_agree_with_stats_and_histograms(demo_run: Path) -> None:
    run = load_run(demo_run)
    view = build_view(run)
    rows = {(r.region, r.user_class, r.endpoint): r for r in view.endpoint_rows}
    stats = run.stats
    endpoint = stats["endpoint"].iloc[0]
    region = view.regions[1]
    chosen = stats[(stats["endpoint"] == endpoint) & (stats["region"] == region)]
    row = rows[(region, ALL, endpoint)]
    assert row.requests == int(chosen["requests"].sum())
    assert row.failures == int(chosen["failures"].sum())
    assert row.p95_ms == run.histogram(region=region, endpoint=endpoint).quantile(0.95)
    everything = [r for r in view.endpoint_rows if r.region == ALL and r.user_class == ALL]
    assert sum(r.requests for r in everything) == int(stats["requests"].sum())


def test_steps_carry_latency_from_the_step_window(demo_run: Path) -> None:
    run = load_run(demo_run)
    view = build_view(run)
    assert view.steps is not None
    assert view.steps["users"].tolist() == [10, 20, 40, 60, 80, 100]
    step = view.steps.iloc[2]
    hist = run.histogram(start=step["start"], end=step["end"])
    assert step["p95_ms"] == hist.quantile(0.95)
    assert step["mean_ms"] == pytest.approx(hist.mean_ms)


def test_missing_pieces_become_notes(sparse_runs: Path) -> None:
    flat = next(p for p in sparse_runs.iterdir() if p.name.endswith("-flat"))
    view = build_view(load_run(flat))
    assert "cost" in view.notes and "Auto-Scaling document" in view.notes["cost"]
    assert view.steps is not None and len(view.steps) == 1  # one level: no fit possible


def test_live_view_extends_with_new_bins(tmp_path: Path) -> None:
    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(12)
    live.flush()
    view = build_view(load_run(live.path))
    assert view.live
    assert view.bins is not None
    first = len(view.bins.starts)
    assert first == 11  # the newest second may still be arriving: left out
    live.write_seconds(10)
    live.flush()
    delta = extend_view(view, load_run(live.path))
    assert delta.first_new_bin == first
    assert len(view.bins.starts) == 21
    assert len(delta.load) == 10
    # the endpoint table and the cost inputs follow the run too
    stats = load_run(live.path).stats
    everything = [r for r in view.endpoint_rows if r.region == ALL and r.user_class == ALL]
    assert sum(r.requests for r in everything) == int(stats["requests"].sum())
    assert sum(view.requests_by_endpoint.values()) == int(stats["requests"].sum())
    assert view.bins.starts == sorted(set(view.bins.starts))
    live.write_seconds(38)
    done = live.finish()
    extend_view(view, load_run(done))
    assert not view.live and len(view.bins.starts) == 60


def test_empty_bins_read_as_missing_not_zero(tmp_path: Path) -> None:
    run = DemoRun(tmp_path, DemoSpec(steps=(1,), step_s=30, endpoints=1, regions=("asia",),
                                     user_classes=("creator",), think_s=5.0))
    run.write_seconds(30)
    view = build_view(load_run(run.finish()))
    assert view.bins is not None
    empty = [h for h in view.bins.overall if h.total == 0]
    assert empty, "a one-user run with 5 s think time has idle seconds"
    from dashboards.figures.overview import latency_figure

    ys = latency_figure(view)["data"][1]["y"]
    assert any(y is None for y in ys) and not any(y == 0 for y in ys)
    assert all(isinstance(y, float) and not math.isnan(y) for y in ys if y is not None)


def test_catalog_live_refreshes_match_a_full_read(tmp_path: Path) -> None:
    from dashboards.catalog import RunCatalog

    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(12)
    live.flush()
    catalog = RunCatalog(tmp_path, refresh_min_s=0.0)
    view = catalog.view(live.path.name)
    for seconds in (3, 7, 0, 9):
        live.write_seconds(seconds)
        live.flush()
        view = catalog.refresh(view.run_id)  # incremental: collectors.live.LiveRunReader
        fresh = build_view(load_run(live.path))
        assert view.live and view.bins is not None and fresh.bins is not None
        assert view.bins.starts == fresh.bins.starts
        assert [h.quantiles((0.5, 0.99)) for h in view.bins.overall] == [
            h.quantiles((0.5, 0.99)) for h in fresh.bins.overall]
        assert view.load["t"].tolist() == fresh.load["t"].tolist()
        assert view.endpoint_rows == fresh.endpoint_rows
    live.write_seconds(5)
    live.finish()
    view = catalog.refresh(view.run_id)
    done = build_view(load_run(live.path))
    assert not view.live and view.bins is not None and done.bins is not None
    assert view.bins.starts == done.bins.starts
    assert [h.total for h in view.bins.overall] == [h.total for h in done.bins.overall]
    catalog.stop()
