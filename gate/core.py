"""The CI gate's pure core: thresholds and baseline regressions over a measured window.

Input is a :class:`Window`: the run after its warm-up, reduced to one :class:`Cell` per
region x endpoint x user class (request and failure counts plus the merged HDR latency
histograms). Latency figures are read off merged histograms, never averaged percentiles.
``gate_cli`` builds windows from run directories (through ``collectors.load_run``); the run
loop builds them from live statistics and asks :func:`should_abort` once a second.

Verdicts, in the order an exit code is chosen (see :func:`exit_code`, codes are
``pitchey_cli.exitcodes.ExitCode``): INVALID the run is invalid (generator saturated, target
unreachable, nothing measured); BREACH a threshold is breached; REGRESSION p95 or the error
rate regressed against a baseline; OK pass. A configuration error (CONFIG) is raised as
:class:`GateConfigError` before any of these. ``gate.evaluation.evaluate_run`` builds the
run's one verdict on top of this core.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from collectors.hdr import Histogram
from gate.thresholds import (
    GateSpec,
    MetricKind,
    Threshold,
    ThresholdError,
    format_value,
)
from pitchey_cli.exitcodes import ExitCode

__all__ = [
    "AbortMonitor",
    "BASELINE_FORMAT",
    "Cell",
    "CheckResult",
    "Comparison",
    "GateConfigError",
    "GateResult",
    "GeneratorDoubt",
    "Hiccups",
    "Window",
    "baseline_from_json",
    "baseline_to_json",
    "check_scopes",
    "compare",
    "compared_scopes",
    "evaluate",
    "exit_code",
    "gate",
    "generator_doubt",
    "hiccup_at",
    "measure",
    "quantile_interval",
    "rate_interval",
    "run_validity",
    "select_cells",
    "should_abort",
]

BASELINE_FORMAT = "pitchey-gate-baseline"
_BASELINE_VERSION = 1
_SELECTABLE = ("region", "endpoint", "user_class")


class GateConfigError(ThresholdError):
    """The thresholds do not fit the run (a scope that matches nothing, a bad baseline)."""


@dataclass(frozen=True)
class Cell:
    """One region x endpoint x user class over the window: counts and latency histograms."""

    region: str
    endpoint: str
    user_class: str
    requests: int
    failures: int
    service: Histogram = field(default_factory=Histogram)
    corrected: Histogram | None = None

    def histogram(self, kind: str) -> Histogram:
        if kind == "corrected" and self.corrected is not None:
            return self.corrected
        return self.service


@dataclass(frozen=True)
class Window:
    """What was measured after the warm-up: cells, the window's length and peak users.

    ``known`` lists every value seen per scope key over the whole run (warm-up included), so a
    scope that matches nothing can be told apart from one that only had no traffic lately.
    """

    cells: tuple[Cell, ...]
    duration_s: float
    users_max: int
    valid: bool = True
    reasons: tuple[str, ...] = ()
    known: Mapping[str, frozenset[str]] = field(default_factory=dict)
    aborted: tuple[str, ...] = ()  # why an abort_on_fail threshold stopped the run early
    # a closed-model run: the evidence of coordinated omission every latency check carries as
    # its note (collectors.closedmodel); its latency is judged on service time unless a
    # threshold asks for {kind: corrected}. None: not a closed-model run
    closed_model: str | None = None

    @property
    def has_corrected(self) -> bool:
        return any(c.corrected is not None and c.corrected.total for c in self.cells)

    def known_values(self, key: str) -> frozenset[str]:
        return self.known.get(key) or frozenset(getattr(c, key) for c in self.cells)


@dataclass(frozen=True)
class CheckResult:
    """One threshold's outcome. ``measured`` is None when the scope had no data."""

    threshold: Threshold
    measured: float | None
    passed: bool
    samples: int
    latency_kind: str | None = None
    note: str = ""

    @property
    def measured_text(self) -> str:
        if self.measured is None:
            return "no data"
        return format_value(self.threshold.kind, self.measured)

    @property
    def limit_text(self) -> str:
        return f"{self.threshold.op} {format_value(self.threshold.kind, self.threshold.limit)}"

    @property
    def message(self) -> str:
        """``p95 = 132.5ms, limit < 100ms`` — what a JUnit failure says."""
        text = f"{self.threshold.metric} = {self.measured_text}, limit {self.limit_text}"
        scope = self.threshold.scope_label
        text = text if scope == "global" else f"{text} ({scope})"
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class Comparison:
    """p95 or error rate of one scope, current run against the baseline."""

    metric: str  # "p95" or "error_rate"
    scope: tuple[tuple[str, str], ...]
    baseline: float | None
    current: float | None
    baseline_interval: tuple[float, float] | None
    current_interval: tuple[float, float] | None
    tolerated: float | None  # the worst current value the margin allows
    regressed: bool
    verdict: str  # regression | within margin | worse, not significant | improved | no data

    @property
    def kind(self) -> MetricKind:
        return MetricKind.RATE if self.metric == "error_rate" else MetricKind.LATENCY

    @property
    def scope_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.scope) or "global"

    def text(self, value: float | None) -> str:
        return "no data" if value is None else format_value(self.kind, value)

    @property
    def message(self) -> str:
        change = ""
        if self.baseline and self.current is not None:
            change = f" ({(self.current / self.baseline - 1) * 100:+.1f}%)"
        return (f"{self.metric} [{self.scope_label}]: {self.text(self.current)} vs baseline "
                f"{self.text(self.baseline)}{change}, tolerated {self.text(self.tolerated)}: "
                f"{self.verdict}")


