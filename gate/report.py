"""Render a run's verdict: the console table and line, JUnit XML, JSON and a Markdown comment.

Pure: a :class:`~gate.verdict.RunVerdict` plus a little run metadata in, text out. Every
output shows the same verdict with the same numbers: the measured checks (what was measured,
the limit, where the limit comes from), the comparisons with a baseline, the run's validity,
and the projections, labelled as model outputs that never fail anything. ``pitchey run`` and
``pitchey gate`` both print :func:`console_table`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gate.verdict import Check, ComparisonOutcome, Projection, RunVerdict

__all__ = ["CAPACITY_LABEL", "ReportMeta", "console_table", "dumps", "to_json", "to_junit",
           "to_markdown"]

PROJECTIONS_LABEL = "projections (model, not measured; they never fail the gate)"
CAPACITY_LABEL = "measured capacity of one instance"


@dataclass(frozen=True)
class ReportMeta:
    """Where the verdict came from: shown in every output."""

    run_id: str
    scenario: str
    target: str = ""
    run_dir: str = ""


# --- JSON: the verdict itself ----------------------------------------------------------------


def to_json(verdict: RunVerdict, meta: ReportMeta | None = None) -> dict[str, Any]:
    """The verdict's JSON, exactly as summary.json records it."""
    del meta
    return verdict.to_json()


def dumps(verdict: RunVerdict, meta: ReportMeta | None = None) -> str:
    return json.dumps(to_json(verdict, meta), indent=2) + "\n"


# --- JUnit XML -------------------------------------------------------------------------------


def to_junit(verdict: RunVerdict, meta: ReportMeta) -> str:
    """One testcase per check, per comparison, for validity and per projection (skipped)."""
    suite = ET.Element("testsuite", {
        "name": f"pitchey-gate.{meta.scenario}",
        "tests": str(1 + len(verdict.checks) + len(verdict.comparisons)
                     + len(verdict.projections)),
        "failures": str(len(verdict.failed) + len(verdict.regressions)),
        "errors": "0" if verdict.validity.valid else "1",
        "skipped": str(len(verdict.projections)
                       + sum(1 for c in verdict.comparisons if c.verdict == "no data")),
        "time": f"{verdict.window.duration_s:.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", meta.run_id), ("target", meta.target),
                        ("status", verdict.status), ("headline", verdict.headline),
                        ("exit_code", str(int(verdict.exit_code))), ("line", verdict.line),
                        ("baseline", verdict.baseline or "")):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    _validity_case(suite, verdict)
    for check in verdict.checks:
        _check_case(suite, check)
    for comparison in verdict.comparisons:
        _comparison_case(suite, comparison)
    for projection in verdict.projections:
        _projection_case(suite, projection)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def _validity_case(suite: ET.Element, verdict: RunVerdict) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": "gate.run", "name": "run is valid"})
    if not verdict.validity.valid:
        reasons = verdict.validity.reasons
        error = ET.SubElement(case, "error", {"type": "RunInvalid", "message": "; ".join(reasons)})
        error.text = "\n".join(reasons)


def _check_case(suite: ET.Element, check: Check) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": "gate.checks", "name": check.key})
    if not check.ok:
        failure = ET.SubElement(case, "failure", {"type": "CheckFailed",
                                                  "message": check.message})
        failure.text = (f"{check.source}\nmeasured {check.measured_text} over {check.samples} "
                        f"requests, limit {check.limit_text}")
    out = ET.SubElement(case, "system-out")
    out.text = check.message


def _comparison_case(suite: ET.Element, comparison: ComparisonOutcome) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": "gate.baseline",
                                              "name": comparison.key})
    if not comparison.ok:
        ET.SubElement(case, "failure", {"type": "Regression", "message": comparison.message})
    elif comparison.verdict == "no data":
        ET.SubElement(case, "skipped", {"message": "no data in the run or the baseline"})
    out = ET.SubElement(case, "system-out")
    out.text = comparison.message + _intervals(comparison)


def _intervals(comparison: ComparisonOutcome) -> str:
    cur, base = comparison.current_interval, comparison.baseline_interval
    if cur is None or base is None:
        return ""
    return (f"\ncurrent interval {cur[0]:.6g}..{cur[1]:.6g}, "
            f"baseline interval {base[0]:.6g}..{base[1]:.6g}")


def _projection_case(suite: ET.Element, projection: Projection) -> None:
    """A projection is information: skipped, never failed, whatever it says."""
    case = ET.SubElement(suite, "testcase", {"classname": "gate.projections",
                                              "name": projection.name})
    ET.SubElement(case, "skipped", {"message": f"projection: {projection.text}"})
    out = ET.SubElement(case, "system-out")
    out.text = "\n".join(("assumptions:", *projection.assumptions))


# --- Markdown (pull-request comment) -----------------------------------------------------------

_ICONS = {"pass": "✅", "breach": "❌", "regression": "📉", "invalid": "⚠️"}


