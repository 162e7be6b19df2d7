"""Loading and checking `alerts/rules.yaml` into a `Spec`.

Every problem is reported at once, one line each, naming the file, the line, the rule and the
key. Checks go beyond types: an SLO whose burn rate x error budget is >= 1 can never fire, a
template may only use labels the alert will carry, the latency SLO's bucket must be a bucket
bound the histogram declares.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from alerts.selectors import Matcher, Selector, SelectorError, parse_selector
from alerts.spec import (
    SEVERITIES,
    AbsentMeasure,
    ErrorRatioMeasure,
    GaugeMeasure,
    GaugeRatioMeasure,
    Measure,
    ProjectedCostMeasure,
    QuantileMeasure,
    RateMeasure,
    RatioMeasure,
    Route,
    Rule,
    Spec,
)
from alerts.yamlload import LineDict, MappingReader, SpecError, load_yaml
from collectors.units import UnitError, parse_prometheus_duration_ms

__all__ = ["DEFAULT_SPEC", "SpecError", "default_spec_path", "load_spec", "parse_spec",
           "template_labels"]

DEFAULT_SPEC = "rules.yaml"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TEMPLATE = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_RULE_KEYS = ("name", "severity", "measure", "op", "threshold", "window", "min_traffic_rps",
              "for", "keep_firing_for", "labels", "annotations")
_MEASURE_KEYS = {
    "gauge": ("kind", "metric", "aggregate", "by"),
    "gauge_ratio": ("kind", "numerator", "denominator", "by"),
    "rate": ("kind", "metric", "by"),
    "ratio": ("kind", "numerator", "denominator", "by"),
    "quantile": ("kind", "histogram", "quantile", "by"),
    "projected_cost": ("kind", "requests", "usd_per_million_requests", "fixed_usd_per_month",
                       "budget_usd_per_month"),
    "absent": ("kind", "metric"),
}
_WINDOWED = ("rate", "ratio", "quantile", "projected_cost")
_TRAFFIC = ("ratio", "quantile")


def default_spec_path() -> Path:
    return Path(str(resources.files("alerts") / DEFAULT_SPEC))


def load_spec(path: Path | str | None = None) -> Spec:
    """Read and check a spec file (the packaged alerts/rules.yaml by default)."""
    file = Path(path) if path is not None else default_spec_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{file}: cannot read the alert spec: {exc.strerror or exc}"]) from None
    return parse_spec(text, str(file))


def parse_spec(text: str, filename: str = "<spec>") -> Spec:
    data = load_yaml(text, filename)
    errors: list[str] = []
    top = MappingReader(data, filename, "", errors, 1)
    top.check_keys(("version", "job", "evaluation_interval", "histograms", "label_examples",
                    "notifications", "defaults", "rules", "slos"))
    if top.raw("version") != 1:
        top.error("version", f"must be 1 (the only spec format), got {top.raw('version')!r}")
    job = top.text("job", "pitchey")
    interval = _duration(top, "evaluation_interval", "1s", positive=True)
    loader = _SpecLoader(filename, errors, job)
    loader.read_histograms(top)
    examples = loader.read_examples(top)
    route = loader.read_route(top.child("notifications", "notifications", optional=True))
    defaults = top.child("defaults", "defaults") if top.has("defaults") else None
    rules = loader.read_rules(top, defaults) + loader.read_slos(top, defaults)
    loader.check_unique(rules)
    if errors:
        raise SpecError(errors)
    return Spec(filename, job, interval, tuple(rules), dict(loader.histograms), examples, route)


def template_labels(text: str) -> list[str]:
    """Labels a `{{ $labels.NAME }}` template refers to."""
    return _TEMPLATE.findall(text)


def _duration(reader: MappingReader, key: str, default: str | None = None, *,
              positive: bool = False) -> int:
    value = reader.raw(key, default)
    if value is None:
        reader.error(key, "is required")
        return 0
    try:
        ms = parse_prometheus_duration_ms(value)
    except UnitError as exc:
        reader.error(key, str(exc))
        return 0
    if positive and ms <= 0:
        reader.error(key, "must be longer than 0s")
    return ms


class _SpecLoader:
    def __init__(self, filename: str, errors: list[str], job: str) -> None:
        self.filename = filename
        self.errors = errors
        self.common = (Matcher("job", "=", job),) if job else ()
        self.histograms: dict[str, tuple[float, ...]] = {}
        self.absent_watched: set[Selector] = set()  # one absent alert per distinct selector

    # ---- top-level sections ------------------------------------------------------------------
    def read_histograms(self, top: MappingReader) -> None:
        section = top.child("histograms", "histograms", optional=True)
        for name in section.data:
            entry = section.child(name, f"histogram {name!r}")
            entry.check_keys(("buckets",))
            buckets = entry.raw("buckets")
            if (not isinstance(buckets, list) or not buckets or not all(
                    isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
                    or sorted(buckets) != buckets or len(set(buckets)) != len(buckets)):
                entry.error("buckets", "must be a strictly increasing list of numbers")
                continue
            self.histograms[name] = tuple(float(b) for b in buckets)

    def read_examples(self, top: MappingReader) -> dict[str, tuple[str, ...]]:
        section = top.child("label_examples", "label_examples", optional=True)
        examples: dict[str, tuple[str, ...]] = {}
        for name, values in section.data.items():
            if not isinstance(values, list) or not values or not all(
                    isinstance(v, str) for v in values):
                section.error(name, "must be a non-empty list of texts")
                continue
            examples[name] = tuple(values)
        return examples

    def read_route(self, section: MappingReader) -> Route:
        section.check_keys(("receiver", "group_by", "group_wait", "group_interval",
                            "repeat_interval", "send_resolved"))
        defaults = Route()
        send_resolved = section.raw("send_resolved", True)
        if not isinstance(send_resolved, bool):
            section.error("send_resolved", f"must be true or false, got {send_resolved!r}")
            send_resolved = True
        return Route(
            receiver=section.text("receiver", defaults.receiver),
            group_by=tuple(section.string_list("group_by", list(defaults.group_by))),
            group_wait_ms=_duration(section, "group_wait", "0s"),
            group_interval_ms=_duration(section, "group_interval", "1m", positive=True),
            repeat_interval_ms=_duration(section, "repeat_interval", "4h", positive=True),
            send_resolved=send_resolved,
        )

    # ---- threshold rules -----------------------------------------------------------------------
    def read_rules(self, top: MappingReader, defaults: MappingReader | None) -> list[Rule]:
        items = top.raw("rules", [])
        if not isinstance(items, list):
            top.error("rules", "must be a list of rules")
            return []
        rules = []
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            where = f"rule {name!r}" if isinstance(name, str) else f"rule #{index + 1}"
            line = item.line if isinstance(item, LineDict) else top.line_of("rules")
            rule = self.read_rule(MappingReader(item, self.filename, where, self.errors, line),
                                  defaults)
            if rule is not None:
                rules.append(rule)
        return rules

    def read_rule(self, reader: MappingReader, defaults: MappingReader | None) -> Rule | None:
        reader.check_keys(_RULE_KEYS)
        name = self._name(reader)
        severity = reader.choice("severity", SEVERITIES)
        measure_reader = reader.child("measure")
        measure = self.read_measure(measure_reader)
        kind = measure.kind if measure is not None else ""
        op: str | None = None
        threshold: float | None = None
        if kind == "absent":
            for key in ("op", "threshold", "window", "min_traffic_rps"):
                if reader.has(key):
                    reader.error(key, "does not apply to an absent-metric alert")
        else:
            op = reader.choice("op", (">", "<"))
            threshold = reader.number("threshold")
        window = self._window(reader, defaults, kind)
        min_traffic = None
        if reader.has("min_traffic_rps"):
            if kind not in _TRAFFIC:
                reader.error("min_traffic_rps", f"applies to ratio and quantile measures, "
                                                f"not {kind or 'this measure'}")
            min_traffic = reader.number("min_traffic_rps", minimum=0, exclusive=True)
        labels = self._labels(reader, defaults)
        rule = Rule(
            name=name, group="pitchey-alerts", severity=severity,
            measure=measure if measure is not None else AbsentMeasure(Selector("up")),
            op=op, threshold=threshold,
            for_ms=self._default_duration(reader, defaults, "for", "0s"),
            keep_firing_for_ms=self._default_duration(reader, defaults, "keep_firing_for", "0s"),
            windows_ms=(window,) if window else (), min_traffic_rps=min_traffic,
            labels=labels, annotations=reader.string_map("annotations"),
            origin=f"{self.filename}:{reader.line}",
        )
        if measure is not None:
            self._check_annotations(reader, rule)
        return rule

    def _window(self, reader: MappingReader, defaults: MappingReader | None, kind: str) -> int:
        if kind in _WINDOWED:
            return self._default_duration(reader, defaults, "window", "5m", positive=True)
        if reader.has("window") and kind:
            reader.error("window", f"a {kind} measure reads the latest value; it has no window")
        return 0

    def read_measure(self, reader: MappingReader) -> Measure | None:
        kind = reader.raw("kind")
        if kind not in _MEASURE_KEYS:
            reader.error("kind", f"must be one of {', '.join(_MEASURE_KEYS)}, got {kind!r}")
            return None
        before = len(self.errors)
        reader.check_keys(_MEASURE_KEYS[kind])
        by = tuple(reader.string_list("by"))
        for label in by:
            if not _LABEL_NAME.match(label) or label == "le":
                reader.error("by", f"{label!r} cannot be a grouping label")
        measure = self._build_measure(reader, kind, by)
        return measure if len(self.errors) == before else None

    def _build_measure(self, reader: MappingReader, kind: str, by: tuple[str, ...]) -> Measure:
        sel = self._selector
        if kind == "gauge":
            aggregate = reader.choice("aggregate", ("max", "min", "sum"))
            return GaugeMeasure(sel(reader, "metric"), aggregate, by)
        if kind == "gauge_ratio":
            return GaugeRatioMeasure(sel(reader, "numerator"), sel(reader, "denominator"), by)
        if kind == "rate":
            return RateMeasure(sel(reader, "metric"), by)
        if kind == "ratio":
            return RatioMeasure(sel(reader, "numerator"), sel(reader, "denominator"), by)
        if kind == "quantile":
            histogram = sel(reader, "histogram")
            if histogram.metric not in self.histograms:
                reader.error("histogram", f"{histogram.metric!r} is not declared under "
                                          f"'histograms' (its bucket bounds are needed)")
            quantile = reader.number("quantile", minimum=0, maximum=1, exclusive=True)
            return QuantileMeasure(histogram, quantile, by)
        if kind == "projected_cost":
            return ProjectedCostMeasure(
                sel(reader, "requests"),
                reader.number("usd_per_million_requests", minimum=0, exclusive=True),
                reader.number("fixed_usd_per_month", 0.0, minimum=0),
                reader.number("budget_usd_per_month", minimum=0, exclusive=True))
        return AbsentMeasure(sel(reader, "metric"))

    def _selector(self, reader: MappingReader, key: str) -> Selector:
        try:
            selector = parse_selector(reader.raw(key))
        except SelectorError as exc:
            reader.error(key, str(exc) if reader.has(key) else "is required")
            return Selector("invalid")
        return selector.with_matchers(self.common)

    # ---- SLOs ----------------------------------------------------------------------------------
    def read_slos(self, top: MappingReader, defaults: MappingReader | None) -> list[Rule]:
        items = top.raw("slos", [])
        if not isinstance(items, list):
            top.error("slos", "must be a list of SLOs")
            return []
        rules: list[Rule] = []
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            where = f"slo {name!r}" if isinstance(name, str) else f"slo #{index + 1}"
            line = item.line if isinstance(item, LineDict) else top.line_of("slos")
            rules.extend(self.read_slo(MappingReader(item, self.filename, where, self.errors,
                                                     line), defaults))
        return rules

    def read_slo(self, reader: MappingReader, defaults: MappingReader | None) -> list[Rule]:
        reader.check_keys(("name", "objective", "total", "bad", "good", "min_traffic_rps",
                           "labels", "annotations", "absent", "burn_alerts"))
        slo = reader.text("name")
        objective = reader.number("objective", minimum=0, maximum=1, exclusive=True)
        total = self._selector(reader, "total")
        bad = self._selector(reader, "bad") if reader.has("bad") else None
        good = self._selector(reader, "good") if reader.has("good") else None
        if (bad is None) == (good is None):
            reader.error(None, "needs exactly one of 'bad' or 'good' (the events to count)")
        if good is not None:
            self._check_good_bucket(reader, good)
        min_traffic = reader.number("min_traffic_rps", minimum=0, exclusive=True)
        labels = {**self._labels(reader, defaults), "slo": slo}
        annotations = reader.string_map("annotations")
        rules = []
        alerts = reader.raw("burn_alerts")
        if not isinstance(alerts, list) or not alerts:
            reader.error("burn_alerts", "must be a non-empty list of burn-rate alerts")
            alerts = []
        for item in alerts:
            name = item.get("name") if isinstance(item, dict) else None
            alert = MappingReader(item, self.filename, f"slo {slo!r} burn alert {name!r}",
                                  self.errors, reader.line_of("burn_alerts"))
            measure_args = (slo, objective, total, bad, good)
            rules.append(self._burn_rule(alert, measure_args, min_traffic, labels, annotations))
        absent = reader.child("absent", f"slo {slo!r} absent", optional=True)
        for role, selector in (("Total", total), ("Good", good)):
            if selector is not None and selector not in self.absent_watched:
                self.absent_watched.add(selector)
                rules.append(self._absent_rule(absent, slo, role, selector, labels, annotations))
        return rules

    def _check_good_bucket(self, reader: MappingReader, good: Selector) -> None:
        base = good.metric.removesuffix("_bucket")
        le = {m.name: m.value for m in good.matchers if m.op == "="}.get("le")
        buckets = self.histograms.get(base)
        if not good.metric.endswith("_bucket") or le is None:
            reader.error("good", 'must select one bucket, e.g. name_bucket{le="0.1"}')
        elif buckets is None:
            reader.error("good", f"histogram {base!r} is not declared under 'histograms'")
        elif float(le) not in buckets:
            reader.error("good", f"le={le!r} is not a bucket bound of {base}: {list(buckets)}")

    def _burn_rule(self, alert: MappingReader, measure_args: tuple[Any, ...],
                   min_traffic: float, labels: dict[str, str],
                   annotations: dict[str, str]) -> Rule:
        alert.check_keys(("name", "severity", "windows", "burn_rate", "for", "keep_firing_for",
                          "annotations"))
        slo, objective, total, bad, good = measure_args
        name = self._name(alert)
        burn = alert.number("burn_rate", minimum=0, exclusive=True)
        # 12 significant digits: 14.4 x (1 - 0.9999) is 0.00144, not 0.0014399999999998414.
        threshold = float(f"{burn * (1 - objective):.12g}")
        if threshold >= 1:
            alert.error("burn_rate", f"{burn:g} x error budget {1 - objective:g} = "
                                     f"{threshold:g} >= 1: this alert could never fire")
        windows = alert.child("windows")
        windows.check_keys(("long", "short"))
        long_ms = _duration(windows, "long", positive=True)
        short_ms = _duration(windows, "short", positive=True)
        if long_ms and short_ms and short_ms >= long_ms:
            windows.error("short", "must be shorter than the long window")
        measure = ErrorRatioMeasure(slo, objective, burn, total, bad, good)
        text = {
            "summary": f"{slo} SLO error budget burning at {burn:g}x",
            "description": (f"The {slo} SLO ({objective * 100:g}%) burns its error budget at "
                            f"more than {burn:g}x over both the {windows.raw('long')} and "
                            f"{windows.raw('short')} windows."),
            **annotations, **alert.string_map("annotations"),
        }
        return Rule(name, "pitchey-slo", alert.choice("severity", SEVERITIES), measure, ">",
                    threshold, _duration(alert, "for", "0s"),
                    _duration(alert, "keep_firing_for", "0s"), (long_ms, short_ms), min_traffic,
                    labels, text, f"{self.filename}:{alert.line}")

    def _absent_rule(self, absent: MappingReader, slo: str, role: str, selector: Selector,
                     labels: dict[str, str], annotations: dict[str, str]) -> Rule:
        absent.check_keys(("severity", "for", "keep_firing_for"))
        name = f"{slo[:1].upper()}{slo[1:]}SLO{role}MetricAbsent"
        text = {
            "summary": f"{slo} SLO cannot be evaluated: {selector.metric} is absent",
            "description": (f"No series matches {selector.promql()}; the {slo} SLO alerts "
                            f"cannot fire while it is missing. Was the metric renamed or the "
                            f"target dropped?"),
            "runbook": annotations.get("runbook", ""),
        }
        return Rule(name, "pitchey-slo", absent.choice("severity", SEVERITIES, "high"),
                    AbsentMeasure(selector), None, None, _duration(absent, "for", "10m"),
                    _duration(absent, "keep_firing_for", "0s"), (), None, labels,
                    {k: v for k, v in text.items() if v}, f"{self.filename}:{absent.line}")

    # ---- shared pieces -------------------------------------------------------------------------
    def _name(self, reader: MappingReader) -> str:
        name = reader.text("name")
        if name and not _NAME.match(name):
            reader.error("name", f"{name!r} must be letters, digits and _ (a Prometheus alert "
                                 f"name such as HighErrorRate)")
        return name

    def _labels(self, reader: MappingReader, defaults: MappingReader | None) -> dict[str, str]:
        base = defaults.string_map("labels") if defaults is not None else {}
        labels = {**base, **reader.string_map("labels")}
        for name, value in labels.items():
            if not _LABEL_NAME.match(name) or name in ("alertname", "severity", "__name__"):
                reader.error("labels", f"{name!r} cannot be a rule label")
            if "{{" in value:
                reader.error("labels", f"label {name!r}: templates are not allowed in labels")
        return labels

    def _default_duration(self, reader: MappingReader, defaults: MappingReader | None, key: str,
                          fallback: str, *, positive: bool = False) -> int:
        if reader.has(key) or defaults is None or not defaults.has(key):
            return _duration(reader, key, fallback, positive=positive)
        return _duration(defaults, key, fallback, positive=positive)

    def _check_annotations(self, reader: MappingReader, rule: Rule) -> None:
        available = set(_output_labels(rule.measure))
        for key, text in rule.annotations.items():
            stripped = _TEMPLATE.sub("", text)
            if "{{" in stripped or "}}" in stripped:
                reader.error("annotations", f"{key!r}: only {{{{ $labels.NAME }}}} templates "
                                            f"are supported (the evaluator renders them too)")
            for label in template_labels(text):
                if label not in available:
                    reader.error("annotations", f"{key!r} uses $labels.{label}, which this "
                                                f"alert does not carry (it has: "
                                                f"{', '.join(sorted(available)) or 'none'})")
        if "summary" not in rule.annotations:
            reader.error("annotations", "needs a 'summary'")
        if "runbook" not in rule.annotations:
            reader.error("annotations", "needs a 'runbook' (what to do when it fires)")

    def check_unique(self, rules: list[Rule]) -> None:
        seen: dict[str, str] = {}
        for rule in rules:
            if rule.name in seen:
                self.errors.append(f"{rule.origin}: rule {rule.name!r}: key 'name': the name is "
                                   f"already used at {seen[rule.name]}")
            seen.setdefault(rule.name, rule.origin)


def _output_labels(measure: Measure) -> tuple[str, ...]:
    """Labels of the series a measure produces (what $labels offers)."""
    if isinstance(measure, AbsentMeasure):
        return tuple(measure.selector.equalities())
    return tuple(getattr(measure, "by", ()))