@dataclass(frozen=True)
class GateResult:
    checks: tuple[CheckResult, ...]
    comparisons: tuple[Comparison, ...]
    valid: bool
    reasons: tuple[str, ...]
    window: Window

    @property
    def aborted(self) -> tuple[str, ...]:
        return self.window.aborted

    @property
    def breaches(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def regressions(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.regressed)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code(self)


def exit_code(result: GateResult) -> ExitCode:
    """Invalid beats breached beats regressed: each makes the next meaningless."""
    if not result.valid:
        return ExitCode.INVALID
    if result.breaches or result.aborted:
        return ExitCode.BREACH
    if result.regressions:
        return ExitCode.REGRESSION
    return ExitCode.OK


# --- scopes ------------------------------------------------------------------------------


def select_cells(cells: Iterable[Cell], scope: Sequence[tuple[str, str]],
                 tags: Mapping[str, Sequence[str]]) -> tuple[Cell, ...]:
    """Cells matching every scope key (glob patterns; a tag is a set of endpoint patterns)."""
    return tuple(c for c in cells if all(_matches(c, k, v, tags) for k, v in scope))


def _matches(cell: Cell, key: str, pattern: str, tags: Mapping[str, Sequence[str]]) -> bool:
    if key == "kind":
        return True
    if key == "tag":
        return any(fnmatchcase(cell.endpoint, p) for p in tags.get(pattern, ()))
    return fnmatchcase(str(getattr(cell, key)), pattern)


def _latency_kind(threshold_scope: Mapping[str, str], window: Window) -> str:
    """Corrected time when the run has it (open model): it is what users waited. A closed
    model's corrected time (constant pacing) is an estimate: judged when asked for."""
    default = "corrected" if window.has_corrected and window.closed_model is None else "service"
    return threshold_scope.get("kind") or default


def check_scopes(spec: GateSpec, window: Window) -> None:
    """Raise GateConfigError for a scope value that matches nothing the run recorded."""
    for threshold in spec.thresholds:
        for key, pattern in threshold.scope:
            if key in _SELECTABLE:
                known = window.known_values(key)
                if not any(fnmatchcase(v, pattern) for v in known):
                    raise GateConfigError(
                        threshold.where, f"scope {key} '{pattern}' matches nothing in the run "
                        f"(recorded: {', '.join(sorted(known)) or 'none'})", token=pattern)
            if key == "kind" and pattern == "corrected" and threshold.kind is MetricKind.LATENCY \
                    and not window.has_corrected and window.cells:
                raise GateConfigError(threshold.where, "kind 'corrected' asked for, but the run "
                                      "has no corrected histograms (neither an open-model run "
                                      "nor a closed one with constant pacing)", token=pattern)


# --- measuring -----------------------------------------------------------------------------


def measure(threshold: Threshold, window: Window,
            tags: Mapping[str, Sequence[str]]) -> CheckResult:
    """Measure one threshold over the window and say whether it holds."""
    cells = select_cells(window.cells, threshold.scope, tags)
    if threshold.kind is MetricKind.LATENCY:
        kind = _latency_kind(threshold.scope_dict, window)
        hist = Histogram.merge(c.histogram(kind) for c in cells)
        value = _latency(threshold, hist) if hist.total else None
        result = _checked(threshold, value, hist.total, kind)
        if window.closed_model is None:
            return result
        note = _closed_note(threshold, cells, kind, window.closed_model)
        return replace(result, note=f"{result.note}; {note}" if result.note else note)
    requests = sum(c.requests for c in cells)
    return _checked(threshold, _count_metric(threshold, cells, requests, window), requests, None)


def _count_metric(threshold: Threshold, cells: Sequence[Cell], requests: int,
                  window: Window) -> float | None:
    if threshold.kind is MetricKind.RATE:
        return sum(c.failures for c in cells) / requests if requests else None
    if threshold.kind is MetricKind.COUNT:
        return float(sum(c.failures for c in cells) if threshold.metric == "failures"
                     else requests)
    if threshold.kind is MetricKind.THROUGHPUT:
        return requests / window.duration_s if window.duration_s > 0 else None
    return float(window.users_max)


def _checked(threshold: Threshold, value: float | None, samples: int,
             kind: str | None) -> CheckResult:
    if value is None:
        return CheckResult(threshold, None, False, samples, kind,
                           note="no requests in scope after the warm-up")
    return CheckResult(threshold, value, threshold.holds(value), samples, kind)


def _closed_note(threshold: Threshold, cells: Sequence[Cell], kind: str, evidence: str) -> str:
    """A closed-model run's latency check: the run's evidence, and, when judged on service
    time, the corrected figure of the same scope and percentile where one was recorded."""
    if kind != "service":
        return evidence
    corrected = Histogram.merge(c.corrected for c in cells if c.corrected is not None)
    if not corrected.total:
        return evidence
    name = "max" if threshold.percentile is None else threshold.metric
    value = _latency(threshold, corrected)
    figure = f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"
    return f"judged on service time; corrected {name} here {figure}; {evidence}"


def _latency(threshold: Threshold, hist: Histogram) -> float:
    if threshold.percentile is None:  # max
        return hist.max_ms
    return hist.percentile(threshold.percentile)


def evaluate(spec: GateSpec, window: Window) -> tuple[CheckResult, ...]:
    check_scopes(spec, window)
    return tuple(measure(t, window, spec.tags) for t in spec.thresholds)


def run_validity(window: Window) -> tuple[bool, tuple[str, ...]]:
    """The run's own verdict (generator saturated, target unreachable: the load test judges
    those from what it saw), plus one the gate adds: nothing recorded after the warm-up."""
    if any(c.requests or c.service.total for c in window.cells):
        return window.valid, window.reasons
    reasons = (*window.reasons, "no request was recorded after the warm-up")
    return False, tuple(dict.fromkeys(reasons))


def gate(spec: GateSpec, window: Window, baseline: Window | None = None) -> GateResult:
    """Thresholds, validity and (when a baseline is given) regressions, in one result."""
    checks = evaluate(spec, window)
    comparisons = compare(spec, window, baseline) if baseline is not None else ()
    valid, reasons = run_validity(window)
    return GateResult(checks, comparisons, valid, reasons, window)


# --- confidence intervals ------------------------------------------------------------------


def quantile_interval(hist: Histogram, q: float, confidence: float) -> tuple[float, float]:
    """Distribution-free interval of the q-quantile from the histogram's order statistics.

    The number of samples below the true quantile is Binomial(n, q); the ranks at its
    (1-c)/2 and (1+c)/2 quantiles bracket the true quantile with probability >= c. Values
    are read at those ranks from the histogram (3 significant digits), in ms.
    """
    from scipy.stats import binom

    n = hist.total
    if n == 0:
        raise ValueError("empty histogram")
    alpha = 1.0 - confidence
    low_rank = max(int(binom.ppf(alpha / 2, n, q)), 1)
    high_rank = min(int(binom.ppf(1 - alpha / 2, n, q)) + 1, n)
    return _value_at_rank(hist, low_rank), _value_at_rank(hist, high_rank)


def _value_at_rank(hist: Histogram, rank: int) -> float:
    return hist.percentile(100.0 * rank / hist.total)


def rate_interval(failures: int, requests: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a failure proportion."""
    from scipy.stats import norm

    if requests == 0:
        raise ValueError("no requests")
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    p = failures / requests
    denominator = 1 + z * z / requests
    centre = (p + z * z / (2 * requests)) / denominator
    half = z * math.sqrt(p * (1 - p) / requests + z * z / (4 * requests * requests)) / denominator
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == requests else min(1.0, centre + half)
    return low, high


# --- baseline comparison -------------------------------------------------------------------


def compared_scopes(spec: GateSpec) -> tuple[tuple[tuple[str, str], ...], ...]:
    """Global, plus every scope a threshold names (the parts of the run someone cares about)."""
    scopes: dict[tuple[tuple[str, str], ...], None] = {(): None}
    for threshold in spec.thresholds:
        scope = tuple((k, v) for k, v in threshold.scope if k != "kind")
        scopes[scope] = None
    return tuple(scopes)


def compare(spec: GateSpec, current: Window, baseline: Window) -> tuple[Comparison, ...]:
    """p95 and error rate per compared scope; a regression must clear the confidence check."""
    kind = "corrected" if current.has_corrected and baseline.has_corrected \
        and current.closed_model is None else "service"
    results: list[Comparison] = []
    for scope in compared_scopes(spec):
        now = select_cells(current.cells, scope, spec.tags)
        then = select_cells(baseline.cells, scope, spec.tags)
        results.append(_compare_p95(spec, scope, now, then, kind))
        results.append(_compare_errors(spec, scope, now, then))
    return tuple(results)


def _compare_p95(spec: GateSpec, scope: tuple[tuple[str, str], ...], now: Sequence[Cell],
                 then: Sequence[Cell], kind: str) -> Comparison:
    current = Histogram.merge(c.histogram(kind) for c in now)
    base = Histogram.merge(c.histogram(kind) for c in then)
    if not current.total or not base.total:
        return Comparison("p95", scope, None, None, None, None, None, False, "no data")
    cur_iv = quantile_interval(current, 0.95, spec.confidence)
    base_iv = quantile_interval(base, 0.95, spec.confidence)
    cur, ref = current.quantile(0.95), base.quantile(0.95)
    tolerated = ref * (1 + spec.margin)
    # Conservative on purpose: the whole current interval must sit above the whole baseline
    # interval stretched by the margin, so sampling noise alone cannot fail a build.
    regressed = cur_iv[0] > base_iv[1] * (1 + spec.margin)
    verdict = _verdict(regressed, cur > tolerated, cur < ref)
    return Comparison("p95", scope, ref, cur, base_iv, cur_iv, tolerated, regressed, verdict)


def _compare_errors(spec: GateSpec, scope: tuple[tuple[str, str], ...], now: Sequence[Cell],
                    then: Sequence[Cell]) -> Comparison:
    cur_n, base_n = sum(c.requests for c in now), sum(c.requests for c in then)
    if not cur_n or not base_n:
        return Comparison("error_rate", scope, None, None, None, None, None, False, "no data")
    cur_f, base_f = sum(c.failures for c in now), sum(c.failures for c in then)
    cur, ref = cur_f / cur_n, base_f / base_n
    cur_iv = rate_interval(cur_f, cur_n, spec.confidence)
    base_iv = rate_interval(base_f, base_n, spec.confidence)
    tolerated = ref + spec.error_margin
    regressed = cur_iv[0] > base_iv[1] + spec.error_margin
    verdict = _verdict(regressed, cur > tolerated, cur < ref)
    return Comparison("error_rate", scope, ref, cur, base_iv, cur_iv, tolerated, regressed,
                      verdict)


def _verdict(regressed: bool, beyond_margin: bool, improved: bool) -> str:
    if regressed:
        return "regression"
    if beyond_margin:
        return "worse, not significant"
    return "improved" if improved else "within margin"


# --- abort on fail -------------------------------------------------------------------------


def should_abort(thresholds: GateSpec | Sequence[Threshold], live_stats: Window,
                 elapsed: float) -> str | None:
    """Why the run must stop now, or None. Called by the run loop about once a second.

    ``live_stats`` holds what was recorded since the warm-up ended (cumulative);
    ``elapsed`` counts seconds since the run started. A threshold marked ``abort_on_fail``
    is judged only once ``elapsed`` passes the warm-up plus its own grace period, and only
    when its scope has data, so a slow first second cannot stop a run.
    """
    spec = thresholds if isinstance(thresholds, GateSpec) else GateSpec(tuple(thresholds))
    for threshold in spec.thresholds:
        if not threshold.abort_on_fail or elapsed < spec.warmup_s + threshold.grace_s:
            continue
        result = measure(threshold, live_stats, spec.tags)
        if result.measured is not None and not result.passed:
            return f"{threshold.name} failed after {elapsed:.0f}s: {result.message}"
    return None


class AbortMonitor:
    """The run loop's side of abort-on-fail: feed it each interval, it keeps the totals.

    ``observe`` takes the cells recorded in the interval that just ended (not cumulative),
    adds those whose interval lies after the warm-up, and asks :func:`should_abort`. The only
    state is the running post-warm-up totals; the judgement stays in the pure function.
    """

    def __init__(self, spec: GateSpec, closed_model: str | None = None) -> None:
        self.spec = spec
        self.closed_model = closed_model  # see Window.closed_model
        self._cells: dict[tuple[str, str, str], Cell] = {}
        self._duration_s = 0.0
        self._users_max = 0

    @property
    def active(self) -> bool:
        """Whether any threshold can abort the run (if not, the loop need not call observe)."""
        return any(t.abort_on_fail for t in self.spec.thresholds)

    def observe(self, elapsed: float, interval: Iterable[Cell], users: int,
                interval_s: float = 1.0) -> str | None:
        """``elapsed``: seconds from the run's start to the end of this interval."""
        if elapsed - interval_s / 2 >= self.spec.warmup_s:
            self._duration_s += interval_s
            self._users_max = max(self._users_max, users)
            for cell in interval:
                self._add(cell)
        window = Window(tuple(self._cells.values()), self._duration_s, self._users_max,
                        closed_model=self.closed_model)
        return should_abort(self.spec, window, elapsed)

    def _add(self, cell: Cell) -> None:
        key = (cell.region, cell.endpoint, cell.user_class)
        seen = self._cells.get(key)
        if seen is None:
            self._cells[key] = cell
            return
        corrected = seen.corrected if cell.corrected is None else (
            cell.corrected if seen.corrected is None else seen.corrected + cell.corrected)
        self._cells[key] = replace(seen, requests=seen.requests + cell.requests,
                                   failures=seen.failures + cell.failures,
                                   service=seen.service + cell.service, corrected=corrected)


# --- baseline files --------------------------------------------------------------------------


def baseline_to_json(window: Window, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A baseline file's content: the post-warm-up cells with their encoded histograms."""
    return {
        "format": BASELINE_FORMAT,
        "format_version": _BASELINE_VERSION,
        **dict(meta),
        "duration_s": window.duration_s,
        "users_max": window.users_max,
        "cells": [_cell_to_json(c) for c in window.cells],
    }


def _cell_to_json(cell: Cell) -> dict[str, Any]:
    return {
        "region": cell.region, "endpoint": cell.endpoint, "user_class": cell.user_class,
        "requests": cell.requests, "failures": cell.failures, "service": cell.service.encode(),
        "corrected": cell.corrected.encode() if cell.corrected is not None else None,
    }


def baseline_from_json(data: object, *, source: str) -> Window:
    """Read a baseline file's content back; GateConfigError names the file and the fault."""
    if not isinstance(data, Mapping) or data.get("format") != BASELINE_FORMAT:
        raise GateConfigError(source, f"not a gate baseline (expected format "
                              f"'{BASELINE_FORMAT}')", token=source)
    if data.get("format_version") != _BASELINE_VERSION:
        raise GateConfigError(source, f"baseline format_version {data.get('format_version')!r}"
                              f" is not {_BASELINE_VERSION}", token="format_version")
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise GateConfigError(source, "baseline has no 'cells' list", token="cells")
    try:
        parsed = tuple(_cell_from_json(c) for c in cells)
        return Window(parsed, float(data.get("duration_s", 0.0)), int(data.get("users_max", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise GateConfigError(source, f"baseline cell is malformed ({exc})",
                              token="cells") from None


def _cell_from_json(raw: Mapping[str, Any]) -> Cell:
    corrected = raw.get("corrected")
    return Cell(
        region=str(raw["region"]), endpoint=str(raw["endpoint"]),
        user_class=str(raw["user_class"]), requests=int(raw["requests"]),
        failures=int(raw["failures"]), service=Histogram.decode(raw["service"]),
        corrected=Histogram.decode(corrected) if corrected else None,
    )


# --- the generator's own hiccups -------------------------------------------------------------


@dataclass(frozen=True)
class Hiccups:
    """The load generator's own hiccups over the judged window, as jHiccup measures them: the
    workers' event-loop lag probes, coordinated-omission corrected (a stall of L ms counts as
    L, L - interval, ...), so a percentile reads "that share of the time the loop was at least
    this late". Overall and per region (the workers of a region time its requests)."""

    overall: Histogram
    by_region: Mapping[str, Histogram] = field(default_factory=dict)

    def for_scope(self, scope: Sequence[tuple[str, str]]) -> Histogram:
        """The hiccups of the workers whose requests a scope holds: those of the regions a
        region scope matches, else all."""
        pattern = dict(scope).get("region")
        if pattern is None or not self.by_region:
            return self.overall
        chosen = [h for region, h in self.by_region.items() if fnmatchcase(region, pattern)]
        return Histogram.merge(chosen) if chosen else self.overall


def hiccup_at(hiccups: Histogram, threshold: Threshold) -> float:
    """The generator's hiccup (ms) at the threshold's percentile (its max for ``max``)."""
    if threshold.percentile is None:
        return hiccups.max_ms
    return hiccups.percentile(threshold.percentile)


@dataclass(frozen=True)
class GeneratorDoubt:
    """A latency breach the generator's own hiccups could account for (see generator_doubt)."""

    above_share: float  # share of the scope's requests above the limit that must be cleared
    hiccup_ms: float  # the generator's hiccup over its worst `above_share` of the time
    hiccup_percentile: float  # ... that is, at this percentile of its hiccups
    reason: str


_LEVELS = 100  # the matching is checked at this many levels


def generator_doubt(result: CheckResult, window: Window, tags: Mapping[str, Sequence[str]],
                    hiccups: Hiccups) -> GeneratorDoubt | None:
    """Why a latency breach may be the generator's, or None when the service's own.

    Every latency the generator times includes its own stalls: a response that arrives while
    the loop stalls is read when the stall ends, late by what is left of it. The hiccups are
    those residuals over time (the jHiccup-corrected lag probes), so with arrivals spread over
    time a request's share of the generator's delay is drawn from them. The check at
    percentile q fails with a share F of the requests at or below the limit; the service's
    own value could still hold if the generator's delays could have pushed the m = q - F
    requests just above the limit over it: matched in order (smallest excess with the smallest
    of the worst m of the hiccups, and so on up), every excess is below its hiccup. Checked at
    ``_LEVELS`` levels: excess(F + p m) < hiccup(1 - m + p m) for all p in [0, 1]. That is
    the exact "could account for" (the worst placement of the stalls) under those
    assumptions; it contains the comparison at the same percentile (measured p_q minus the
    hiccup p_q, as jHiccup's charts are read) whenever m <= 1 - q. A check that holds is not
    doubted: the generator's stalls only add latency.
    """
    threshold = result.threshold
    if (result.passed or result.measured is None or threshold.kind is not MetricKind.LATENCY
            or threshold.op not in ("<", "<=")):
        return None
    own = hiccups.for_scope(threshold.scope)
    kind = _latency_kind(threshold.scope_dict, window)
    hist = Histogram.merge(c.histogram(kind) for c in select_cells(window.cells,
                                                                    threshold.scope, tags))
    if not own.total or own.max_ms <= 0 or not hist.total:
        return None
    q = 1.0 if threshold.percentile is None else threshold.percentile / 100.0
    below = hist.fraction_at_or_below(threshold.limit)
    m = min(max(q - below, 1.0 / hist.total), 1.0)
    for step in range(_LEVELS + 1):
        p = step / _LEVELS
        measured = result.measured if step == _LEVELS else \
            hist.quantile(min(q, below + p * m))
        if not threshold.holds(measured - own.quantile(min(1.0, 1.0 - m + p * m))):
            return None
    at = 100.0 * (1.0 - m)
    hiccup = own.percentile(at)
    subject = threshold.metric if not threshold.scope else \
        f"{threshold.metric} {threshold.scope_label}"
    reason = (
        f"{subject} {_ms(result.measured)} breaches {threshold.op} {_ms(threshold.limit)}, "
        f"but the generator's own hiccups could account for it: {m:.1%} of the requests "
        f"would have to come under the limit, and over its worst {m:.1%} of the time the "
        f"generator's loop was late by {_ms(hiccup)} or more (hiccup p{at:.4g}; at "
        f"{threshold.metric} {_ms(hiccup_at(own, threshold))}, max {_ms(own.max_ms)}): the "
        f"breach may be the generator's"
    )
    return GeneratorDoubt(m, hiccup, at, reason)


def _ms(value: float) -> str:
    return f"{value:.4g} ms" if value < 1000 else f"{value / 1000:.4g} s"
