"""What `pitchey run` prints: a progress line a second and a one-screen summary at the end.

Pure formatting: figures in, text out. Percentiles come from merged HDR histograms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from collectors.hdr import Histogram
from collectors.units import format_duration
from loadtests.ingest import WholeCell

__all__ = ["progress_line", "summary_text"]


def progress_line(progress: Mapping[str, Any], targets_ms: Mapping[str, float]) -> str:
    elapsed = float(progress.get("elapsed_s", 0.0))
    planned = float(progress.get("planned_s", 0.0))
    requests = int(progress.get("requests", 0))
    failures = int(progress.get("failures", 0))
    rate = failures / requests if requests else 0.0
    p95 = progress.get("p95_by_region") or {}
    regions = " ".join(
        f"{region} {value:.0f}ms{'!' if value > targets_ms.get(region, float('inf')) else ''}"
        for region, value in p95.items()
    ) or "-"
    left = max(0.0, planned - elapsed)
    return (
        f"[{format_duration(elapsed):>6}/{format_duration(planned)}] "
        f"users {int(progress.get('users', 0))} | {float(progress.get('rps', 0.0)):.1f} req/s | "
        f"p95 {regions} | failures {failures} ({rate:.2%}) | {format_duration(left)} left"
    )


def _merged(cells: Iterable[WholeCell]) -> tuple[int, int, Histogram]:
    cells = list(cells)
    return (sum(c.requests for c in cells), sum(c.failures for c in cells),
            Histogram.merge(c.hist for c in cells))


def _group(cells: Sequence[WholeCell], key: str) -> dict[str, list[WholeCell]]:
    grouped: dict[str, list[WholeCell]] = {}
    for cell in cells:
        grouped.setdefault(str(getattr(cell, key)), []).append(cell)
    return dict(sorted(grouped.items()))


def summary_text(
    *, scenario_name: str, run_dir: Path | None, whole: Sequence[WholeCell],
    final: Mapping[str, Any] | None, duration_s: float, targets_ms: Mapping[str, float],
    notes: Sequence[str] = (),
) -> str:
    service = [c for c in whole if c.kind == "service"]
    corrected = [c for c in whole if c.kind == "corrected"]
    requests, failures, hist = _merged(service)
    lines = [
        f"== {scenario_name}: {requests} requests in {format_duration(duration_s)} "
        f"({requests / duration_s if duration_s else 0:.1f} req/s), "
        f"{failures} failures ({failures / requests if requests else 0:.2%})",
        "latency (ms, service time, HDR):  " + _percentiles(hist),
    ]
    if corrected:
        lines.append("latency (ms, from intended start): " + _percentiles(
            _merged(corrected)[2]))
    lines.append("by region:")
    for region, cells in _group(service, "region").items():
        n, f, h = _merged(cells)
        target = targets_ms.get(region)
        verdict = "" if target is None else (
            f"  target {target:g} -> {'ok' if h.quantile(0.95) <= target else 'MISSED'}")
        lines.append(f"  {region:<10} {n:>8} req  p50 {h.quantile(0.5):7.1f}  "
                     f"p95 {h.quantile(0.95):7.1f}  p99 {h.quantile(0.99):7.1f}  "
                     f"fail {f / n if n else 0:6.2%}{verdict}")
    lines.append("by user class:")
    for user_class, cells in _group(service, "user_class").items():
        n, f, h = _merged(cells)
        lines.append(f"  {user_class:<10} {n:>8} req  p95 {h.quantile(0.95):7.1f}  "
                     f"fail {f / n if n else 0:6.2%}")
    lines.append("slowest endpoints (p95):")
    endpoints = [(e, *_merged(c)) for e, c in _group(service, "endpoint").items()]
    for endpoint, n, f, h in sorted(endpoints, key=lambda x: -x[3].quantile(0.95))[:6]:
        lines.append(f"  {endpoint:<44} {n:>7} req  p95 {h.quantile(0.95):7.1f}  "
                     f"fail {f / n if n else 0:6.2%}")
    lines.extend(_self_check(final, notes))
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)


def _percentiles(hist: Histogram) -> str:
    return "  ".join(
        f"{label} {hist.quantile(q):.1f}"
        for label, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99),
                         ("p99.9", 0.999))
    ) + f"  max {hist.max_ms:.1f}"


def _self_check(final: Mapping[str, Any] | None, notes: Sequence[str]) -> list[str]:
    if final is None:
        return ["self-check: no final report from the load generator (run cut short)"]
    generator = final.get("generator") or {}
    lines = [
        f"load generator: CPU p95 {float(generator.get('cpu_percent_p95', 0)):.0f}%, "
        f"loop lag p95 {float(generator.get('lag_ms_p95', 0)):.1f} ms, "
        f"{int(generator.get('workers', 0))} worker(s)"
    ]
    open_model = final.get("open_model")
    if open_model:
        lines.append(
            f"open model: {open_model['arrivals_started']} of {open_model['arrivals_planned']} "
            f"arrivals started, {open_model['late_starts']} late "
            f"(> {open_model['late_tolerance_ms']:g} ms), max lateness "
            f"{open_model['max_lateness_ms']:.1f} ms"
        )
    validity = final.get("validity") or {}
    reasons = list(validity.get("reasons", [])) + list(notes)
    if validity.get("valid", False) and not notes:
        lines.append("run VALID: the load generator kept up")
    else:
        lines.append("run INVALID: " + "; ".join(dict.fromkeys(reasons)))
    return lines
