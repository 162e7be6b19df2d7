"""The header on every page: the gate's verdict of the run, as summary.json records it.

The dashboard never judges a run. `verdict_bar` shows the recorded verdict (headline, line,
one tile per measured check, the baseline comparisons, then, apart and labelled, the
projections, and the window the gate judged); a run without one (older, or still being
written) gets "no verdict yet" and its measured figures, with no PASS or FAIL.

Ids a browser test reads: `verdict-status` (headline), `verdict-line`, `verdict-window`, one
element per check (`check-<slug>`, `data-check` = name and scope), per comparison
(`comparison-<slug>`, `data-comparison`) and per projection (`projection-<slug>`,
`data-projection` = name); without a verdict, `figure-<key>` per figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import html

from collectors.recorded_verdict import (
    NO_VERDICT,
    CheckRecord,
    ComparisonRecord,
    ProjectionRecord,
    RecordedVerdict,
    VerdictFormatError,
    read_verdict,
    unique_slugs,
)
from collectors.targets import PRODUCT_TARGETS
from dashboards.analysis import HeaderFigure, run_figures
from dashboards.data import RunView
from dashboards.style import CARD, COLORS, NOTE, STATUS_COLORS

__all__ = ["PROJECTIONS_LABEL", "gate_projections", "verdict_bar", "verdict_of"]

PROJECTIONS_LABEL = "Projections (model, not measured)"
CAPACITY_LABEL = "Measured capacity of one instance"
_SMALL = {"fontSize": "11px"}
_ROW = {"display": "flex", "gap": "8px", "flexWrap": "wrap"}
_GREY = COLORS[None]


def verdict_of(view: RunView) -> tuple[RecordedVerdict | None, str]:
    """The run's recorded verdict, or None and the sentence that says why there is none."""
    try:
        verdict = read_verdict(view.summary)
    except VerdictFormatError as exc:
        return None, (f"the verdict in summary.json cannot be read ({exc}); judge the run again "
                      "with pitchey gate RUN_DIR")
    return verdict, "" if verdict is not None else NO_VERDICT


def _tile(children: Sequence[Any | None], *, colors: tuple[str, str], id_: str, class_name: str,
          title: str = "", data: dict[str, Any] | None = None) -> html.Div:
    background, color = colors
    return html.Div([c for c in children if c is not None], id=id_,
                    className=f"tile {class_name}", title=title,
                    style={"background": background, "borderLeft": f"4px solid {color}",
                           "padding": "8px 10px", "borderRadius": "4px", "flex": "1",
                           "minWidth": "170px", "overflow": "hidden"},
                    **(data or {}))


def _data(kind: str, key: str) -> dict[str, Any]:
    """A `data-<kind>` attribute a browser test can select on."""
    return {f"data-{kind}": key}


def _label(text: str) -> html.Div:
    return html.Div(text, className="label", style={"fontSize": "12px", "color": "#57606a"})


def _value(text: str, color: str, class_name: str) -> html.Div:
    return html.Div(text, className=class_name,
                    style={"fontSize": "20px", "fontWeight": 600, "color": color})


def _check_tile(check: CheckRecord, slug: str) -> html.Div:
    colors = COLORS[check.ok]
    return _tile([
        _label(check.key),
        _value(check.measured_text, colors[1], "measured"),
        html.Div([html.Span("PASS" if check.ok else "FAIL", className="result"), " · limit ",
                  html.Span(check.limit_text, className="limit")],
                 style={**_SMALL, "color": colors[1]}),
        html.Div(check.source, className="source", style={**_SMALL, "color": "#57606a"}),
        html.Div(check.note, className="note", style={**_SMALL, "color": "#57606a"})
        if check.note else None,
    ], colors=colors, id_=f"check-{slug}", class_name="check", title=check.message,
        data=_data("check", check.key))


def _comparison_tile(comparison: ComparisonRecord, slug: str) -> html.Div:
    colors = COLORS[comparison.ok]
    return _tile([
        _label(f"{comparison.key} vs baseline"),
        _value(comparison.current_text, colors[1], "current"),
        html.Div(f"baseline {comparison.baseline_text} · {comparison.margin_text} · "
                 f"{comparison.verdict}", style={**_SMALL, "color": colors[1]}),
    ], colors=colors, id_=f"comparison-{slug}", class_name="comparison",
        title=comparison.message, data=_data("comparison", comparison.key))


def _projection_tile(projection: ProjectionRecord, slug: str) -> html.Div:
    color = "#0969da" if projection.available else _GREY[1]
    notes = [projection.range_text and f"range {projection.range_text}"]
    if projection.ok is False:
        notes.append("beyond its limit (a projection: it does not change the verdict)")
    assumptions = "\n".join(f"- {a}" for a in projection.assumptions)
    return _tile([
        _label(projection.name),
        _value(projection.shown_text, color, "projection-text"),
        html.Div(" · ".join(n for n in notes if n), className="range",
                 style={**_SMALL, "color": color}),
        html.Div(f"assumptions: {len(projection.assumptions)} (hover)"
                 if projection.assumptions else "", style={**_SMALL, "color": "#57606a"}),
    ], colors=("#f6f8fa", color), id_=f"projection-{slug}", class_name="projection",
        title=f"assumptions:\n{assumptions}" if assumptions else projection.reason,
        data=_data("projection", projection.name))


def _section(title: str, tiles: list[html.Div], id_: str) -> html.Div:
    return html.Div([html.Div(title, style={**NOTE, "fontWeight": 600, "margin": "8px 0 4px"}),
                     html.Div(tiles, style=_ROW)], id=id_)