def to_markdown(verdict: RunVerdict, meta: ReportMeta) -> str:
    window = verdict.window
    lines = [
        f"### {_ICONS[verdict.status]} Performance gate: {verdict.headline} "
        f"(exit {int(verdict.exit_code)})",
        "",
        _md(verdict.line),
        "",
        f"Scenario `{meta.scenario}`, run `{meta.run_id}`"
        + (f" against `{meta.target}`" if meta.target else "")
        + f"; {window.duration_s:.0f} s judged after a {window.warmup_s:g} s warm-up.",
        "",
    ]
    if not verdict.validity.valid:
        lines += ["**The run is invalid; its figures cannot be trusted:**", ""]
        lines += [f"- {_md(reason)}" for reason in verdict.validity.reasons] + [""]
    lines += _markdown_checks(verdict.checks)
    if verdict.comparisons:
        lines += _markdown_comparisons(verdict.comparisons, verdict.baseline)
    if verdict.capacity is not None:
        lines += ["", f"**{CAPACITY_LABEL}:** {_md(str(verdict.capacity['line']))}"]
    if verdict.projections:
        lines += _markdown_projections(verdict.projections)
    return "\n".join(lines).rstrip() + "\n"


def _markdown_checks(checks: Sequence[Check]) -> list[str]:
    if not checks:
        return ["No measured checks.", ""]
    lines = ["| | Check | Scope | Measured | Limit | Source | Requests |",
             "|---|---|---|---|---|---|---:|"]
    for check in checks:
        icon = "✅" if check.ok else "❌"
        lines.append(f"| {icon} | `{_md(check.name)}` | {_md(_scope(check))} | "
                     f"{_md(check.measured_text)} | {_md(check.limit_text)} | "
                     f"{_md(check.source)} | {check.samples} |")
    return [*lines, ""]


def _markdown_comparisons(comparisons: Sequence[ComparisonOutcome],
                          baseline: str | None) -> list[str]:
    lines = [f"Against baseline `{baseline}`:", "",
             "| | Metric | Scope | Current | Baseline | Tolerated | Verdict |",
             "|---|---|---|---|---|---|---|"]
    for comparison in comparisons:
        icon = "📉" if not comparison.ok else "✅"
        lines.append(
            f"| {icon} | `{comparison.metric}` | {_md(comparison.scope_label)} | "
            f"{comparison.current_text} | {comparison.baseline_text} | "
            f"{comparison.tolerated_text} | {comparison.verdict} |")
    return [*lines, ""]


def _markdown_projections(projections: Sequence[Projection]) -> list[str]:
    lines = ["Projections (model, not measured; they never fail the gate):", "",
             "| Projection | Answer | Assumptions |", "|---|---|---|"]
    for projection in projections:
        lines.append(f"| {_md(projection.name)} | {_md(projection.text)} | "
                     f"{_md('; '.join(projection.assumptions))} |")
    return [*lines, ""]


def _scope(check: Check) -> str:
    label = check.scope_label
    if check.latency_kind == "corrected" and "kind=" not in label:
        label += " (corrected)" if label != "global" else " (corrected time)"
    return label


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


# --- console ---------------------------------------------------------------------------------


def console_table(verdict: RunVerdict) -> str:
    """What ``pitchey run`` and ``pitchey gate`` print: checks, comparisons, projections,
    invalidity reasons, then the verdict line (the same text summary.json records)."""
    window = verdict.window
    head = (f"judged: run {verdict.run_id or '?'} ({verdict.scenario or 'unnamed'}), "
            f"{window.duration_s:.0f} s after a {window.warmup_s:g} s warm-up")
    rows: list[Sequence[str]] = [("", "check", "scope", "measured", "limit", "requests",
                                  "source")]
    for check in verdict.checks:
        rows.append(("PASS" if check.ok else "FAIL", check.name, _scope(check),
                     check.measured_text, check.limit_text, str(check.samples),
                     check.source))
    lines = [head, *_columns(rows)]
    for check in verdict.checks:
        if check.note and not check.ok:
            lines.append(f"  {check.key}: {check.note}")
    if verdict.comparisons:
        lines += ["", f"baseline {verdict.baseline}:"]
        comparison_rows: list[Sequence[str]] = [
            ("", "metric", "scope", "current", "baseline", "tolerated", "verdict")]
        for comparison in verdict.comparisons:
            comparison_rows.append((
                "ok" if comparison.ok else "REGR", comparison.metric, comparison.scope_label,
                comparison.current_text, comparison.baseline_text, comparison.tolerated_text,
                comparison.verdict))
        lines += _columns(comparison_rows)
    if verdict.capacity is not None:
        lines += ["", f"{CAPACITY_LABEL}: {verdict.capacity['line']}"]
    if verdict.projections:
        lines += ["", PROJECTIONS_LABEL + ":"]
        lines += _columns([("", projection.name, projection.text)
                           for projection in verdict.projections])
    for reason in verdict.validity.reasons:
        lines.append(f"INVALID: {reason}")
    lines.append(verdict.line)
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]
