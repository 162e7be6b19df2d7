"""Parse k6-style performance thresholds: ``p95 < 100ms``, ``error_rate < 0.1%``, ``rps > 500``.

Pure: strings and mappings in, frozen dataclasses out. Every mistake raises
:class:`ThresholdError` naming where it is (``thresholds[2]``), the whole threshold and the
bad token, so ``pitchey gate`` can exit 4 with one line a person can act on.

Grammar of one threshold string::

    threshold := metric [ "{" key ":" value ("," key ":" value)* "}" ] op number [unit]
    metric    := p95 | p(95) | p99.9 | max | error_rate | failures | requests | rps | users
    op        := < | <= | > | >= | == | !=
    unit      := us | µs | ms | s        (latency: required)
               | %                       (error_rate: optional, a bare number is a fraction)
               | /s                      (rps: optional)
               | k | M                   (counts, rps and users: optional multiplier)

A scope narrows the data a threshold looks at: ``region``, ``endpoint``, ``user_class``,
``tag`` (a named group of endpoints declared in the scenario's ``gate.tags``) and ``kind``
(``service`` time or coordinated-omission ``corrected`` time). It is written inline
(``p95{region: asia} < 150ms``; quote values with spaces or braces) or in the mapping form a
scenario file uses: ``{scope: {region: asia}, check: "p95 < 150ms", abort_on_fail: true,
grace: 10s}``. Scope values may be shell-style globs (``endpoint: "GET /api/pitches*"``).

Averages are refused on purpose: a mean hides the tail a latency target is about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from collectors.units import (
    UnitError,
    parse_count,
    parse_duration_s,
    parse_fraction,
    parse_latency_ms,
    parse_rate_per_s,
)

__all__ = [
    "SCOPE_KEYS",
    "check_tags_declared",
    "format_limit",
    "format_value",
    "parse_confidence",
    "parse_margin",
    "GateSpec",
    "MetricKind",
    "Threshold",
    "ThresholdError",
    "parse_duration",
    "parse_gate_spec",
    "parse_threshold",
    "parse_thresholds",
]

SCOPE_KEYS = ("region", "endpoint", "user_class", "tag", "kind")
LATENCY_KINDS = ("service", "corrected")
OPERATORS = ("<=", ">=", "==", "!=", "<", ">")  # two-character operators first
_AVERAGES = ("avg", "mean", "average", "med", "median")


class ThresholdError(ValueError):
    """A malformed threshold or gate setting; the message names where and which token."""

    def __init__(self, where: str, message: str, *, token: str | None = None) -> None:
        self.where = where
        self.token = token
        super().__init__(f"{where}: {message}")


class MetricKind(Enum):
    LATENCY = "latency"  # milliseconds, from merged HDR histograms
    RATE = "rate"  # a fraction in [0, 1]
    COUNT = "count"  # a whole number of requests or failures
    THROUGHPUT = "throughput"  # requests per second over the measured window
    USERS = "users"  # peak concurrent users over the measured window


_NAMED_METRICS = {
    "max": MetricKind.LATENCY,
    "error_rate": MetricKind.RATE,
    "failures": MetricKind.COUNT,
    "requests": MetricKind.COUNT,
    "rps": MetricKind.THROUGHPUT,
    "users": MetricKind.USERS,
}


@dataclass(frozen=True)
class Threshold:
    """One check: ``metric op limit`` over a scope.

    ``limit`` is in canonical units: milliseconds for latency, a fraction for error_rate,
    requests/s for rps, plain numbers for counts and users. ``percentile`` is set for
    percentile metrics (``p99.9`` -> 99.9).
    """

    text: str
    where: str
    metric: str
    kind: MetricKind
    op: str
    limit: float
    scope: tuple[tuple[str, str], ...] = ()
    percentile: float | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0

    @property
    def scope_dict(self) -> dict[str, str]:
        return dict(self.scope)

    @property
    def scope_label(self) -> str:
        """``global`` or ``region=asia,endpoint=GET /x`` — stable, for reports and test names."""
        return ",".join(f"{k}={v}" for k, v in self.scope) or "global"

    @property
    def name(self) -> str:
        """A unique, readable name: the check plus its scope."""
        check = f"{self.metric} {self.op} {format_limit(self)}"
        return check if not self.scope else f"{check} [{self.scope_label}]"

    def holds(self, measured: float) -> bool:
        return _compare(measured, self.op, self.limit)


@dataclass(frozen=True)
class GateSpec:
    """Everything a gate needs from a scenario: thresholds, warm-up and baseline settings.

    ``margin`` is the relative p95 worsening tolerated against a baseline (0.10 = 10 %);
    ``error_margin`` the absolute error-rate worsening tolerated (0.001 = 0.1 point);
    ``confidence`` the two-sided level of the intervals a regression must clear;
    ``product_targets`` whether the gate adds the product's measured targets
    (``collectors.targets.PRODUCT_TARGETS``) to the scenario's thresholds.
    """

    thresholds: tuple[Threshold, ...] = ()
    warmup_s: float = 0.0
    margin: float = 0.10
    error_margin: float = 0.001
    confidence: float = 0.95
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    product_targets: bool = True


def _compare(value: float, op: str, limit: float) -> bool:
    if op == "<":
        return value < limit
    if op == "<=":
        return value <= limit
    if op == ">":
        return value > limit
    if op == ">=":
        return value >= limit
    if op == "==":
        return math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)
    return not math.isclose(value, limit, rel_tol=1e-9, abs_tol=1e-12)


def format_limit(threshold: Threshold) -> str:
    """The limit written back in the units a person used: ``100ms``, ``0.1%``, ``500/s``."""
    return format_value(threshold.kind, threshold.limit)


def format_value(kind: MetricKind, value: float) -> str:
    if kind is MetricKind.LATENCY:
        return f"{value:g}ms" if value < 1000 else f"{value / 1000:g}s"
    if kind is MetricKind.RATE:
        return f"{value * 100:.4g}%"
    if kind is MetricKind.THROUGHPUT:
        return f"{value:.6g}/s"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


# --- tokenizer --------------------------------------------------------------------------

_METRIC_RE = re.compile(r"\s*(p\(\s*[^)]*\)|[A-Za-z_][A-Za-z0-9_.]*)")
_OP_RE = re.compile(r"\s*(<=|>=|==|!=|<|>|=)")
_NUMBER_RE = re.compile(r"\s*([+-]?(?:\d[\d_,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
_SCOPE_KEY_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*")
_SCOPE_BARE_RE = re.compile(r"([^,}\s][^,}]*?)\s*(?=[,}])")


def parse_threshold(text: str, *, where: str = "threshold") -> Threshold:
    """Parse one threshold string; ``where`` says where it came from, for error messages."""
    if not isinstance(text, str) or not text.strip():
        raise ThresholdError(where, f"expected a threshold string such as 'p95 < 100ms', "
                             f"got {text!r}", token=str(text))
    label = f'{where} "{text.strip()}"'
    metric_match = _METRIC_RE.match(text)
    if metric_match is None:
        raise ThresholdError(label, "expected a metric name first (p95, error_rate, rps, ...)",
                             token=text.strip().split(" ")[0])
    metric, kind, percentile = _parse_metric(metric_match.group(1), label)
    pos = metric_match.end()
    scope: dict[str, str] = {}
    if text[pos:].lstrip().startswith("{"):
        scope, pos = _parse_inline_scope(text, text.index("{", pos), label)
    op_match = _OP_RE.match(text, pos)
    if op_match is None:
        bad = text[pos:].strip().split(" ")[0] or "(end of text)"
        raise ThresholdError(label, f"expected a comparison (<, <=, >, >=, ==, !=) "
                             f"after '{metric}', got '{bad}'", token=bad)
    op = op_match.group(1)
    if op == "=":
        raise ThresholdError(label, "'=' is not a comparison: write '=='", token="=")
    number_match = _NUMBER_RE.match(text, op_match.end())
    if number_match is None:
        bad = text[op_match.end():].strip() or "(end of text)"
        raise ThresholdError(label, f"expected a number after '{op}', got '{bad}'", token=bad)
    unit = _unit(text[number_match.end():], label)
    limit = _apply_unit(kind, metric, unit, number_match.group(1), label)
    return _validated(Threshold(
        text=text.strip(), where=where, metric=metric, kind=kind, op=op, limit=limit,
        scope=_normalise_scope(scope, label), percentile=percentile,
    ))


def _validated(threshold: Threshold) -> Threshold:
    """Reject combinations that parse but cannot mean anything."""
    label = f'{threshold.where} "{threshold.text}"'
    if threshold.kind is MetricKind.USERS and threshold.scope:
        raise ThresholdError(label, "users counts the whole run and cannot be scoped",
                             token=threshold.scope[0][0])
    if "kind" in threshold.scope_dict and threshold.kind is not MetricKind.LATENCY:
        raise ThresholdError(label, f"scope kind applies to latency only, not to "
                             f"{threshold.metric}", token="kind")
    if threshold.abort_on_fail and _only_true_at_the_end(threshold):
        raise ThresholdError(label, f"abort_on_fail cannot apply to '{threshold.text}': it "
                             "asks for at least an amount that only the whole run reaches",
                             token="abort_on_fail")
    return threshold


def _only_true_at_the_end(threshold: Threshold) -> bool:
    growing = threshold.kind in (MetricKind.COUNT, MetricKind.USERS)
    asks_for_more = threshold.op in (">", ">=") or (threshold.op == "==" and threshold.limit > 0)
    return growing and asks_for_more


def _unit(rest: str, label: str) -> str:
    parts = rest.split()
    if len(parts) > 1:
        raise ThresholdError(label, f"unexpected '{parts[1]}' after the limit", token=parts[1])
    return parts[0] if parts else ""


def _parse_metric(raw: str, label: str) -> tuple[str, MetricKind, float | None]:
    lowered = raw.lower()
    if lowered in _NAMED_METRICS:
        return lowered, _NAMED_METRICS[lowered], None
    if lowered in _AVERAGES:
        raise ThresholdError(label, f"'{raw}' is refused: averages hide the tail a latency "
                             "target is about; use a percentile such as p95", token=raw)
    percentile_text = _percentile_text(lowered)
    if percentile_text is None:
        known = "p50, p90, p95, p99, p99.9 (any pNN), max, error_rate, failures, requests, " \
                "rps, users"
        raise ThresholdError(label, f"unknown metric '{raw}' (known: {known})", token=raw)
    try:
        percentile = float(percentile_text)
    except ValueError:
        raise ThresholdError(label, f"'{raw}' is not a percentile: write p95 or p(99.9)",
                             token=raw) from None
    if not 0 < percentile <= 100:
        hint = f"; did you mean p{percentile_text[:2]}.{percentile_text[2:]}?" \
            if percentile_text.isdigit() and len(percentile_text) > 2 else ""
        raise ThresholdError(label, f"percentile in '{raw}' must be in (0, 100]{hint}",
                             token=raw)
    return f"p{percentile:g}", MetricKind.LATENCY, percentile


def _percentile_text(lowered: str) -> str | None:
    if lowered.startswith("p(") and lowered.endswith(")"):
        return lowered[2:-1].strip()
    if lowered.startswith("p") and len(lowered) > 1 and (lowered[1].isdigit() or
                                                         lowered[1] == "."):
        return lowered[1:]
    return None


def _parse_inline_scope(text: str, start: int, label: str) -> tuple[dict[str, str], int]:
    """Parse ``{key: value, key: "quoted {value}"}`` starting at the ``{``; return end pos."""
    scope: dict[str, str] = {}
    if "}" not in text[start:]:
        raise ThresholdError(label, "the scope has no closing '}'", token=text[start:].strip())
    pos = start + 1
    while True:
        if text[pos:].lstrip().startswith("}"):
            return scope, text.index("}", pos) + 1
        key_match = _SCOPE_KEY_RE.match(text, pos)
        if key_match is None:
            bad = text[pos:].strip().split(" ")[0] or "(end of text)"
            raise ThresholdError(label, f"expected 'key: value' in the scope, got '{bad}'",
                                 token=bad)
        key = key_match.group(1)
        value, pos = _scope_value(text, key_match.end(), key, label)
        if key in scope:
            raise ThresholdError(label, f"scope key '{key}' given twice", token=key)
        scope[key] = value
        rest = text[pos:].lstrip()
        if rest.startswith(","):
            pos = text.index(",", pos) + 1
        elif not rest.startswith("}"):
            bad = rest.split(" ")[0] or "(end of text)"
            raise ThresholdError(label, f"expected ',' or '}}' in the scope, got '{bad}'",
                                 token=bad)


def _scope_value(text: str, pos: int, key: str, label: str) -> tuple[str, int]:
    if pos < len(text) and text[pos] in "\"'":
        quote = text[pos]
        end = text.find(quote, pos + 1)
        if end < 0:
            raise ThresholdError(label, f"unclosed quote {quote} in the scope",
                                 token=text[pos:])
        return text[pos + 1:end], end + 1
    bare = _SCOPE_BARE_RE.match(text, pos)
    if bare is None:
        raise ThresholdError(label, f"scope key '{key}' has no value", token=key)
    return bare.group(1), bare.end()


def _apply_unit(kind: MetricKind, metric: str, unit: str, raw: str, label: str) -> float:
    """The limit ``raw`` ``unit`` in canonical units, read by the suite's one vocabulary
    (collectors.units): a latency needs a time unit, error_rate is % or a fraction in 0-1,
    rps and counts are plain numbers with an optional k or M (rps also /s)."""
    text = f"{raw}{unit}"
    try:
        if kind is MetricKind.LATENCY:
            return parse_latency_ms(text, what=metric, bare=False)
        if kind is MetricKind.RATE:
            return parse_fraction(text, what=metric, at_most_one=True)
        if kind is MetricKind.THROUGHPUT:
            return parse_rate_per_s(text, what=metric)
        return parse_count(text, what=metric)
    except UnitError as exc:
        raise _unit_error(label, exc) from None


def _unit_error(where: str, exc: UnitError) -> ThresholdError:
    return ThresholdError(where, str(exc), token=exc.token)


def _normalise_scope(scope: Mapping[str, object], label: str) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    for key, value in scope.items():
        if key not in SCOPE_KEYS:
            raise ThresholdError(label, f"unknown scope key '{key}' (known: "
                                 f"{', '.join(SCOPE_KEYS)})", token=str(key))
        if not isinstance(value, str | int | float) or isinstance(value, bool) or \
                str(value).strip() == "":
            raise ThresholdError(label, f"scope '{key}' needs a non-empty text value, "
                                 f"got {value!r}", token=str(key))
        text = str(value).strip()
        if key == "kind" and text not in LATENCY_KINDS:
            raise ThresholdError(label, f"scope kind '{text}' is unknown (known: "
                                 f"{', '.join(LATENCY_KINDS)})", token=text)
        items.append((key, text))
    return tuple(sorted(items, key=lambda kv: SCOPE_KEYS.index(kv[0])))


# --- lists and mappings (scenario files) -------------------------------------------------

_ITEM_KEYS = ("check", "scope", "abort_on_fail", "grace")


def parse_thresholds(items: object, *, where: str = "thresholds") -> tuple[Threshold, ...]:
    """Parse a scenario's ``thresholds`` list: strings or ``{check, scope, ...}`` mappings."""
    if items is None:
        return ()
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise ThresholdError(where, f"expected a list of thresholds, got {type(items).__name__}",
                             token=where)
    parsed = tuple(_parse_item(item, f"{where}[{i}]") for i, item in enumerate(items))
    seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
    for threshold in parsed:
        key = (threshold.metric, threshold.op, threshold.scope)
        if key in seen:
            raise ThresholdError(threshold.where, f"'{threshold.name}' repeats {seen[key]}",
                                 token=threshold.text)
        seen[key] = threshold.where
    return parsed


def _parse_item(item: object, where: str) -> Threshold:
    if isinstance(item, str):
        return parse_threshold(item, where=where)
    if not isinstance(item, Mapping):
        raise ThresholdError(where, f"expected a string or a mapping, got {item!r}",
                             token=str(item))
    unknown = [str(k) for k in item if k not in _ITEM_KEYS]
    if unknown:
        raise ThresholdError(where, f"unknown key '{unknown[0]}' (known: "
                             f"{', '.join(_ITEM_KEYS)})", token=unknown[0])
    if "check" not in item:
        raise ThresholdError(where, "missing 'check' (e.g. check: \"p95 < 150ms\")",
                             token="check")
    base = parse_threshold(item["check"], where=where)
    scope = _mapping_scope(item.get("scope"), base, where)
    abort = item.get("abort_on_fail", False)
    if not isinstance(abort, bool):
        raise ThresholdError(where, f"abort_on_fail must be true or false, got {abort!r}",
                             token="abort_on_fail")
    grace = parse_duration(item.get("grace", 0), where=f"{where}.grace")
    return _validated(Threshold(
        text=base.text, where=where, metric=base.metric, kind=base.kind, op=base.op,
        limit=base.limit, scope=scope, percentile=base.percentile, abort_on_fail=abort,
        grace_s=grace,
    ))


def _mapping_scope(raw: object, base: Threshold, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return base.scope
    if not isinstance(raw, Mapping):
        raise ThresholdError(f"{where}.scope", f"expected a mapping such as {{region: asia}}, "
                             f"got {raw!r}", token="scope")
    merged: dict[str, object] = dict(base.scope)
    for key, value in raw.items():
        if str(key) in merged:
            raise ThresholdError(where, f"scope key '{key}' given both inline and in scope",
                                 token=str(key))
        merged[str(key)] = value
    return _normalise_scope(merged, f"{where}.scope")


def parse_duration(raw: object, *, where: str) -> float:
    """``10s``, ``1h30m``, ``500ms`` or a bare number of seconds -> seconds (>= 0): the same
    durations a scenario accepts (collectors.units)."""
    try:
        return parse_duration_s(raw)
    except UnitError as exc:
        raise _unit_error(where, exc) from None


def _parse_fraction(raw: object, *, where: str) -> float:
    """``10%`` or a bare fraction ``0.1`` -> 0.1 (collectors.units)."""
    try:
        return parse_fraction(raw)
    except UnitError as exc:
        raise _unit_error(where, exc) from None


_GATE_KEYS = ("warmup", "margin", "error_margin", "confidence", "tags", "product_targets")


def parse_gate_spec(scenario: Mapping[str, object], *, source: str = "scenario") -> GateSpec:
    """Read a scenario mapping's ``thresholds`` list and optional ``gate:`` block.

    ``gate: {warmup: 10s, margin: 10%, error_margin: 0.1%, confidence: 95%,
    tags: {writes: ["POST *", "PUT *"]}, product_targets: true}``. A top-level ``warmup`` is
    read too when the ``gate`` block has none (the load-test scenario may declare it there).
    """
    thresholds = parse_thresholds(scenario.get("thresholds"), where=f"{source}: thresholds")
    gate = scenario.get("gate")
    gate = {} if gate is None else gate
    if not isinstance(gate, Mapping):
        raise ThresholdError(f"{source}: gate", f"expected a mapping, got {gate!r}",
                             token="gate")
    unknown = [str(k) for k in gate if k not in _GATE_KEYS]
    if unknown:
        raise ThresholdError(f"{source}: gate", f"unknown key '{unknown[0]}' (known: "
                             f"{', '.join(_GATE_KEYS)})", token=unknown[0])
    warmup_raw = gate.get("warmup", scenario.get("warmup", 0))
    spec = GateSpec(
        thresholds=thresholds,
        warmup_s=parse_duration(warmup_raw or 0, where=f"{source}: gate.warmup"),
        margin=_parse_fraction(gate.get("margin", "10%"), where=f"{source}: gate.margin"),
        error_margin=_parse_fraction(gate.get("error_margin", "0.1%"),
                                     where=f"{source}: gate.error_margin"),
        confidence=_confidence(gate.get("confidence", "95%"), f"{source}: gate.confidence"),
        tags=_parse_tags(gate.get("tags"), f"{source}: gate.tags"),
        product_targets=_flag(gate.get("product_targets", True),
                              f"{source}: gate.product_targets"),
    )
    check_tags_declared(spec)
    return spec


def _flag(raw: object, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ThresholdError(where, f"expected true or false, got {raw!r}", token=str(raw))
    return raw


def parse_margin(raw: object, *, where: str) -> float:
    """Public form of the percentage parser, for CLI flags such as ``--margin 10%``."""
    return _parse_fraction(raw, where=where)


def parse_confidence(raw: object, *, where: str) -> float:
    return _confidence(raw, where)


def _confidence(raw: object, where: str) -> float:
    value = _parse_fraction(raw, where=where)
    if not 0.5 <= value < 1:
        raise ThresholdError(where, f"confidence {raw!r} must be at least 50% and below 100%",
                             token=str(raw))
    return value


def _parse_tags(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ThresholdError(where, "expected a mapping of tag name to endpoint patterns",
                             token="tags")
    tags: dict[str, tuple[str, ...]] = {}
    for name, patterns in raw.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, Sequence) or not patterns or \
                not all(isinstance(p, str) and p.strip() for p in patterns):
            raise ThresholdError(f"{where}.{name}", "expected a non-empty list of endpoint "
                                 "patterns such as [\"POST *\"]", token=str(name))
        tags[str(name)] = tuple(p.strip() for p in patterns)
    return tags


def check_tags_declared(spec: GateSpec) -> None:
    for threshold in spec.thresholds:
        tag = threshold.scope_dict.get("tag")
        if tag is not None and tag not in spec.tags:
            declared = ", ".join(sorted(spec.tags)) or "none"
            raise ThresholdError(threshold.where, f"tag '{tag}' is not declared in gate.tags "
                                 f"(declared: {declared})", token=tag)
