"""THE judgement of a run: ``evaluate_run(run, spec, baseline) -> RunVerdict``.

One evaluation gives a run its one verdict: the scenario's thresholds and the product's
measured targets over the gated window (after the warm-up), the run's validity, the
comparison with a baseline when one is given, and, labelled apart, the capacity and cost
projections for the product's targets. ``record_verdict`` stores it in the run directory's
summary.json; every view reads it from there.

Product targets (``collectors.targets.PRODUCT_TARGETS``) are measured checks unless the
scenario says ``gate: {product_targets: false}``: p95 below the target overall and in each
region the run has (when it has more than one), and the error rate below the target overall.
A scenario threshold identical to one of them is judged once, under the scenario's name.

A latency check that fails by less than the load generator's own hiccup at its percentile
(``gate.core.generator_doubt``, from the hiccups the run recorded in summary.json's
``generator`` block) cannot be judged: the run is invalid, with both figures.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from collectors.hdr import Histogram, HistogramDecodeError
from collectors.targets import PRODUCT_TARGETS, ProductTargets
from collectors.validity import Validity
from gate.core import (
    CheckResult,
    Comparison,
    GeneratorDoubt,
    Hiccups,
    Window,
    check_scopes,
    compare,
    generator_doubt,
    measure,
    run_validity,
)
from gate.projections import product_inputs, project_with_capacity
from gate.record import record_verdict
from gate.thresholds import GateSpec, MetricKind, Threshold, format_value, parse_gate_spec
from gate.verdict import (
    Check,
    ComparisonOutcome,
    RunVerdict,
    VerdictWindow,
    format_measure,
    status_of,
    verdict_line,
)
from gate.window import bounds_of, threshold_aborts, window_from_run

if TYPE_CHECKING:
    from collectors.run import Run

__all__ = [
    "PRODUCT_SOURCE",
    "evaluate_run",
    "hiccups_of",
    "product_thresholds",
    "record_verdict",
    "spec_from_run",
]

PRODUCT_SOURCE = "product target"
_TARGETS_DOC = "docs/targets.md"


def spec_from_run(run: Run) -> GateSpec:
    """The gate spec of the scenario the run recorded (what ``pitchey run`` and ``pitchey gate``
    without flags judge by). Raises ThresholdError naming the manifest for a bad threshold."""
    return parse_gate_spec(run.scenario, source=f"{run.path / 'manifest.json'} scenario")


def evaluate_run(
    run: Run, spec: GateSpec, baseline: Window | None = None, *,
    targets: ProductTargets = PRODUCT_TARGETS, baseline_source: str | None = None,
    evaluated_at: datetime | None = None,
) -> RunVerdict:
    """Judge ``run`` by ``spec`` (and ``baseline``); raises GateConfigError for a scope that
    matches nothing the run recorded. ``evaluated_at`` defaults to now (UTC)."""
    bounds = bounds_of(run, spec.warmup_s)
    window = replace(window_from_run(run, spec.warmup_s), aborted=threshold_aborts(run, spec))
    check_scopes(spec, window)
    judged = _judged(spec, window, targets, run.scenario_name)
    hiccups = hiccups_of(run)
    checks, doubts = [], []
    for threshold, where in judged:
        result = measure(threshold, window, spec.tags)
        doubt = (generator_doubt(result, window, spec.tags, hiccups)
                 if hiccups is not None else None)
        checks.append(_check(result, where, doubt))
        if doubt is not None:
            doubts.append(doubt.reason)
    checks += [_abort_check(reason) for reason in window.aborted]
    comparisons = tuple(_comparison(c, spec) for c in compare(spec, window, baseline)) \
        if baseline is not None else ()
    valid, reasons = run_validity(window)
    validity = Validity(valid, reasons)
    if doubts:
        validity = validity.combine(Validity.invalid(*doubts))
    source = baseline_source if baseline is not None else None
    status = status_of(validity, checks, comparisons)
    moment = (evaluated_at or datetime.now(UTC)).astimezone(UTC)
    projections, capacity = project_with_capacity(run, bounds, product_inputs(run, targets))
    return RunVerdict(
        status=status, line=verdict_line(status, validity, checks, comparisons, source),
        evaluated_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        window=VerdictWindow(bounds.start, bounds.end, bounds.warmup_s, bounds.duration_s),
        validity=validity, checks=tuple(checks), comparisons=comparisons, baseline=source,
        projections=projections, capacity=capacity,
        run_id=run.run_id, scenario=run.scenario_name,
    )


# --- what is judged ----------------------------------------------------------------------------


def product_thresholds(window: Window, targets: ProductTargets = PRODUCT_TARGETS
                       ) -> tuple[Threshold, ...]:
    """The product's measured targets as thresholds: p95 overall and per region (when the run
    has more than one region), and the error rate overall."""
    p95 = f"p95 < {format_value(MetricKind.LATENCY, targets.p95_ms)}"
    errors = f"error_rate < {format_value(MetricKind.RATE, targets.error_rate)}"
    regions = sorted(window.known_values("region"))
    scopes = [()] + ([(("region", r),) for r in regions] if len(regions) > 1 else [])
    latency = [Threshold(p95, PRODUCT_SOURCE, "p95", MetricKind.LATENCY, "<", targets.p95_ms,
                         scope, 95.0) for scope in scopes]
    return (*latency, Threshold(errors, PRODUCT_SOURCE, "error_rate", MetricKind.RATE, "<",
                                targets.error_rate))


def _judged(spec: GateSpec, window: Window, targets: ProductTargets,
            scenario: str) -> list[tuple[Threshold, str]]:
    """(threshold, source) of every measured check: the scenario's, then the product's."""
    judged = [(t, _scenario_source(t, scenario)) for t in spec.thresholds]
    if not spec.product_targets:
        return judged
    sources = {
        "p95": f"{PRODUCT_SOURCE}: p95 < {targets.p95_ms:g} ms ({_TARGETS_DOC})",
        "error_rate": f"{PRODUCT_SOURCE}: error rate < "
                      f"{format_measure('rate', targets.error_rate)} ({_TARGETS_DOC})",
    }
    mine = {_identity(t): i for i, (t, _) in enumerate(judged)}
    for threshold in product_thresholds(window, targets):
        seen = mine.get(_identity(threshold))
        if seen is None:
            judged.append((threshold, sources[threshold.metric]))
        else:  # the scenario repeats a product target: judge it once, say it is both
            scenario_threshold, source = judged[seen]
            judged[seen] = (scenario_threshold, f"{source}, also a {PRODUCT_SOURCE}")
    return judged


def _identity(threshold: Threshold) -> tuple[str, str, float, tuple[tuple[str, str], ...]]:
    return threshold.metric, threshold.op, threshold.limit, threshold.scope


_INDEX = re.compile(r"thresholds\[\d+\]")


def _scenario_source(threshold: Threshold, scenario: str) -> str:
    """``scenario smoke: thresholds[2]``, or the command-line flag a threshold came from."""
    if threshold.where.startswith("--"):
        return f"command line: {threshold.where}"
    found = _INDEX.search(threshold.where)
    where = found.group(0) if found else threshold.where
    return f"scenario {scenario or '(unnamed)'}: {where}"


# --- core results -> verdict entries ---------------------------------------------------------


def hiccups_of(run: Run) -> Hiccups | None:
    """The generator's hiccups the run recorded (summary.json ``generator.hiccup_hist`` and
    ``hiccup_hist_by_region``), or None for a run without them (older runs, no probes)."""
    generator = (run.summary or {}).get("generator")
    if not isinstance(generator, dict) or not generator.get("hiccup_hist"):
        return None
    try:
        overall = Histogram.decode(generator["hiccup_hist"])
        by_region = {str(r): Histogram.decode(h) for r, h in
                     dict(generator.get("hiccup_hist_by_region") or {}).items()}
    except (HistogramDecodeError, TypeError, ValueError):
        return None
    return Hiccups(overall, by_region) if overall.total else None


def _check(result: CheckResult, source: str, doubt: GeneratorDoubt | None = None) -> Check:
    threshold = result.threshold
    kind = threshold.kind.value
    measured_text = "no data" if result.measured is None else \
        format_measure(kind, result.measured)
    note = result.note
    if doubt is not None:
        note = "; ".join(filter(None, (note, (
            f"within the load generator's own hiccups (p{doubt.hiccup_percentile:.4g} "
            f"{format_measure(kind, doubt.hiccup_ms)}): the run cannot judge it"))))
    return Check(
        name=f"{threshold.metric} {threshold.op} {format_value(threshold.kind, threshold.limit)}",
        metric=threshold.metric, kind=kind, scope=threshold.scope, measured=result.measured,
        op=threshold.op, limit=threshold.limit, ok=result.passed, samples=result.samples,
        source=source, measured_text=measured_text,
        limit_text=f"{threshold.op} {format_measure(kind, threshold.limit)}",
        latency_kind=result.latency_kind, note=note,
        generator_hiccup_ms=None if doubt is None else doubt.hiccup_ms,
    )


def _abort_check(reason: str) -> Check:
    """A run an abort_on_fail threshold stopped early is a breach, whatever else it shows."""
    return Check(
        name="run not stopped by a threshold", metric="aborted", kind="abort", scope=(),
        measured=1.0, op="==", limit=0.0, ok=False, samples=0,
        source="scenario abort_on_fail", measured_text="stopped early",
        limit_text="not stopped", note=reason,
    )


def _comparison(comparison: Comparison, spec: GateSpec) -> ComparisonOutcome:
    kind = comparison.kind.value
    margin = (f"margin {spec.margin:.0%}" if comparison.metric == "p95" else
              f"margin {spec.error_margin * 100:.3g} points")
    return ComparisonOutcome(
        metric=comparison.metric, scope=comparison.scope, current=comparison.current,
        baseline=comparison.baseline, tolerated=comparison.tolerated,
        current_interval=comparison.current_interval,
        baseline_interval=comparison.baseline_interval, ok=not comparison.regressed,
        verdict=comparison.verdict, current_text=_text(kind, comparison.current),
        baseline_text=_text(kind, comparison.baseline),
        tolerated_text=_text(kind, comparison.tolerated),
        margin_text=f"{margin} at {spec.confidence:.0%} confidence",
    )


def _text(kind: str, value: float | None) -> str:
    return "no data" if value is None else format_measure(kind, value)
