"""The dashboard shows the gate's recorded verdict and never judges a run itself."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors import load_run
from collectors.recorded_verdict import (
    NO_VERDICT,
    VerdictFormatError,
    read_verdict,
    unique_slugs,
)
from collectors.report import render_report
from collectors.targets import PRODUCT_TARGETS
from dashboards.analysis import Settings, capacity_for, cost_for
from dashboards.data import build_view
from dashboards.figures import compare_figure, latency_figure
from dashboards.pages import capacity_result, cost_sections
from dashboards.verdict_header import PROJECTIONS_LABEL, verdict_bar
from tests.dashboards.verdicts import recorded, report_rows

SEED_REGION_LATENCIES_MS = (35.0, 42.0, 48.0, 65.0)  # what the overview must no longer draw


def walk(component: Any) -> Iterator[Any]:
    """Every Dash component under `component` (itself first)."""
    yield component
    children = getattr(component, "children", None)
    items = children if isinstance(children, list | tuple) else [children]
    for child in items:
        if child is not None and not isinstance(child, str | int | float):
            yield from walk(child)


def text(component: Any) -> str:
    """The text a browser would show, roughly (children concatenated)."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    children = getattr(component, "children", None)
    items = children if isinstance(children, list | tuple) else [children]
    return " ".join(t for t in (text(c) for c in items) if t)


def by_id(component: Any, id_: str) -> Any:
    found = [c for c in walk(component) if getattr(c, "id", None) == id_]
    assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
    return found[0]


def by_data(component: Any, attribute: str) -> dict[str, Any]:
    """Elements carrying `data-<attribute>`, keyed by its value."""
    key = f"data-{attribute}"
    out = {}
    for c in walk(component):
        value = c.to_plotly_json()["props"].get(key) if hasattr(c, "to_plotly_json") else None
        if value is not None:
            assert value not in out, f"two elements with {key}={value!r}"
            out[value] = c
    return out


@pytest.mark.parametrize(("name", "status", "headline"),
                         [("passing", "pass", "PASS"), ("failing", "breach", "FAIL")])
def test_header_shows_the_recorded_verdict(judged_runs: dict[str, Path], name: str,
                                           status: str, headline: str) -> None:
    verdict = recorded(judged_runs[name])
    assert verdict["status"] == status  # the fixture made the run it says it made
    bar = verdict_bar(build_view(load_run(judged_runs[name])))
    assert text(by_id(bar, "verdict-status")) == headline == verdict["headline"]
    assert text(by_id(bar, "verdict-line")) == verdict["line"]
    tiles = by_data(bar, "check")
    keys = [f"{c['name']} {c['scope_label']}".strip() for c in verdict["checks"]]
    assert list(tiles) == keys and keys
    for check, key in zip(verdict["checks"], keys, strict=True):
        tile = tiles[key]
        (measured,) = [c for c in walk(tile) if getattr(c, "className", "") == "measured"]
        assert text(measured) == check["measured_text"]
        assert check["limit_text"] in text(tile) and check["source"] in text(tile)
        assert ("PASS" if check["ok"] else "FAIL") in text(tile)
    # projections stand apart, labelled, and say why one is unavailable
    projections = by_id(bar, "verdict-projections")
    assert PROJECTIONS_LABEL in text(projections)
    shown = by_data(projections, "projection")
    assert list(shown) == [p["name"] for p in verdict["projections"]]
    for projection in verdict["projections"]:
        expected = (projection["text"] if projection["available"]
                    else f"not available: {projection['reason']}")
        assert expected in text(shown[projection["name"]])
    assert not by_data(projections, "check")
    window = text(by_id(bar, "verdict-window"))
    assert f"{verdict['window']['duration_s']:.3g} s judged" in window


@pytest.mark.parametrize("name", ["passing", "failing"])
def test_header_and_html_report_agree(judged_runs: dict[str, Path], name: str) -> None:
    run = load_run(judged_runs[name])
    bar = verdict_bar(build_view(run))
    page = report_rows(render_report(run), "check")
    assert page.by_id["verdict-status"] == text(by_id(bar, "verdict-status"))
    assert page.by_id["verdict-line"] == text(by_id(bar, "verdict-line"))
    tiles = by_data(bar, "check")
    assert list(page.rows) == list(tiles)
    for key, cells in page.rows.items():
        (measured,) = [c for c in walk(tiles[key]) if getattr(c, "className", "") == "measured"]
        assert cells[2] == text(measured)


def test_a_run_without_a_verdict_shows_figures_and_no_judgement(
        judged_runs: dict[str, Path]) -> None:
    view = build_view(load_run(judged_runs["unjudged"]))
    bar = verdict_bar(view)
    assert text(by_id(bar, "verdict-line")) == NO_VERDICT
    shown = text(bar)
    for word in ("PASS", "FAIL", "REGRESSION", "INVALID"):
        assert word not in shown
    assert not by_data(bar, "check")
    p95 = view.summary["latency_ms"]["p95"]
    assert f"{p95:,.1f} ms" in text(by_id(bar, "figure-p95"))


