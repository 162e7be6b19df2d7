"""Render a gate verdict: JUnit XML, JSON, a Markdown PR comment and a console table.

Pure: a :class:`~gate.core.GateResult` plus a little run metadata in, text out.
JUnit has one testcase per threshold (its failure message states the measured value and the
limit), one per baseline comparison, and one for the run's validity, so CI systems that
render JUnit show exactly which check failed and why.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gate.core import (
    EXIT_BREACH,
    EXIT_INVALID,
    EXIT_PASS,
    EXIT_REGRESSION,
    CheckResult,
    Comparison,
    GateResult,
)

__all__ = [
    "VERDICTS", "ReportMeta", "console_table", "dumps", "to_json", "to_junit", "to_markdown",
]

VERDICTS = {
    EXIT_PASS: "pass",
    EXIT_BREACH: "threshold breached",
    EXIT_REGRESSION: "regression against the baseline",
    EXIT_INVALID: "run invalid",
}


@dataclass(frozen=True)
class ReportMeta:
    """Where the verdict came from: shown in every output."""

    run_id: str
    scenario: str
    target: str = ""
    warmup_s: float = 0.0
    baseline: str | None = None
    run_dir: str = ""


# --- JSON ----------------------------------------------------------------------------------


def to_json(result: GateResult, meta: ReportMeta) -> dict[str, Any]:
    code = result.exit_code
    return {
        "format": "pitchey-gate-result",
        "format_version": 1,
        "run_id": meta.run_id,
        "run_dir": meta.run_dir,
        "scenario": meta.scenario,
        "target": meta.target,
        "baseline": meta.baseline,
        "exit_code": code,
        "verdict": VERDICTS[code],
        "passed": code == EXIT_PASS,
        "window": {"warmup_s": meta.warmup_s, "duration_s": result.window.duration_s,
                   "users_max": result.window.users_max},
        "validity": {"valid": result.valid, "reasons": list(result.reasons)},
        "aborted": list(result.aborted),
        "thresholds": [_check_json(c) for c in result.checks],
        "comparisons": [_comparison_json(c) for c in result.comparisons],
    }


def _check_json(check: CheckResult) -> dict[str, Any]:
    threshold = check.threshold
    return {
        "name": threshold.name,
        "threshold": threshold.text,
        "where": threshold.where,
        "metric": threshold.metric,
        "scope": threshold.scope_dict,
        "op": threshold.op,
        "limit": threshold.limit,
        "measured": check.measured,
        "unit": _unit(threshold.kind.value),
        "passed": check.passed,
        "samples": check.samples,
        "latency_kind": check.latency_kind,
        "abort_on_fail": threshold.abort_on_fail,
        "message": check.message,
    }


def _comparison_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "metric": comparison.metric,
        "scope": dict(comparison.scope),
        "baseline": comparison.baseline,
        "current": comparison.current,
        "baseline_interval": comparison.baseline_interval,
        "current_interval": comparison.current_interval,
        "tolerated": comparison.tolerated,
        "unit": _unit(comparison.kind.value),
        "regressed": comparison.regressed,
        "verdict": comparison.verdict,
        "message": comparison.message,
    }


def _unit(kind: str) -> str:
    return {"latency": "ms", "rate": "fraction", "throughput": "requests/s"}.get(kind, "count")


def dumps(result: GateResult, meta: ReportMeta) -> str:
    return json.dumps(to_json(result, meta), indent=2) + "\n"


# --- JUnit XML -------------------------------------------------------------------------------


def to_junit(result: GateResult, meta: ReportMeta) -> str:
    suite = ET.Element("testsuite", {
        "name": f"pitchey-gate.{meta.scenario}",
        "tests": str(len(result.checks) + len(result.comparisons) + 1 + bool(result.aborted)),
        "failures": str(len(result.breaches) + len(result.regressions) + bool(result.aborted)),
        "errors": "0" if result.valid else "1",
        "skipped": str(sum(1 for c in result.comparisons if c.verdict == "no data")),
        "time": f"{result.window.duration_s:.3f}",
    })
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", meta.run_id), ("target", meta.target),
                        ("exit_code", str(result.exit_code)),
                        ("verdict", VERDICTS[result.exit_code]),
                        ("baseline", meta.baseline or "")):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    _validity_case(suite, result)
    for check in result.checks:
        _threshold_case(suite, check)
    for comparison in result.comparisons:
        _comparison_case(suite, comparison)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def _validity_case(suite: ET.Element, result: GateResult) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": "gate.run", "name": "run is valid"})
    if not result.valid:
        error = ET.SubElement(case, "error", {"type": "RunInvalid",
                                              "message": "; ".join(result.reasons)})
        error.text = "\n".join(result.reasons)
    if result.aborted:
        case = ET.SubElement(suite, "testcase", {"classname": "gate.run",
                                                  "name": "run was not aborted"})
        ET.SubElement(case, "failure", {"type": "AbortedOnFail",
                                        "message": "; ".join(result.aborted)})


def _threshold_case(suite: ET.Element, check: CheckResult) -> None:
    case = ET.SubElement(suite, "testcase", {"classname": "gate.thresholds",
                                              "name": check.threshold.name})
    if not check.passed:
        failure = ET.SubElement(case, "failure", {"type": "ThresholdBreached",
                                                  "message": check.message})
        failure.text = (f"{check.threshold.where}: {check.threshold.text}\n"
                        f"measured {check.measured_text} over {check.samples} requests, "
                        f"limit {check.limit_text}")
    out = ET.SubElement(case, "system-out")
    out.text = check.message


def _comparison_case(suite: ET.Element, comparison: Comparison) -> None:
    name = f"{comparison.metric} vs baseline [{comparison.scope_label}]"
    case = ET.SubElement(suite, "testcase", {"classname": "gate.baseline", "name": name})
    if comparison.regressed:
        ET.SubElement(case, "failure", {"type": "Regression", "message": comparison.message})
    elif comparison.verdict == "no data":
        ET.SubElement(case, "skipped", {"message": "no data in the run or the baseline"})
    out = ET.SubElement(case, "system-out")
    out.text = comparison.message + _intervals(comparison)


def _intervals(comparison: Comparison) -> str:
    if comparison.current_interval is None or comparison.baseline_interval is None:
        return ""
    cur, base = comparison.current_interval, comparison.baseline_interval
    return (f"\ncurrent interval {comparison.text(cur[0])}..{comparison.text(cur[1])}, "
            f"baseline interval {comparison.text(base[0])}..{comparison.text(base[1])}")


# --- Markdown (pull-request comment) ---------------------------------------------------------

_ICONS = {EXIT_PASS: "✅", EXIT_BREACH: "❌", EXIT_REGRESSION: "📉", EXIT_INVALID: "⚠️"}


def to_markdown(result: GateResult, meta: ReportMeta) -> str:
    code = result.exit_code
    lines = [
        f"### {_ICONS[code]} Performance gate: {VERDICTS[code]} (exit {code})",
        "",
        f"Scenario `{meta.scenario}`, run `{meta.run_id}`"
        + (f" against `{meta.target}`" if meta.target else "")
        + f"; {result.window.duration_s:.0f} s measured after a {meta.warmup_s:g} s warm-up, "
        f"peak {result.window.users_max} users.",
        "",
    ]
    if not result.valid:
        lines += ["**The run is invalid; its figures cannot be trusted:**", ""]
        lines += [f"- {_md(reason)}" for reason in result.reasons] + [""]
    if result.aborted:
        lines += ["**The run was stopped early by a threshold:**", ""]
        lines += [f"- {_md(reason)}" for reason in result.aborted] + [""]
    lines += _markdown_thresholds(result.checks)
    if result.comparisons:
        lines += _markdown_comparisons(result.comparisons, meta)
    return "\n".join(lines).rstrip() + "\n"


def _markdown_thresholds(checks: Sequence[CheckResult]) -> list[str]:
    if not checks:
        return ["No thresholds are configured.", ""]
    lines = ["| | Threshold | Scope | Measured | Limit | Requests |",
             "|---|---|---|---|---|---:|"]
    for check in checks:
        icon = "✅" if check.passed else "❌"
        lines.append(f"| {icon} | `{_md(check.threshold.metric)}` | {_md(_scope(check))} | "
                     f"{check.measured_text} | {_md(check.limit_text)} | {check.samples} |")
    return [*lines, ""]


def _markdown_comparisons(comparisons: Sequence[Comparison], meta: ReportMeta) -> list[str]:
    lines = [f"Against baseline `{meta.baseline}`:", "",
             "| | Metric | Scope | Current | Baseline | Tolerated | Verdict |",
             "|---|---|---|---|---|---|---|"]
    for comparison in comparisons:
        icon = "📉" if comparison.regressed else "✅"
        lines.append(
            f"| {icon} | `{comparison.metric}` | {_md(comparison.scope_label)} | "
            f"{comparison.text(comparison.current)} | {comparison.text(comparison.baseline)} | "
            f"{comparison.text(comparison.tolerated)} | {comparison.verdict} |")
    return [*lines, ""]


def _scope(check: CheckResult) -> str:
    label = check.threshold.scope_label
    if check.latency_kind == "corrected":
        label += " (corrected)" if label != "global" else " (corrected time)"
    return label


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


# --- console -------------------------------------------------------------------------------


def console_table(result: GateResult, meta: ReportMeta) -> str:
    rows: list[Sequence[str]] = [("", "threshold", "scope", "measured", "limit", "requests")]
    for check in result.checks:
        rows.append(("PASS" if check.passed else "FAIL", check.threshold.metric, _scope(check),
                     check.measured_text, check.limit_text, str(check.samples)))
    lines = _columns(rows)
    if result.comparisons:
        lines.append("")
        lines.append(f"baseline {meta.baseline}:")
        comparison_rows: list[Sequence[str]] = [
            ("", "metric", "scope", "current", "baseline", "tolerated", "verdict")]
        for comparison in result.comparisons:
            comparison_rows.append((
                "REGR" if comparison.regressed else "ok", comparison.metric,
                comparison.scope_label, comparison.text(comparison.current),
                comparison.text(comparison.baseline), comparison.text(comparison.tolerated),
                comparison.verdict))
        lines += _columns(comparison_rows)
    for reason in result.reasons:
        lines.append(f"INVALID: {reason}")
    for reason in result.aborted:
        lines.append(f"ABORTED: {reason}")
    code = result.exit_code
    lines.append(f"gate: {VERDICTS[code]} (exit {code}) - run {meta.run_id}")
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]

