"""What `pitchey run` prints: a progress line a second and a one-screen summary at the end.

Pure formatting: figures in, text out. The end-of-run summary is read from the run's
summary.json after the gate recorded its verdict there, so its figures are those of the
window the gate judged (after the warm-up), from merged HDR histograms; the gate's table and
verdict line (`gate.report.console_table`) follow it. Nothing here judges: a region's live
p95 is only marked with "!" while it is above the product's p95 target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from collectors.units import format_duration

__all__ = ["progress_line", "summary_text"]

_QUANTILES = ("p50", "p90", "p95", "p99", "p99.9")


def progress_line(progress: Mapping[str, Any], p95_target_ms: float) -> str:
    elapsed = float(progress.get("elapsed_s", 0.0))
    planned = float(progress.get("planned_s", 0.0))
    requests = int(progress.get("requests", 0))
    failures = int(progress.get("failures", 0))
    rate = failures / requests if requests else 0.0
    p95 = progress.get("p95_by_region") or {}
    regions = " ".join(
        f"{region} {value:.0f}ms{'!' if value > p95_target_ms else ''}"
        for region, value in p95.items()
    ) or "-"
    left = max(0.0, planned - elapsed)
    return (
        f"[{format_duration(elapsed):>6}/{format_duration(planned)}] "
        f"users {int(progress.get('users', 0))} | {float(progress.get('rps', 0.0)):.1f} req/s | "
        f"p95 {regions} | failures {failures} ({rate:.2%}) | {format_duration(left)} left"
    )


def summary_text(
    *, scenario_name: str, run_dir: Path | None, summary: Mapping[str, Any],
    final: Mapping[str, Any] | None, notes: Sequence[str] = (),
) -> str:
    """The run's figures as summary.json records them (over the gated window once the gate
    recorded its verdict), then the load generator's self-check."""
    latency = summary.get("latency_ms") or {}
    lines = [
        f"== {scenario_name}: {int(summary.get('requests', 0))} requests in "
        f"{format_duration(float(summary.get('duration_s') or 0.0))} {_window(summary)} "
        f"({float(summary.get('rps', 0.0)):.1f} req/s), {int(summary.get('failures', 0))} "
        f"failures ({float(summary.get('error_rate', 0.0)):.2%})" + _cut(summary),
        "latency (ms, service time, HDR):  " + _percentiles(latency),
    ]
    corrected = (summary.get("open_model") or {}).get("corrected_latency_ms")
    if corrected:
        lines.append("latency (ms, from intended start): " + _percentiles(corrected))
    hiccups = _hiccups(summary, final)
    if hiccups:
        lines.append("generator hiccups (ms, own loop):  " + _percentiles(hiccups))
    lines.append("by region:")
    for region, entry in _entries(summary, "by_region"):
        figures = entry.get("latency_ms") or {}
        lines.append(f"  {region:<10} {int(entry.get('requests', 0)):>8} req  "
                     f"p50 {_ms(figures, 'p50')}  p95 {_ms(figures, 'p95')}  "
                     f"p99 {_ms(figures, 'p99')}  fail {_fail(entry)}")
    lines.append("by user class:")
    for user_class, entry in _entries(summary, "by_user_class"):
        lines.append(f"  {user_class:<10} {int(entry.get('requests', 0)):>8} req  "
                     f"p95 {_ms(entry.get('latency_ms') or {}, 'p95')}  fail {_fail(entry)}")
    lines.append("slowest endpoints (p95):")
    endpoints = _entries(summary, "by_endpoint")
    for endpoint, entry in sorted(endpoints, key=lambda x: -_p95(x[1]))[:6]:
        lines.append(f"  {endpoint:<44} {int(entry.get('requests', 0)):>7} req  "
                     f"p95 {_ms(entry.get('latency_ms') or {}, 'p95')}  fail {_fail(entry)}")
    lines.extend(_self_check(final, notes, summary))
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)


