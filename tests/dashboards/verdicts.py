"""Verdicts for synthetic runs, recorded in summary.json the way `pitchey run` records them
(the gate's own `evaluate_run` and `record_verdict`), and a reader of the HTML report's rows."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from collectors import load_run
from gate.evaluation import evaluate_run, record_verdict, spec_from_run

__all__ = ["ReportRows", "judge", "recorded", "report_rows"]


def judge(run_dir: Path) -> dict[str, Any]:
    """Judge a finished run by its scenario and record the verdict; returns what was recorded."""
    run = load_run(run_dir)
    record_verdict(run_dir, evaluate_run(run, spec_from_run(run)))
    return recorded(run_dir)


def recorded(run_dir: Path) -> dict[str, Any]:
    """The verdict summary.json holds now."""
    return dict(json.loads((run_dir / "summary.json").read_text())["verdict"])


class ReportRows(HTMLParser):
    """Table rows of an HTML report that carry a data-* attribute, and elements' text by id."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = f"data-{attribute}"
        self.rows: dict[str, list[str]] = {}
        self.by_id: dict[str, str] = {}
        self._row: str | None = None
        self._ids: list[tuple[str, str]] = []  # (tag, id) of elements being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get(self.attribute):
            self._row = str(found[self.attribute])
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self.rows[self._row].append("")
        if found.get("id"):
            self._ids.append((tag, str(found["id"])))
            self.by_id[str(found["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        if self._ids and self._ids[-1][0] == tag:
            self._ids.pop()

    def handle_data(self, data: str) -> None:
        if self._row is not None and self.rows[self._row]:
            self.rows[self._row][-1] += data
        for _tag, id_ in self._ids:
            self.by_id[id_] += data


def report_rows(page: str, attribute: str) -> ReportRows:
    """Parse `page` for rows carrying data-`attribute` (check, comparison, projection)."""
    parser = ReportRows(attribute)
    parser.feed(page)
    return parser
