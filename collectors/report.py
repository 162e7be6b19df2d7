"""`pitchey report`: one self-contained HTML file of a run (plotly.js inlined, no network).

A CI job attaches it next to the JUnit file. Sections: the gate's verdict as summary.json
records it (headline, line, measured checks, baseline comparisons, projections apart, the
judged window; the report never judges a run itself), key figures, load, latency over time and
by percentile, per-region / per-endpoint / per-user-class tables, generator health, scraped
service series, events, and where the run came from.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from collectors.recorded_verdict import (
    NO_VERDICT,
    RecordedVerdict,
    VerdictFormatError,
    read_verdict,
)
from collectors.report_figures import (
    SERVICE_PANELS,
    generator_figure,
    latency_figure,
    load_figure,
    service_figure,
    spectrum_figure,
)
from collectors.run import Run
from collectors.summary import summarize
from collectors.targets import PRODUCT_TARGETS

__all__ = ["render_report", "write_report"]

_LATENCY_KEYS = ("p50", "p90", "p95", "p99", "p99.9", "max", "mean")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid
#ddd;padding-bottom:4px} table{border-collapse:collapse;margin:8px 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left} .ok{color:#0a7d32;font-weight:600}
.bad{color:#c0392b;font-weight:600} .muted{color:#777;font-size:.85em}
.headline{color:#fff;padding:3px 12px;border-radius:4px;font-weight:700;font-size:1.2em}
.status-pass{background:#1a7f37}.status-breach{background:#cf222e}
.status-regression{background:#9a6700}.status-invalid{background:#6639ba}
.status-none{background:#57606a} .projections{border-top:1px dashed #bbb;margin-top:14px}
td.left,th.left{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;
padding:8px 14px;min-width:120px}.card b{display:block;font-size:1.3em}
"""


