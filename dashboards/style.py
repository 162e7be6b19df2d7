"""The dashboard's shared look: card and note styles, and colours for good/bad/unknown."""

from __future__ import annotations

__all__ = ["CARD", "COLORS", "NOTE", "STATUS_COLORS"]

# ok -> (background, foreground): True green, False red, None grey
COLORS = {True: ("#dafbe1", "#1a7f37"), False: ("#ffebe9", "#cf222e"), None: ("#eaeef2", "#57606a")}
# a recorded verdict's status -> (background, foreground)
STATUS_COLORS = {
    "pass": COLORS[True], "breach": COLORS[False], "regression": ("#fff8c5", "#9a6700"),
    "invalid": ("#f6f0ff", "#6639ba"),
}
CARD = {"border": "1px solid #d0d7de", "borderRadius": "6px", "padding": "12px",
        "marginBottom": "14px", "background": "white"}
NOTE = {"color": "#57606a", "fontSize": "13px"}
