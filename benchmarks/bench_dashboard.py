"""Dashboard benchmark: every callback on a 1-hour run within 1 s; page interactive in 3 s.

A synthetic 1-hour run (3,600 s x 4 regions x 20 endpoints x 3 user classes, written with
collectors' RunWriter by testing.demo) is prepared once (cold: every interval histogram
decoded), reloaded from the dashboard's disk cache, and then every callback is timed on it,
including the JSON encoding Dash does before answering. The overview page is then opened in
headless Chromium and timed until every figure is drawn and no callback is pending.
A live tick is timed on a run still being written (10 minutes in), and the background refresh
of that run at 2.5, 5 and 10 minutes: incremental (collectors.live) beside a full re-read.

PITCHEY_BENCH_DASHBOARD_SECONDS shortens the run (default 3600).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CALLBACK_TARGET_S = 1.0
PAGE_TARGET_S = 3.0
PAGE_LOADS = 4


def _timed(function: Callable[[], Any], repeat: int = 3) -> float:
    """Median wall time of `function()` plus Dash's JSON encoding of what it returns."""
    from dash._utils import to_json

    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        to_json(function())
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _write_run(root: Path, seconds: int, *, finish: bool = True) -> tuple[Path, float, int]:
    from testing.demo import DemoRun, DemoSpec

    levels = (50, 100, 150, 200, 250, 300)
    spec = DemoSpec(steps=levels, step_s=max(seconds // len(levels), 1), endpoints=20, pool=40)
    started = time.perf_counter()
    run = DemoRun(root, spec, flush_interval_s=30.0)
    run.write_seconds(seconds)
    path = run.finish() if finish else (run.flush() or run.path)
    lines = sum(1 for _ in (path / "histograms" / "intervals.jsonl").open())
    return path, time.perf_counter() - started, lines


def _callbacks(runs: Path, cache: Path, run_id: str) -> tuple[dict[str, float], Any]:
    from dashboards.analysis import Settings
    from dashboards.app import _Callbacks, create_app
    from dashboards.catalog import RunCatalog

    catalog = RunCatalog(runs, cache_dir=cache)
    app = create_app(runs, catalog=catalog)
    cb = _Callbacks(app, catalog, Settings(), 2000)
    started = time.perf_counter()
    catalog.view(run_id)
    figures = {"cached_load_s": time.perf_counter() - started}
    search = f"?run={run_id}"
    calls: dict[str, Callable[[], Any]] = {
        "route_overview": lambda: cb.route("/", search),
        "route_endpoints": lambda: cb.route("/endpoints", search),
        "route_capacity": lambda: cb.route("/capacity", search),
        "route_cost": lambda: cb.route("/cost", search),
        "route_compare": lambda: cb.route("/compare", search),
        "endpoints_filter": lambda: cb.endpoints("asia", "investor", run_id),
        "capacity_what_if": lambda: cb.capacity(5.5, 20.0, 150.0, 40.0, run_id),
        "cost_what_if": lambda: cb.cost(5.2, 10.0, run_id),
        "compare": lambda: cb.compare(run_id, run_id),
        "verdict_tick": lambda: cb.refresh_verdict(1, run_id),
    }
    for name, call in calls.items():
        figures[f"callback_{name}_s"] = _timed(call)
    return figures, app


def _page(app: Any, run_id: str) -> dict[str, float]:
    from dashboards.browser import BrowserMissing, chromium, console_errors, serve, wait_page_ready

    figures: dict[str, float] = {}
    try:
        with serve(app.server) as url, chromium() as driver:
            for name, path, ready in (("overview", "/", "#heatmap-graph"),
                                      ("endpoints", "/endpoints", "#ep-grid .ag-row"),
                                      ("capacity", "/capacity", "#cap-result"),
                                      ("cost", "/cost", "#cost-total"),
                                      ("compare", "/compare", "#page-compare, .message")):
                samples = []
                for _ in range(1 + PAGE_LOADS):  # the first visit fills the browser cache
                    driver.get("about:blank")
                    started = time.perf_counter()
                    driver.get(f"{url}{path}?run={run_id}")
                    wait_page_ready(driver, ready, timeout_s=60)
                    samples.append(time.perf_counter() - started)
                figures[f"page_{name}_first_s"] = samples[0]
                figures[f"page_{name}_s"] = statistics.median(samples[1:])
                figures[f"page_{name}_max_s"] = max(samples[1:])
            figures["console_errors"] = float(len(console_errors(driver)))
    except BrowserMissing as exc:
        print(f"  page timing skipped: {exc}")
    return figures


LIVE_CHECKPOINTS_S = (150, 300, 600)  # run length at which a live refresh is timed


def _live_tick(root: Path) -> dict[str, float]:
    """A live tick's callback time, and the background refresh of a run being written as it
    grows: the incremental reader (what the refresher does) beside a full re-read with
    load_run (what it did before), each after 2 s of new data."""
    from dash._utils import to_json

    from collectors.run import load_run
    from dashboards.analysis import Settings
    from dashboards.app import _Callbacks, create_app
    from dashboards.catalog import RunCatalog
    from dashboards.data import apply_extension, build_view, compute_extension
    from testing.demo import DemoRun, DemoSpec

    run = DemoRun(root, DemoSpec(steps=(50, 100, 150), step_s=200, endpoints=20, pool=40),
                  flush_interval_s=30.0)
    run.write_seconds(LIVE_CHECKPOINTS_S[0] - 2)
    run.flush()
    catalog = RunCatalog(root, refresh_min_s=0.0)
    cb = _Callbacks(create_app(root, catalog=catalog), catalog, Settings(), 2000)
    view = catalog.view(run.path.name)
    full_view = build_view(load_run(run.path))
    figures: dict[str, float] = {}
    written = LIVE_CHECKPOINTS_S[0] - 2
    for checkpoint in LIVE_CHECKPOINTS_S:
        run.write_seconds(checkpoint - 2 - written)
        run.flush()
        catalog._refresh_once(view, tables=False)  # catch up (not timed)
        apply_extension(full_view, compute_extension(full_view, load_run(run.path), tables=False))
        sent = {"run": view.run_id, "load": len(view.load),
                "bins": len(view.bins.starts) if view.bins else 0, "regions": view.regions}
        run.write_seconds(2)
        run.flush()
        written = checkpoint
        started = time.perf_counter()
        catalog._refresh_once(view, tables=False)  # what the background refresher does per tick
        figures[f"live_refresh_{checkpoint}s_s"] = time.perf_counter() - started
        started = time.perf_counter()  # the same refresh from a full re-read
        apply_extension(full_view, compute_extension(full_view, load_run(run.path), tables=False))
        figures[f"live_full_reread_{checkpoint}s_s"] = time.perf_counter() - started
        started = time.perf_counter()
        catalog._refresh_once(view, tables=True)  # every 10 s: endpoint table, cost inputs
        figures[f"live_refresh_tables_{checkpoint}s_s"] = time.perf_counter() - started
    started = time.perf_counter()
    to_json(cb.live_tick(1, sent, view.run_id))
    figures["live_tick_s"] = time.perf_counter() - started
    figures["live_refresh_s"] = figures[f"live_refresh_{LIVE_CHECKPOINTS_S[-1]}s_s"]
    catalog.stop()
    return figures


def main() -> dict[str, float]:
    seconds = int(os.environ.get("PITCHEY_BENCH_DASHBOARD_SECONDS", "3600"))
    from dashboards.catalog import RunCatalog

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = Path(tmp)
        runs, cache = root / "runs", root / "cache"
        path, written_s, lines = _write_run(runs, seconds)
        print(f"synthetic run: {seconds} s x 4 regions x 20 endpoints x 3 user classes, "
              f"{lines:,} interval histograms, written in {written_s:.1f} s")
        started = time.perf_counter()
        RunCatalog(runs, cache_dir=cache).view(path.name)
        cold = time.perf_counter() - started
        print(f"cold preparation (every histogram decoded, then cached on disk): {cold:.1f} s")
        figures, app = _callbacks(runs, cache, path.name)
        print(f"view reloaded from the disk cache: {figures['cached_load_s']:.2f} s")
        callback_times = {k: v for k, v in figures.items() if k.startswith("callback_")}
        for name, value in callback_times.items():
            mark = "ok" if value <= CALLBACK_TARGET_S else "OVER"
            label = name.removeprefix("callback_").removesuffix("_s")
            print(f"  {label:18} {value:6.3f} s  {mark}")
        slowest = max(callback_times.values())
        print(f"slowest callback {slowest:.3f} s (target <= {CALLBACK_TARGET_S:g} s)")
        page = _page(app, path.name)
        for name, value in page.items():
            if name.startswith("page_"):
                print(f"  {name:24} {value:6.2f} s")
        if "page_overview_s" in page:
            medians = [v for k, v in page.items() if k.startswith("page_")
                       and not k.endswith(("first_s", "max_s"))]
            print(f"page interactive, median of {PAGE_LOADS} loads per page: slowest page "
                  f"{max(medians):.2f} s (target <= {PAGE_TARGET_S:g} s); console errors: "
                  f"{page.get('console_errors', 0):.0f}")
        live = _live_tick(root / "live")
        print("background refresh of a run being written, after 2 s of new data "
              "(incremental reader | full re-read with load_run | incremental + tables):")
        for checkpoint in LIVE_CHECKPOINTS_S:
            print(f"  at {checkpoint:4d} s: {live[f'live_refresh_{checkpoint}s_s']:6.3f} s | "
                  f"{live[f'live_full_reread_{checkpoint}s_s']:6.3f} s | "
                  f"{live[f'live_refresh_tables_{checkpoint}s_s']:6.3f} s")
        print(f"live tick on a 10-minute run being written: {live['live_tick_s']:.3f} s "
              f"(target <= {CALLBACK_TARGET_S:g} s); new points appear within "
              f"max(2 s, refresh {live['live_refresh_s']:.3f} s); the incremental refresh "
              "should stay roughly constant as the run grows")
    return {"run_seconds": float(seconds), "interval_histograms": float(lines),
            "write_s": written_s, "cold_prepare_s": cold, **figures,
            "callback_max_s": slowest, **live, **page}


if __name__ == "__main__":
    main()