def write_report(run: Run, out: Path, *, service: pd.DataFrame | None = None,
                 service_source: str | None = None) -> Path:
    """Write the report of `run` to `out`; `service` replaces run.service (e.g. Prometheus)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run, service=service, service_source=service_source),
                   encoding="utf-8")
    return out


def render_report(run: Run, *, service: pd.DataFrame | None = None,
                  service_source: str | None = None) -> str:
    summary = run.summary if run.summary is not None else summarize(run)
    t0 = _start_time(run)
    figures: list[tuple[str, go.Figure]] = []
    if len(run.load):
        figures.append(("Load", load_figure(run, t0)))
    if run.histogram_keys():
        if len(run.percentile_series((0.5,), by=["region"])):
            figures.append(("Latency over time", latency_figure(run, t0)))
        figures.append(("Latency by percentile", spectrum_figure(run)))
    body = [
        _header(run, summary),
        _verdict_section(summary),
        _cards(summary),
        *_figure_block(figures, first=True),
        _section("By region", _scope_table(summary.get("by_region", {}), "region")),
        _section("By endpoint", _scope_table(summary.get("by_endpoint", {}), "endpoint")),
        _section("By user class", _scope_table(summary.get("by_user_class", {}), "user class")),
    ]
    if len(run.generator):
        body += _figure_block([("Load generator", generator_figure(run, t0))],
                              first=not figures)
    service_frame = run.service if service is None else service
    panels = [(title, service_figure(service_frame, t0, title, metric, how))
              for title, metric, how in SERVICE_PANELS]
    shown = [(title, fig) for title, fig in panels if fig is not None]
    source = service_source or "scraped during the run (timeseries/service.parquet)"
    body.append(f"<h2>Service series</h2><p class=muted>Source: {html.escape(source)}.</p>")
    if shown:
        body += _figure_block(shown, first=not figures and not len(run.generator), heading=False)
    else:
        body.append("<p class=muted>No service series recorded.</p>")
    body += [_section("Events", _events_table(run.events)), _provenance(run)]
    title = f"Pitchey run {run.run_id}"
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")


# pieces --------------------------------------------------------------------------------------
def _start_time(run: Run) -> float:
    candidates = [float(frame["t"].min()) for frame in (run.load, run.stats) if len(frame)]
    return min(candidates) if candidates else run.started_at.timestamp()


def _figure_block(figures: Sequence[tuple[str, go.Figure]], *, first: bool,
                  heading: bool = True) -> list[str]:
    parts = []
    if first and figures:
        parts.append(f"<script>{get_plotlyjs()}</script>")
    for title, fig in figures:
        if heading:
            parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False,
                                 config={"displaylogo": False, "responsive": True}))
    return parts


def _header(run: Run, summary: Mapping[str, Any]) -> str:
    """Title and provenance line; the run's own recorded validity only when no verdict is
    recorded (with one, the verdict section says whether the run is valid, as the gate did)."""
    line = (f"<h1>Run {html.escape(run.run_id)}</h1><p>Scenario <b>"
            f"{html.escape(run.scenario_name)}</b> against <b>{html.escape(run.target)}</b>, "
            f"status <b>{html.escape(run.status)}</b>")
    if summary.get("verdict") is not None:
        return line + ".</p>"
    validity = summary.get("validity") or run.validity.to_json()
    own = ("the run recorded itself as <span class=ok>valid</span>" if validity.get("valid")
           else "<span class=bad>INVALID run: " + html.escape(
               "; ".join(validity.get("reasons", [])) or "no reason given") + "</span>")
    return f"{line}, {own}.</p>"


def _cards(summary: Mapping[str, Any]) -> str:
    latency = summary.get("latency_ms", {})
    generator = summary.get("generator", {})
    slo = summary.get("slo", {})
    within = slo.get("latency_ms", PRODUCT_TARGETS.p95_ms)
    cards = [
        ("users (max)", _fmt(summary.get("users_max"))),
        ("requests", _fmt(summary.get("requests"))),
        ("requests/s", _fmt(summary.get("rps"))),
        ("error rate", f"{100 * float(summary.get('error_rate') or 0):.3f}%"),
        ("p50", f"{_fmt(latency.get('p50'))} ms"),
        (f"p95 (product target < {PRODUCT_TARGETS.p95_ms:g} ms)", f"{_fmt(latency.get('p95'))} ms"),
        ("p99", f"{_fmt(latency.get('p99'))} ms"),
        ("p99.9", f"{_fmt(latency.get('p99.9'))} ms"),
        ("max", f"{_fmt(latency.get('max'))} ms"),
        (f"within {_fmt(within)} ms", f"{100 * float(slo.get('share_within_latency', 1)):.3f}%"),
        ("generator CPU p95", f"{_fmt(generator.get('cpu_percent_p95'))}%"),
        ("generator lag p95", f"{_fmt(generator.get('lag_ms_p95'))} ms"),
        ("duration", f"{_fmt(summary.get('duration_s'))} s"),
    ]
    items = "".join(f"<div class=card><span class=muted>{html.escape(name)}</span>"
                    f"<b>{html.escape(value)}</b></div>" for name, value in cards)
    over = ("the window the gate judged" if "whole_run" in summary else "the whole run")
    return (f"<h2>Key figures</h2><p class=muted>Measured over {over} (summary.json); the "
            f"verdict above is the judgement.</p><div class=cards>{items}</div>")


# the verdict, as summary.json records it ---------------------------------------------------
def _verdict_section(summary: Mapping[str, Any]) -> str:
    try:
        verdict = read_verdict(summary)
    except VerdictFormatError as exc:
        return _no_verdict(f"the verdict in summary.json cannot be read ({exc}); judge the run "
                           "again with pitchey gate RUN_DIR")
    if verdict is None:
        return _no_verdict(NO_VERDICT)
    parts = [
        "<section id=verdict><h2>Verdict (the gate's, from summary.json)</h2>",
        f"<p><span id=verdict-status class='headline status-{html.escape(verdict.status)}'>"
        f"{html.escape(verdict.headline)}</span> <b id=verdict-line>"
        f"{html.escape(verdict.line)}</b></p>",
        f"<p class=muted id=verdict-window>Judged window: {html.escape(verdict.window.text)}; "
        f"evaluated {html.escape(verdict.evaluated_at)}; exit code {verdict.exit_code}.</p>",
    ]
    if not verdict.valid:
        reasons = "; ".join(verdict.invalid_reasons) or "no reason recorded"
        parts.append(f"<p class=bad id=verdict-validity>Invalid run: {html.escape(reasons)}</p>")
    parts += [_checks_table(verdict), _comparisons_table(verdict)]
    if verdict.capacity_line:
        parts.append(f"<p><b>Measured capacity of one instance:</b> <span id=verdict-capacity>"
                     f"{html.escape(verdict.capacity_line)}</span></p>")
    parts += [_projections_table(verdict), "</section>"]
    return "".join(parts)


def _no_verdict(reason: str) -> str:
    return ("<section id=verdict><h2>Verdict</h2><p><span id=verdict-status class='headline "
            "status-none'>no verdict recorded</span> <b id=verdict-line>"
            f"{html.escape(reason)}</b></p></section>")


def _row(cells: Sequence[str], *, attrs: str = "", left_from: int = 0, tag: str = "td") -> str:
    """A table row; cells from `left_from` on are left-aligned (text, not numbers)."""
    return (f"<tr{attrs}>" + "".join(
        f"<{tag} class=left>{c}</{tag}>" if i >= left_from else f"<{tag}>{c}</{tag}>"
        for i, c in enumerate(cells)) + "</tr>")


def _head(*names: str, left_from: int = 0) -> str:
    return _row([html.escape(n) for n in names], left_from=left_from, tag="th")


def _result(ok: bool) -> str:
    return "<span class=ok>pass</span>" if ok else "<span class=bad>FAIL</span>"


def _checks_table(verdict: RecordedVerdict) -> str:
    if not verdict.checks:
        return "<h3>Measured checks</h3><p class=muted>The verdict records no checks.</p>"
    rows = [_row([html.escape(c.name), html.escape(c.scope_label), html.escape(c.measured_text),
                  html.escape(c.limit_text), _result(c.ok), _fmt(c.samples),
                  html.escape(c.source + (f" ({c.note})" if c.note else ""))],
                 attrs=f' data-check="{html.escape(c.key)}"', left_from=6)
            for c in verdict.checks]
    failed = len(verdict.failed_checks)
    return (f"<h3>Measured checks ({len(verdict.checks)}, {failed} failed)</h3>"
            "<table id=verdict-checks>"
            + _head("check", "scope", "measured", "limit", "result", "samples", "source",
                    left_from=6)
            + "".join(rows) + "</table>")


def _comparisons_table(verdict: RecordedVerdict) -> str:
    if not verdict.comparisons:
        return ""
    source = f" ({html.escape(verdict.baseline_source)})" if verdict.baseline_source else ""
    rows = [_row([html.escape(c.name), html.escape(c.scope_label), html.escape(c.current_text),
                  html.escape(c.baseline_text), html.escape(c.margin_text),
                  html.escape(c.verdict)], attrs=f' data-comparison="{html.escape(c.key)}"')
            for c in verdict.comparisons]
    return (f"<h3>Against the baseline{source}</h3><table id=verdict-comparisons>"
            + _head("comparison", "scope", "current", "baseline", "margin", "result")
            + "".join(rows) + "</table>")


def _projections_table(verdict: RecordedVerdict) -> str:
    head = ("<div class=projections><h3>Projections (model, not measured)</h3><p class=muted>"
            "Model outputs for the product targets; they never change the verdict or the exit "
            "code.</p>")
    if not verdict.projections:
        return head + "<p class=muted>The verdict records no projections.</p></div>"
    rows = [_row([html.escape(p.name), html.escape(p.shown_text), html.escape(p.range_text),
                  html.escape("; ".join(p.assumptions))],
                 attrs=f' data-projection="{html.escape(p.name)}"', left_from=1)
            for p in verdict.projections]
    return (head + "<table id=verdict-projections>"
            + _head("projection", "value", "range", "assumptions", left_from=1) + "".join(rows)
            + "</table></div>")


def _scope_table(scopes: Mapping[str, Any], label: str) -> str:
    if not scopes:
        return "<p class=muted>No data.</p>"
    head = "".join(f"<th>{h}</th>" for h in (label, "requests", "failures", "error rate", "req/s",
                                              *(f"{k} ms" for k in _LATENCY_KEYS)))
    rows = []
    for name, figures in sorted(scopes.items()):
        latency = figures.get("latency_ms", {})
        cells = [html.escape(str(name)), _fmt(figures.get("requests")),
                 _fmt(figures.get("failures")),
                 f"{100 * float(figures.get('error_rate') or 0):.3f}%",
                 _fmt(figures.get("rps"))] + [_fmt(latency.get(k)) for k in _LATENCY_KEYS]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _events_table(events: Sequence[Mapping[str, Any]], limit: int = 500) -> str:
    if not events:
        return "<p class=muted>No events.</p>"
    t0 = float(events[0]["t"])
    rows = []
    for event in events[:limit]:
        details = {k: v for k, v in event.items() if k not in ("t", "type")}
        rows.append(f"<tr><td>{float(event['t']) - t0:.1f}</td><td>"
                    f"{html.escape(str(event['type']))}</td><td style='text-align:left'>"
                    f"{html.escape(json.dumps(details, default=str))}</td></tr>")
    more = (f"<p class=muted>{len(events) - limit} more events not shown.</p>"
            if len(events) > limit else "")
    return ("<table><tr><th>s after first</th><th>type</th><th>details</th></tr>"
            + "".join(rows) + "</table>" + more)


def _provenance(run: Run) -> str:
    manifest = run.manifest
    packages = ", ".join(f"{k} {v}" for k, v in sorted((manifest.get("packages") or {}).items()))
    machine = manifest.get("machine") or {}
    items = [
        ("started", manifest.get("started_at")), ("ended", manifest.get("ended_at")),
        ("git commit", manifest.get("git_commit") or "unknown"),
        ("machine", f"{machine.get('hostname')} · {machine.get('platform')} · "
                    f"{machine.get('cpu_count')} CPUs"),
        ("packages", packages), ("topology", json.dumps(manifest.get("topology", {}))),
        ("format", f"{manifest.get('format')} v{manifest.get('format_version')}"),
    ]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>"
                   f"{html.escape(str(v))}</td></tr>" for k, v in items)
    return f"<h2>Provenance</h2><table>{rows}</table>"


def _section(title: str, content: str) -> str:
    return f"<h2>{html.escape(title)}</h2>{content}"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)
