"""YAML loading that remembers line numbers, and a checked reader over the result.

Every error a person can make in the spec becomes one `SpecError` line naming the file, the
line, the rule and the key: `alerts/rules.yaml:42: rule 'HighErrorRate': key 'threshold':
must be a number, got 'high'`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

__all__ = ["LineDict", "MappingReader", "SpecError", "load_yaml"]


class SpecError(ValueError):
    """The alert spec is wrong; `errors` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class LineDict(dict[str, Any]):
    """A mapping from the YAML file with the line of itself and of each key."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[str, int] = {}


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    data = LineDict()
    data.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is not text", key_node.start_mark)
        if key in data:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {data.key_lines[key]})",
                key_node.start_mark)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line
    return data


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, filename: str) -> Any:
    """Parse `text`; a syntax error becomes a SpecError naming the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError([f"{filename}{line}: YAML: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{filename}: YAML: {exc}"]) from None


class MappingReader:
    """Typed access to one mapping of the spec, collecting errors instead of raising.

    `where` names the thing being read ("rule 'HighErrorRate'"); each getter returns a usable
    default after recording an error, so one pass reports every problem in the file.
    """

    def __init__(self, data: object, filename: str, where: str, errors: list[str],
                 line: int = 0) -> None:
        self.filename = filename
        self.where = where
        self.errors = errors
        if isinstance(data, LineDict):
            self.data: LineDict = data
            self.line = data.line
        else:
            self.data = LineDict()
            self.line = line
            self.errors.append(self._prefix(None, line) + "must be a mapping of keys to values")

    def _prefix(self, key: str | None, line: int | None = None) -> str:
        at = line if line is not None else self.data.key_lines.get(key or "", self.line)
        location = f"{self.filename}:{at}" if at else self.filename
        subject = f" {self.where}:" if self.where else ""
        keypart = f" key {key!r}:" if key else ""
        return f"{location}:{subject}{keypart} "

    def error(self, key: str | None, message: str) -> None:
        self.errors.append(self._prefix(key) + message)

    def line_of(self, key: str) -> int:
        return self.data.key_lines.get(key, self.line)

    def check_keys(self, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for key in self.data:
            if key not in allowed_set:
                self.error(key, f"unknown key; expected one of {', '.join(sorted(allowed_set))}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value is None:
            self.error(key, "is required") if key not in self.data else self.error(
                key, "must be text")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.error(key, f"must be non-empty text, got {value!r}")
            return ""
        return value

    def number(self, key: str, default: float | None = None, *, minimum: float | None = None,
               maximum: float | None = None, exclusive: bool = False) -> float:
        value = self.data.get(key, default)
        if value is None:
            self.error(key, "is required")
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number, got {value!r}")
            return 0.0
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            self.error(key, f"must be a finite number, got {value!r}")
        low_bad = minimum is not None and (number <= minimum if exclusive else number < minimum)
        high_bad = maximum is not None and (number >= maximum if exclusive else number > maximum)
        if low_bad or high_bad:
            bounds = f"between {minimum} and {maximum}" if maximum is not None else (
                f"above {minimum}" if exclusive else f"at least {minimum}")
            self.error(key, f"must be {bounds}{' (exclusive)' if exclusive else ''}, got {value!r}")
        return number

    def choice(self, key: str, options: Iterable[str], default: str | None = None) -> str:
        option_list = list(options)
        value = self.data.get(key, default)
        if value not in option_list:
            self.error(key, f"must be one of {', '.join(option_list)}, got {value!r}")
            return option_list[0]
        return str(value)

    def string_list(self, key: str, default: list[str] | None = None) -> list[str]:
        value = self.data.get(key, default if default is not None else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(key, f"must be a list of non-empty texts, got {value!r}")
            return []
        return list(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.error(key, f"must map names to texts, got {value!r}")
            return {}
        return dict(value)

    def child(self, key: str, where: str | None = None, *, optional: bool = False
              ) -> MappingReader:
        """The mapping under `key`; an absent optional one reads as empty."""
        value = self.data.get(key)
        if value is None and optional and key not in self.data:
            value = LineDict()
            value.line = self.line
        return MappingReader(value, self.filename, where or self.where, self.errors,
                             self.line_of(key))
