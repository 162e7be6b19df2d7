"""summary.json: what a gate reads, built from a run's histograms and series.

Latency figures come from merged HDR histograms (never from averaged per-second percentiles);
request and failure counts from the per-second stats; generator health from its samples.
Durations and rates come from the load's time span (the `load_span` event the load generator
writes: from the first stage to the moment the users were stopped), not from counting rows;
a run without that event (older, or synthetic) falls back to the span of its per-second rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from collectors._format import FORMAT_VERSION
from collectors.closedmodel import closed_model_section, user_pacing
from collectors.hdr import Histogram
from collectors.run import Run, quantile_label
from collectors.targets import PRODUCT_TARGETS
from collectors.validity import Validity

__all__ = ["SUMMARY_QUANTILES", "SLO_LATENCY_MS", "latency_figures", "load_span", "summarize"]

SUMMARY_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
SLO_LATENCY_MS = PRODUCT_TARGETS.p95_ms  # the product target (collectors.targets)


def latency_figures(hist: Histogram) -> dict[str, float]:
    """{p50, p90, p95, p99, p99.9, max, mean} in ms, plus the request count of the histogram."""
    figures = {quantile_label(q): hist.quantile(q) for q in SUMMARY_QUANTILES}
    figures["max"] = hist.max_ms
    figures["mean"] = round(hist.mean_ms, 3)
    figures["count"] = hist.total
    return figures


def summarize(
    run: Run, *, start: float | None = None, end: float | None = None,
    extra: Mapping[str, Any] | None = None, validity: Validity | None = None,
) -> dict[str, Any]:
    """The summary of `run`, over [start, end) epoch seconds when given (e.g. after warm-up).

    `extra` is merged in (one level deep for dict values, e.g. extra={"open_model": {...}});
    `validity` defaults to the run's own.
    """
    stats = _window(run.stats, start, end)
    load = _window(run.load, start, end)
    span = load_span(run)
    duration = (_span_duration_s(span, start, end) if span is not None
                else _duration_s(load if len(load) else stats, start, end))
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "run_id": run.run_id,
        "scenario_name": run.scenario_name,
        "window": {"start": start, "end": end},
        "duration_s": duration,
        "users_max": int(load["users"].max()) if len(load) else 0,
        **_counts(stats, duration),
        "latency_ms": latency_figures(run.histogram(start=start, end=end)),
        "slo": _slo(run.histogram(start=start, end=end)),
    }
    for field in ("region", "endpoint", "user_class"):
        summary[f"by_{field}"] = _by_scope(run, stats, field, duration, start, end)
    summary["generator"] = _generator(_window(run.generator, start, end))
    summary["open_model"] = _open_model(run, start, end)
    summary["closed_model"] = closed_model_section(run, start, end)  # {} unless closed model
    summary["validity"] = (validity or run.validity).to_json()
    if span is not None:
        summary["span"] = {"start": span[0], "end": span[1]}
        summary["cut_requests"] = _cut_requests(run)
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(summary.get(key), dict):
            summary[key] = {**summary[key], **value}
        else:
            summary[key] = value
    return summary


def _window(frame: pd.DataFrame, start: float | None, end: float | None) -> pd.DataFrame:
    if start is None and end is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["t"] >= start).to_numpy()
    if end is not None:
        keep &= (frame["t"] < end).to_numpy()
    return frame[keep]


def load_span(run: Run) -> tuple[float, float] | None:
    """(start, end) epoch seconds of the load, from the run's `load_span` event, or None."""
    for event in reversed(run.events_of("load_span")):
        try:
            start, end = float(event["start"]), float(event["end"])
        except (KeyError, TypeError, ValueError):
            continue
        return start, max(start, end)
    return None


def _span_duration_s(span: tuple[float, float], start: float | None, end: float | None
                     ) -> float:
    """Seconds of the load inside [start, end) (the whole span when neither is given)."""
    if start is not None and end is not None:  # a window given in full is its own length
        return max(0.0, float(end - start))
    low = span[0] if start is None else max(start, span[0])
    high = span[1] if end is None else min(end, span[1])
    return max(0.0, float(high - low))


def _cut_requests(run: Run) -> int:
    events = run.events_of("load_span")
    return int(events[-1].get("cut_requests") or 0) if events else 0


def _duration_s(frame: pd.DataFrame, start: float | None, end: float | None) -> float:
    if start is not None and end is not None:
        return float(end - start)
    if not len(frame):
        return 0.0
    seconds = np.unique(frame["t"].to_numpy())
    step = float(np.median(np.diff(seconds))) if seconds.size > 1 else 1.0
    return float(seconds[-1] - seconds[0] + step)


def _counts(stats: pd.DataFrame, duration: float) -> dict[str, float]:
    requests = int(stats["requests"].sum()) if len(stats) else 0
    failures = int(stats["failures"].sum()) if len(stats) else 0
    return _rates(requests, failures, duration)


def _rates(requests: int, failures: int, duration: float) -> dict[str, float]:
    return {
        "requests": requests,
        "failures": failures,
        "error_rate": failures / requests if requests else 0.0,
        "rps": requests / duration if duration > 0 else 0.0,
    }


def _slo(hist: Histogram) -> dict[str, float]:
    return {"latency_ms": SLO_LATENCY_MS,
            "share_within_latency": hist.fraction_at_or_below(SLO_LATENCY_MS)}


def _by_scope(
    run: Run, stats: pd.DataFrame, field: str, duration: float, start: float | None,
    end: float | None,
) -> dict[str, Any]:
    names = set(run.scopes(field))
    counted: dict[str, dict[str, float]] = {}
    if len(stats):
        sums = stats.groupby(field, sort=True)[["requests", "failures"]].sum()
        for name, requests, failures in zip(
            sums.index, sums["requests"], sums["failures"], strict=True
        ):
            counted[str(name)] = _rates(int(requests), int(failures), duration)
        names |= set(counted)
    result: dict[str, Any] = {}
    for name in sorted(names):
        scope = {field: name}
        hist = run.histogram(**scope, start=start, end=end)  # type: ignore[arg-type]
        result[name] = {
            **counted.get(name, _rates(0, 0, duration)),
            "latency_ms": latency_figures(hist),
        }
    return result


def _generator(generator: pd.DataFrame) -> dict[str, Any]:
    if not len(generator):
        return {"cpu_percent_p95": None, "lag_ms_p95": None, "cpu_percent_max": None,
                "lag_ms_max": None, "workers": 0}
    cpu = generator["cpu_percent"].to_numpy(dtype=float)
    lag = generator["lag_ms"].to_numpy(dtype=float)
    return {
        "cpu_percent_p95": float(np.percentile(cpu, 95)),
        "lag_ms_p95": float(np.percentile(lag, 95)),
        "cpu_percent_max": float(cpu.max()),
        "lag_ms_max": float(lag.max()),
        "workers": int(generator["worker"].nunique()),
    }


def _open_model(run: Run, start: float | None, end: float | None) -> dict[str, Any]:
    if not any(key[3] == "corrected" for key in run.histogram_keys()):
        return {}
    if user_pacing(run.scenario) is not None:  # closed model: corrected is in `closed_model`
        return {}
    corrected = run.histogram(kind="corrected", start=start, end=end)
    return {"corrected_latency_ms": latency_figures(corrected)}