def _caption(view: RunView, extra: str = "") -> html.Span:
    text = f"{view.scenario_name} · {view.status} · {view.duration_s:,.0f} s recorded"
    return html.Span(text + extra, style={**NOTE, "marginLeft": "12px"})


def _headline(text: str, colors: tuple[str, str]) -> html.Span:
    return html.Span(text, id="verdict-status", style={
        "background": colors[1], "color": "white", "padding": "4px 12px", "borderRadius": "4px",
        "fontWeight": 700, "fontSize": "18px"})


def _figure_tile(figure: HeaderFigure) -> html.Div:
    return _tile([_label(figure.label), _value(figure.text, _GREY[1], "value")],
                 colors=("#f6f8fa", _GREY[1]), id_=f"figure-{figure.key}", class_name="figure")


def _no_verdict_bar(view: RunView, reason: str) -> html.Div:
    label = ("live figures so far (not judged)" if view.live
             else "figures from summary.json (not judged)")
    return html.Div([
        html.Div([_headline("NO VERDICT", _GREY),
                  html.Span(reason, id="verdict-line", style={"marginLeft": "12px",
                                                              "fontWeight": 600}),
                  _caption(view)], style={"marginBottom": "8px"}),
        _section(label, [_figure_tile(f) for f in run_figures(view)], "verdict-figures"),
    ], style={**CARD, "background": _GREY[0]}, id="verdict-bar")


def verdict_bar(view: RunView) -> html.Div:
    """The header: the gate's recorded verdict of `view`'s run, or why there is none yet."""
    verdict, reason = verdict_of(view)
    if verdict is None:
        return _no_verdict_bar(view, reason)
    colors = STATUS_COLORS.get(verdict.status, _GREY)
    failed = len(verdict.failed_checks)
    parts: list[Any] = [
        html.Div([_headline(verdict.headline, colors),
                  html.Span(verdict.line, id="verdict-line",  # shown exactly as recorded
                            style={"marginLeft": "12px", "fontWeight": 600,
                                   "whiteSpace": "pre-wrap"})],
                 style={"marginBottom": "4px"}),
        html.Div([html.Span(f"judged window: {verdict.window.text}", id="verdict-window"),
                  _caption(view, f" · evaluated {verdict.evaluated_at}")], style=NOTE),
    ]
    if not verdict.valid:
        parts.append(html.Div("invalid run: " + ("; ".join(verdict.invalid_reasons)
                                                 or "no reason recorded"),
                              id="verdict-validity", style={**NOTE, "color": colors[1]}))
    checks = verdict.checks
    parts.append(_section(
        f"Measured checks ({len(checks)}, {failed} failed)",
        [_check_tile(c, s) for c, s in zip(checks, unique_slugs([c.key for c in checks]),
                                            strict=True)], "verdict-checks"))
    if verdict.comparisons:
        source = f" ({verdict.baseline_source})" if verdict.baseline_source else ""
        comparisons = verdict.comparisons
        parts.append(_section(f"Against the baseline{source}", [
            _comparison_tile(c, s) for c, s in zip(
                comparisons, unique_slugs([c.key for c in comparisons]), strict=True)],
            "verdict-comparisons"))
    if verdict.capacity_line:
        parts.append(html.Div([html.Span(f"{CAPACITY_LABEL}: ", style={"fontWeight": 600}),
                               html.Span(verdict.capacity_line, id="verdict-capacity")],
                              style={**NOTE, "marginTop": "8px"}))
    parts.append(_projections_section(verdict.projections))
    return html.Div(parts, style={**CARD, "background": colors[0]}, id="verdict-bar",
                    className=f"verdict verdict-{verdict.status}")


def _projections_section(projections: Sequence[ProjectionRecord]) -> html.Div:
    tiles = [_projection_tile(p, s) for p, s in zip(
        projections, unique_slugs([p.name for p in projections]), strict=True)]
    if not tiles:
        tiles = [html.Div("the verdict records no projections", style=NOTE)]
    return html.Div([
        html.Div([html.Span(PROJECTIONS_LABEL, style={"fontWeight": 600}),
                  html.Span(" · model outputs for the product targets; they never change the "
                            "verdict")],
                 style={**NOTE, "margin": "10px 0 4px", "borderTop": "1px dashed #d0d7de",
                        "paddingTop": "6px"}),
        html.Div(tiles, style=_ROW),
    ], id="verdict-projections")


def gate_projections(view: RunView) -> html.Div:
    """The gate's projections for the product targets, beside a page's what-if answer."""
    t = PRODUCT_TARGETS
    title = (f"The gate's projections for the product targets ({t.users:,} users, p95 < "
             f"{t.p95_ms:g} ms, ${t.budget_usd_month:,.0f}/month), from summary.json")
    verdict, reason = verdict_of(view)
    if verdict is None:
        body: Any = html.P(reason, style=NOTE)
    else:
        items = [html.Li([html.B(f"{p.name}: "), html.Span(p.shown_text),
                          html.Span(f" (range {p.range_text})" if p.range_text else "",
                                    style=NOTE)],
                         title="\n".join(p.assumptions), **_data("projection", p.name))
                 for p in verdict.projections]
        body = html.Ul(items) if items else html.P("the verdict records no projections",
                                                   style=NOTE)
    return html.Div([html.H4(PROJECTIONS_LABEL), html.P(title, style=NOTE), body],
                    id="gate-projections", style=CARD)