def _window(summary: Mapping[str, Any]) -> str:
    window = summary.get("window") or {}
    warmup = window.get("warmup_s") if isinstance(window, Mapping) else None
    if isinstance(warmup, int | float) and "verdict" in summary:
        return f"judged after a {format_duration(float(warmup))} warm-up"
    return "(whole run)"


def _cut(summary: Mapping[str, Any]) -> str:
    """Requests in flight when the load stopped: begun, never answered, not in the counts."""
    cut = summary.get("cut_requests")
    if not isinstance(cut, int):
        return ""
    return f", {cut} cut (in flight when the load stopped)"


def _entries(summary: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
    entries = summary.get(key) or {}
    return [(str(name), entry) for name, entry in sorted(entries.items())
            if isinstance(entry, Mapping) and int(entry.get("requests", 0))]


def _p95(entry: Mapping[str, Any]) -> float:
    value = (entry.get("latency_ms") or {}).get("p95")
    return float(value) if isinstance(value, int | float) else 0.0


def _ms(figures: Mapping[str, Any], key: str) -> str:
    value = figures.get(key)
    return f"{float(value):7.1f}" if isinstance(value, int | float) else f"{'-':>7}"


def _fail(entry: Mapping[str, Any]) -> str:
    return f"{float(entry.get('error_rate', 0.0)):6.2%}"


def _percentiles(figures: Mapping[str, Any]) -> str:
    return "  ".join(f"{label} {_ms(figures, label).strip()}" for label in _QUANTILES) \
        + f"  max {_ms(figures, 'max').strip()}"


def _hiccups(summary: Mapping[str, Any], final: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The generator's hiccups over the judged window (summary.json, else the final report)."""
    for source in (summary.get("generator"), (final or {}).get("generator")):
        if isinstance(source, Mapping) and isinstance(source.get("hiccup_ms"), Mapping):
            return dict(source["hiccup_ms"])
    return {}


def _self_check(final: Mapping[str, Any] | None, notes: Sequence[str],
                summary: Mapping[str, Any] | None = None) -> list[str]:
    """The generator's figures and the run's validity: the gate's (which adds the checks
    within the generator's hiccups) once it recorded its verdict, else the self-check's.
    "kept up" only when nothing fell behind: no reason, no note, no late arrival."""
    if final is None:
        return ["self-check: no final report from the load generator (run cut short)"]
    generator = final.get("generator") or {}
    hiccups = _hiccups(summary or {}, final)
    lines = [
        f"load generator: CPU p95 {float(generator.get('cpu_percent_p95', 0)):.0f}%, "
        f"loop lag p95 {float(generator.get('lag_ms_p95', 0)):.1f} ms"
        + (f", hiccup p99 {float(hiccups.get('p99', 0)):.1f} ms, max "
           f"{float(hiccups.get('max', 0)):.1f} ms" if hiccups else "")
        + f", {int(generator.get('workers', 0))} worker(s)"
    ]
    open_model = final.get("open_model")
    late = 0
    if open_model:
        late = int(open_model.get("late_starts", 0))
        dropped = int(open_model.get("dropped", 0))
        no_free_user = int(open_model.get("no_free_user", 0))
        lines.append(
            f"open model: {open_model['arrivals_started']} of {open_model['arrivals_planned']} "
            f"arrivals started, {late} late "
            f"(> {open_model['late_tolerance_ms']:g} ms), max lateness "
            f"{open_model['max_lateness_ms']:.1f} ms"
            + (f", {no_free_user} due with every user busy (the pool ran out)"
               if no_free_user else "")
        )
        late += dropped + no_free_user
    verdict = (summary or {}).get("verdict")
    validity = (verdict.get("validity") if isinstance(verdict, Mapping) else None) \
        or final.get("validity") or {}
    reasons = list(validity.get("reasons", [])) + list(notes)
    if validity.get("valid", False) and not notes:
        lines.append("run VALID: the load generator kept up" if not late else
                     "run VALID: some arrivals started late or never, within the self-check's "
                     "limits (see the open model line)")
    else:
        lines.append("run INVALID: " + "; ".join(dict.fromkeys(reasons)))
    return lines