def test_a_live_run_has_no_verdict_yet(tmp_path: Path) -> None:
    from testing.demo import DemoRun, DemoSpec

    live = DemoRun(tmp_path, DemoSpec(endpoints=3, step_s=10))
    live.write_seconds(12)
    live.flush()
    view = build_view(load_run(live.path))
    bar = verdict_bar(view)
    assert view.live and text(by_id(bar, "verdict-line")) == NO_VERDICT
    assert "so far" in text(by_id(bar, "figure-p95"))
    assert "PASS" not in text(bar) and "FAIL" not in text(bar)
    live.write_seconds(48)
    live.finish()


def test_an_unreadable_verdict_is_explained(judged_runs: dict[str, Path],
                                            tmp_path: Path) -> None:
    copy = Path(shutil.copytree(judged_runs["passing"], tmp_path / judged_runs["passing"].name))
    summary = json.loads((copy / "summary.json").read_text())
    summary["verdict"]["version"] = 99
    (copy / "summary.json").write_text(json.dumps(summary))
    bar = verdict_bar(build_view(load_run(copy)))
    assert "version 99" in text(by_id(bar, "verdict-line"))
    assert "PASS" not in text(bar)


def test_overview_draws_the_product_target_not_per_region_targets(
        judged_runs: dict[str, Path]) -> None:
    view = build_view(load_run(judged_runs["failing"]))
    figure = latency_figure(view)
    shapes = figure["layout"]["shapes"]
    assert len(shapes) == len(view.regions)
    for shape in shapes:
        assert shape["y0"] == shape["y1"] == PRODUCT_TARGETS.p95_ms
        assert shape["label"]["text"] == f"product target p95 < {PRODUCT_TARGETS.p95_ms:g} ms"
    assert not {s["y0"] for s in shapes} & set(SEED_REGION_LATENCIES_MS)
    assert [a["text"] for a in figure["layout"]["annotations"]] == view.regions
    assert "seed" not in json.dumps(figure["layout"]).lower()
    compare = compare_figure(view, view)["layout"]["shapes"]
    assert [s["y0"] for s in compare] == [PRODUCT_TARGETS.p95_ms]


def test_capacity_page_shows_a_what_if_beside_the_gates_projections(
        judged_runs: dict[str, Path]) -> None:
    view = build_view(load_run(judged_runs["failing"]))
    settings = Settings(users=20_000, think_time_s=5)
    side = capacity_result(capacity_for(view, settings), settings, view,
                           cost_for(view, settings))
    ids = {getattr(c, "id", None) for c in walk(side)}
    assert "cap-verdict" not in ids and {"cap-result", "cap-outcome"} <= ids
    what_if = by_id(side, "cap-result")
    assert "What-if (your inputs)" in text(what_if) and "20,000 users" in text(what_if)
    assert "verdict" not in text(what_if).lower()
    assert not {"PASS", "FAIL"} & set(text(what_if).split())
    gate = by_id(side, "gate-projections")
    assert f"{PRODUCT_TARGETS.users:,} users" in text(gate)
    for projection in recorded(judged_runs["failing"])["projections"]:
        assert projection["name"] in by_data(gate, "projection")
        if projection["available"]:
            assert projection["text"] in text(gate)
    cost = cost_sections(view, cost_for(view, settings), [])
    assert any(getattr(c, "id", None) == "gate-projections" for part in cost
               for c in walk(part))


def test_the_what_if_at_the_product_targets_is_the_gates_projection(
        judged_runs: dict[str, Path]) -> None:
    view = build_view(load_run(judged_runs["failing"]))
    plan = capacity_for(view, Settings()).plan
    (instances,) = [p for p in recorded(judged_runs["failing"])["projections"]
                    if p["unit"] == "instances"]
    assert instances["available"] and plan is not None and plan.instances_ci is not None
    assert plan.instances == instances["value"]
    assert [plan.instances_ci.low, plan.instances_ci.high] == pytest.approx(
        [instances["low"], instances["high"]])


def test_unique_slugs_and_bad_verdicts() -> None:
    assert unique_slugs(["p95 < 100ms region=asia", "p95 > 100ms region=asia", "x"]) == [
        "p95-100ms-region-asia", "p95-100ms-region-asia-2", "x"]
    assert read_verdict({}) is None and read_verdict({"verdict": None}) is None
    for bad in ([], {"format": "other", "version": 1}, {"format": "pitchey-verdict",
                                                        "version": 1, "status": "maybe"}):
        with pytest.raises(VerdictFormatError):
            read_verdict({"verdict": bad})
