"""Series selectors as written in the spec: `metric{label="v", other=~"re"}`.

The same parsed selector is rendered into PromQL and matched by the embedded evaluator, so the
two cannot drift apart. Regular expressions are fully anchored, as in Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Matcher", "Selector", "SelectorError", "parse_selector", "promql_string"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_SELECTOR = re.compile(rf"^\s*({_NAME})\s*(?:\{{(.*)\}})?\s*$", re.S)
_MATCHER = re.compile(rf'\s*({_LABEL})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
OPS = ("=", "!=", "=~", "!~")


class SelectorError(ValueError):
    """A selector text that is not `name{label="value", ...}`."""


def promql_string(value: str) -> str:
    """A double-quoted PromQL/Go string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(f"^(?:{self.value})$")

    def matches(self, labels: Mapping[str, str]) -> bool:
        # A missing label matches like the empty string, as in Prometheus.
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._pattern.match(actual) is not None
        return found if self.op == "=~" else not found

    def promql(self) -> str:
        return f"{self.name}{self.op}{promql_string(self.value)}"


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def with_matchers(self, extra: tuple[Matcher, ...]) -> Selector:
        """This selector plus `extra` matchers on labels it does not constrain yet."""
        mine = {m.name for m in self.matchers}
        return Selector(self.metric, self.matchers + tuple(m for m in extra if m.name not in mine))

    def renamed(self, metric: str) -> Selector:
        return Selector(metric, self.matchers)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def equalities(self) -> dict[str, str]:
        """Labels fixed by `=` matchers (what `absent()` puts on its answer)."""
        return {m.name: m.value for m in self.matchers if m.op == "=" and m.value}

    def promql(self) -> str:
        if not self.matchers:
            return self.metric
        return f"{self.metric}{{{', '.join(m.promql() for m in self.matchers)}}}"


def parse_selector(text: object) -> Selector:
    if not isinstance(text, str):
        raise SelectorError(f"{text!r} is not a selector such as name{{label=\"value\"}}")
    found = _SELECTOR.match(text)
    if not found:
        raise SelectorError(f"{text!r} is not a selector such as name{{label=\"value\"}}")
    metric, body = found.group(1), found.group(2) or ""
    matchers: list[Matcher] = []
    position = 0
    while body[position:].strip():
        item = _MATCHER.match(body, position)
        if not item:
            raise SelectorError(f"{text!r}: cannot read the matcher at {body[position:]!r}")
        value = re.sub(r"\\(.)", lambda g: {"n": "\n"}.get(g.group(1), g.group(1)), item.group(3))
        matcher = Matcher(item.group(1), item.group(2), value)
        if matcher.op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise SelectorError(f"{text!r}: bad regular expression {value!r}: {exc}") from None
        matchers.append(matcher)
        position = item.end()
    return Selector(metric, tuple(matchers))
