"""Shared look of every figure, built as plain Plotly figure dicts.

Figures are dicts ({"data": [...], "layout": {...}}), not `plotly.graph_objects.Figure`:
dcc.Graph takes them as they are, and skipping graph_objects' validation and deep copies
makes a 1-hour run's overview about ten times cheaper to build. Stacked panels share one
x-axis and get a y-axis each (`stacked_axes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AMBER", "BLUE", "GREEN", "GREY", "LOG_MS_TICKS", "PURPLE", "RED", "Figure",
    "base_layout", "hline", "log_ms_axis", "note_figure", "panel_title", "stacked_axes",
    "vline",
]

Figure = dict[str, Any]

GREEN = "#1a7f37"
RED = "#cf222e"
AMBER = "#bf8700"
GREY = "#6e7781"
BLUE = "#0969da"
PURPLE = "#8250df"
LOG_MS_TICKS = tuple(float(m * 10**e) for e in range(6) for m in (1, 2, 5))


def base_layout(*, height: int, title: str | None = None, uirevision: str | None = None,
                **extra: Any) -> dict[str, Any]:
    """Common margins, template and legend; `uirevision` keeps zoom across updates."""
    layout: dict[str, Any] = {
        "template": "plotly_white", "height": height,
        "margin": {"l": 70, "r": 30, "t": 90 if title else 60, "b": 45},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0},
        "hovermode": "x unified",
    }
    if title:
        layout["title"] = {"text": title, "x": 0, "y": 0.98, "yanchor": "top",
                           "yref": "container", "font": {"size": 15}}
    if uirevision:
        layout["uirevision"] = uirevision
    layout.update(extra)
    return layout


def _tick_text(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def log_ms_axis(**extra: Any) -> dict[str, Any]:
    """A log y-axis in milliseconds with readable 1-2-5 ticks."""
    return {"type": "log", "tickvals": list(LOG_MS_TICKS),
            "ticktext": [_tick_text(v) for v in LOG_MS_TICKS], **extra}


def stacked_axes(heights: Sequence[float], gap: float = 0.06) -> list[tuple[float, float]]:
    """y-domains (bottom, top) for panels stacked top to bottom with relative `heights`."""
    usable = 1.0 - gap * (len(heights) - 1)
    total = float(sum(heights))
    domains, top = [], 1.0
    for height in heights:
        bottom = top - usable * height / total
        domains.append((max(bottom, 0.0), top))
        top = bottom - gap
    return domains


def panel_title(text: str, top: float) -> dict[str, Any]:
    """A centred title just above a panel whose y-domain ends at `top`."""
    return {"text": text, "x": 0.5, "y": top, "xref": "paper", "yref": "paper",
            "xanchor": "center", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 13}}


def hline(y: float, *, yref: str = "y", color: str = RED, dash: str = "dash",
          xref: str = "x domain") -> dict[str, Any]:
    return {"type": "line", "xref": xref, "x0": 0, "x1": 1, "yref": yref, "y0": y, "y1": y,
            "line": {"color": color, "dash": dash, "width": 1}}


def vline(x: float, *, color: str = GREY, dash: str = "dot", xref: str = "x") -> dict[str, Any]:
    return {"type": "line", "xref": xref, "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1,
            "line": {"color": color, "dash": dash, "width": 1}}


def note_figure(message: str, *, height: int = 220) -> Figure:
    """An empty figure that says why there is nothing to draw."""
    return {"data": [], "layout": base_layout(
        height=height, xaxis={"visible": False}, yaxis={"visible": False},
        annotations=[{"text": message, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper",
                      "yref": "paper", "font": {"size": 14, "color": GREY}}])}
