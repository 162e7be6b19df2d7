"""The cost page shows the assumptions' tornado and the document's own estimate beside the
model (components inspected as built, as the verdict views' tests do: no browser needed)."""

from __future__ import annotations

from pathlib import Path

from dash import html

from collectors import load_run
from collectors.models.tornado import cost_tornado
from dashboards.analysis import Settings, cost_for
from dashboards.data import build_view
from dashboards.pages import cost_sections
from tests.dashboards.test_verdict_views import by_id, text, walk


def test_the_cost_page_shows_the_tornado_and_the_documents_estimate(demo_run: Path) -> None:
    view = build_view(load_run(demo_run))
    cost = cost_for(view, Settings())
    page = html.Div(cost_sections(view, cost, []))
    spread = cost_tornado(cost)
    assert spread is not None and spread.largest is not None

    figure = by_id(page, "cost-tornado").figure
    low_side, high_side = figure["data"]
    assert len(low_side["y"]) == len(spread.bars) == len(high_side["y"])
    assert spread.largest.label in low_side["y"][-1]  # the largest swing drawn on top
    assert f"${spread.central_usd:,.0f}" in text(by_id(page, "cost-range"))
    assert spread.largest.label in text(page)

    table = text(by_id(page, "cost-reference"))
    for item, usd in (("Workers", "$1,356"), ("KV Storage", "$369"), ("R2 Storage", "$255"),
                      ("Durable Objects", "$463"), ("Database", "$1,380"), ("Total", "$3,823")):
        assert item in table and usd in table
    assert f"${cost.total_usd:,.0f}" in table  # the model's column, same items
    check = text(by_id(page, "cost-reference-check"))
    assert "matches the document's stated total of $3,823/month" in check

    grid = by_id(page, "cost-drivers")
    bases = {row["label"]: row["basis"] for row in grid.rowData}
    assert bases["KV reads"] == "measured"
    assert bases["KV writes"].startswith("assumed (")
    assert not [c for c in walk(page) if getattr(c, "id", None) == "cost-tornado-note"]
