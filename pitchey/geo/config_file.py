"""Read a regions YAML file into a `GeoConfig`.

Every key is optional and falls back to the default of `pitchey.geo.regions` (docs/targets.md
says where each comes from). A mistake (unknown key, wrong type, value out of range, unknown
region) raises `GeoConfigError` naming the file, the line and the dotted key, so a person can
fix it without reading code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from pitchey.geo.regions import (
    ROUTING_STRATEGIES,
    SEED_REGIONS,
    BreakerConfig,
    CacheConfig,
    CoalescingConfig,
    EdgeConfig,
    GeoConfig,
    HealthConfig,
    LatencyConfig,
    PriorityClass,
    PriorityConfig,
    Region,
    SupervisorConfig,
    TimeoutConfig,
    default_one_way_ms,
)

__all__ = ["GeoConfigError", "load_geo_config", "parse_geo_config", "DEFAULT_REGIONS_FILE"]

DEFAULT_REGIONS_FILE = Path(__file__).with_name("regions.yaml")

_T = TypeVar("_T")

# Keys whose value must be strictly positive (every other number only has to be >= 0).
_POSITIVE = {
    "health.interval_s", "health.timeout_s", "breaker.volume_threshold",
    "breaker.sleep_window_s", "breaker.success_threshold", "breaker.error_threshold_pct",
    "coalescing.window_ms", "coalescing.max_batch", "cache.edge_size_mb",
    "cache.query_max_entries", "timeouts.server_s", "timeouts.connect_s", "timeouts.client_s",
    "timeouts.http_request_s", "timeouts.keep_alive_s", "timeouts.queue_s",
    "edge.max_connections", "edge.threads", "edge.max_queue", "supervisor.start_timeout_s",
}
_PERCENT = {"breaker.error_threshold_pct"}
# Names and paths are written into HAProxy's configuration: nothing that could end a token.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_PATH = re.compile(r"/[A-Za-z0-9_.~/-]*")


class GeoConfigError(ValueError):
    """A regions file that cannot be used; the message is `file:line: key: reason`."""


class _Reader:
    """Walks the composed YAML node tree, so every error knows its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._constructor = yaml.SafeLoader("")

    def fail(self, node: yaml.Node | None, key: str, reason: str) -> GeoConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return GeoConfigError(f"{self.source}{line}: {key or '(document)'}: {reason}")

    def mapping(self, node: yaml.Node, key: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "must be a mapping")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = self.scalar(key_node, key)
            if not isinstance(name, str):
                raise self.fail(key_node, key, f"keys must be text, got {name!r}")
            if name in entries:
                raise self.fail(key_node, _join(key, name), "appears twice")
            entries[name] = (key_node, value_node)
        return entries

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "must be a single value")
        return self._constructor.construct_object(node, deep=True)

    def strings(self, node: yaml.Node, key: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, "must be a list")
        values = tuple(self.scalar(item, key) for item in node.value)
        for item, value in zip(node.value, values, strict=True):
            if not isinstance(value, str) or not value:
                raise self.fail(item, key, f"list items must be non-empty text, got {value!r}")
        return values

    def number(self, node: yaml.Node, key: str, *, integer: bool = False) -> float:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "a whole number" if integer else "a number"
            raise self.fail(node, key, f"must be {kind}, got {value!r}")
        if integer and not (isinstance(value, int) or float(value).is_integer()):
            raise self.fail(node, key, f"must be a whole number, got {value!r}")
        if key in _POSITIVE and value <= 0:
            raise self.fail(node, key, f"must be > 0, got {value!r}")
        if value < 0:
            raise self.fail(node, key, f"must be >= 0, got {value!r}")
        if key in _PERCENT and value > 100:
            raise self.fail(node, key, f"must be at most 100, got {value!r}")
        return float(value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.fail(node, key, f"must be true or false, got {value!r}")
        return value

    def text(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value:
            raise self.fail(node, key, f"must be non-empty text, got {value!r}")
        return value

    def section(self, node: yaml.Node, key: str, base: _T) -> _T:
        """Override the scalar/list fields of a flat dataclass section; the default value's
        type says how each key is read."""
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for name, (key_node, value_node) in self.mapping(node, key).items():
            full = _join(key, name)
            if name not in fields:
                raise self.unknown(key_node, full, fields)
            default = fields[name]
            if isinstance(default, bool):
                changes[name] = self.boolean(value_node, full)
            elif isinstance(default, int):
                changes[name] = int(self.number(value_node, full, integer=True))
            elif isinstance(default, float):
                changes[name] = self.number(value_node, full)
            elif isinstance(default, tuple):
                changes[name] = self.strings(value_node, full)
            else:  # pragma: no cover - every flat section field is one of the above
                raise TypeError(f"{full}: unsupported field type {type(default).__name__}")
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]

    def unknown(self, node: yaml.Node, key: str, allowed: Mapping[str, object]) -> GeoConfigError:
        return self.fail(node, key, "unknown key (expected one of " + ", ".join(allowed) + ")")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


_SEED_BY_NAME = {region.name: region for region in SEED_REGIONS}
_REGION_KEYS = ("colos", "weight", "capacity", "latency_ms", "max_in_flight")


def _region(reader: _Reader, name: str, node: yaml.Node) -> Region:
    key = f"regions.{name}"
    seed = _SEED_BY_NAME.get(name)
    entries = reader.mapping(node, key) if not _is_null(node) else {}
    values: dict[str, Any] = dataclasses.asdict(seed) if seed else {"colos": ()}
    for field_name, (key_node, value_node) in entries.items():
        full = f"{key}.{field_name}"
        if field_name not in _REGION_KEYS:
            raise reader.unknown(key_node, full, dict.fromkeys(_REGION_KEYS))
        if field_name == "colos":
            values["colos"] = reader.strings(value_node, full)
        elif field_name == "latency_ms":
            values["latency_ms"] = reader.number(value_node, full)
        else:
            number = int(reader.number(value_node, full, integer=True))
            if number <= 0:
                raise reader.fail(value_node, full, f"must be > 0, got {number}")
            values[field_name] = number
    for required in ("weight", "capacity", "latency_ms"):
        if required not in values:
            raise reader.fail(node, f"{key}.{required}", "is required for a region the seed "
                              "does not define")
    if "max_in_flight" not in values or (seed and "capacity" in entries
                                         and "max_in_flight" not in entries):
        values["max_in_flight"] = max(1, int(values["capacity"]) // 100)
    values["name"] = name
    values["colos"] = tuple(values["colos"])
    return Region(**values)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _regions(reader: _Reader, node: yaml.Node) -> tuple[Region, ...]:
    entries = reader.mapping(node, "regions")
    if not entries:
        raise reader.fail(node, "regions", "must list at least one region")
    return tuple(_region(reader, name, value) for name, (_, value) in entries.items())


def _priorities(reader: _Reader, node: yaml.Node) -> PriorityConfig:
    base = PriorityConfig()
    changes: dict[str, Any] = {}
    entries = reader.mapping(node, "priorities")
    for name, (key_node, value_node) in entries.items():
        full = f"priorities.{name}"
        if name == "retry_after_s":
            changes[name] = max(1, int(reader.number(value_node, full, integer=True)))
        elif name == "default_class":
            changes[name] = reader.text(value_node, full)
        elif name == "classes":
            changes[name] = _priority_classes(reader, value_node)
        else:
            raise reader.unknown(key_node, full, dict.fromkeys(
                ("classes", "default_class", "retry_after_s")))
    result = dataclasses.replace(base, **changes)
    if result.default_class not in {c.name for c in result.classes}:
        where = entries["default_class"][1] if "default_class" in entries else node
        raise reader.fail(where, "priorities.default_class",
                          f"{result.default_class!r} is not one of the classes")
    return result


def _priority_classes(reader: _Reader, node: yaml.Node) -> tuple[PriorityClass, ...]:
    classes = []
    for name, (_key_node, value_node) in reader.mapping(node, "priorities.classes").items():
        key = f"priorities.classes.{name}"
        entries = reader.mapping(value_node, key)
        for field_name, (inner_key, _) in entries.items():
            if field_name not in ("priority", "paths"):
                raise reader.unknown(inner_key, f"{key}.{field_name}",
                                     dict.fromkeys(("priority", "paths")))
        if "priority" not in entries:
            raise reader.fail(value_node, f"{key}.priority", "is required")
        priority = int(reader.number(entries["priority"][1], f"{key}.priority", integer=True))
        if not 1 <= priority <= 10:
            raise reader.fail(entries["priority"][1], f"{key}.priority",
                              f"must be between 1 and 10, got {priority}")
        paths = reader.strings(entries["paths"][1], f"{key}.paths") if "paths" in entries else ()
        classes.append(PriorityClass(name, priority, paths))
    if not classes:
        raise reader.fail(node, "priorities.classes", "must define at least one class")
    return tuple(classes)


def _latency(reader: _Reader, node: yaml.Node, regions: tuple[Region, ...]) -> LatencyConfig:
    names = {region.name for region in regions}
    matrix = default_one_way_ms(regions)
    explicit: set[tuple[str, str]] = set()
    enabled = True
    for name, (key_node, value_node) in reader.mapping(node, "latency").items():
        if name == "enabled":
            enabled = reader.boolean(value_node, "latency.enabled")
        elif name == "one_way_ms":
            for source, (src_node, row) in reader.mapping(value_node, "latency.one_way_ms").items():
                if source not in names:
                    raise reader.fail(src_node, f"latency.one_way_ms.{source}", "unknown region")
                for target, (dst_node, ms_node) in reader.mapping(
                    row, f"latency.one_way_ms.{source}"
                ).items():
                    key = f"latency.one_way_ms.{source}.{target}"
                    if target not in names:
                        raise reader.fail(dst_node, key, "unknown region")
                    value = reader.number(ms_node, key)
                    matrix[(source, target)] = value
                    explicit.add((source, target))
                    if (target, source) not in explicit:
                        matrix[(target, source)] = value  # symmetric unless both are given
        else:
            raise reader.unknown(key_node, f"latency.{name}",
                                 dict.fromkeys(("enabled", "one_way_ms")))
    return LatencyConfig(enabled=enabled, one_way_ms=MappingProxyType(matrix))


_SECTIONS: dict[str, Callable[[], object]] = {
    "health": HealthConfig,
    "breaker": BreakerConfig,
    "coalescing": CoalescingConfig,
    "cache": CacheConfig,
    "timeouts": TimeoutConfig,
    "edge": EdgeConfig,
    "supervisor": SupervisorConfig,
}
_TOP_TEXT = ("primary_region", "default_region", "routing", "affinity_cookie")
_TOP_KEYS = (*_TOP_TEXT, "regions", *_SECTIONS, "priorities", "latency")


def parse_geo_config(text: str, source: str = "<text>") -> GeoConfig:
    """Parse YAML text into a GeoConfig; `source` names the file in error messages."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise GeoConfigError(f"{source}{line}: (document): not valid YAML: {problem}") from None
    if root is None or _is_null(root):
        return dataclasses.replace(GeoConfig(), source=source)
    entries = reader.mapping(root, "")
    for name, (key_node, _) in entries.items():
        if name not in _TOP_KEYS:
            raise reader.unknown(key_node, name, dict.fromkeys(_TOP_KEYS))
    changes: dict[str, Any] = {"source": source}
    regions = _regions(reader, entries["regions"][1]) if "regions" in entries else SEED_REGIONS
    changes["regions"] = regions
    for name in _TOP_TEXT:
        if name in entries:
            changes[name] = reader.text(entries[name][1], name)
    for name, factory in _SECTIONS.items():
        if name in entries:
            changes[name] = reader.section(entries[name][1], name, factory())
    if "priorities" in entries:
        changes["priorities"] = _priorities(reader, entries["priorities"][1])
    latency_node = entries.get("latency", (None, None))[1]
    if latency_node is not None:
        changes["latency"] = _latency(reader, latency_node, regions)
    else:
        changes["latency"] = LatencyConfig(one_way_ms=MappingProxyType(default_one_way_ms(regions)))
    config = dataclasses.replace(GeoConfig(), **changes)
    _check_cross_fields(reader, entries, config)
    return config


def _check_cross_fields(
    reader: _Reader, entries: Mapping[str, tuple[yaml.Node, yaml.Node]], config: GeoConfig
) -> None:
    def node_of(name: str) -> yaml.Node | None:
        return entries[name][1] if name in entries else None

    for region in config.regions:
        for name in (region.name, *region.colos):
            if not _NAME.fullmatch(name):
                raise reader.fail(node_of("regions"), f"regions.{region.name}",
                                  f"{name!r} is not a plain name (letters, digits, . _ -)")
    names = config.names
    for key in ("primary_region", "default_region"):
        if getattr(config, key) not in names:
            raise reader.fail(node_of(key) or node_of("regions"), key,
                              f"{getattr(config, key)!r} is not one of the regions "
                              f"({', '.join(names)})")
    if config.routing not in ROUTING_STRATEGIES:
        raise reader.fail(node_of("routing"), "routing",
                          f"{config.routing!r} is not one of {', '.join(ROUTING_STRATEGIES)}")
    if not _NAME.fullmatch(config.affinity_cookie):
        raise reader.fail(node_of("affinity_cookie"), "affinity_cookie",
                          f"{config.affinity_cookie!r} is not a plain cookie name")
    paths = {"health.endpoints": (node_of("health"), config.health.endpoints),
             "cache.edge_paths": (node_of("cache"), config.cache.edge_paths),
             "cache.edge_invalidate_on": (node_of("cache"), config.cache.edge_invalidate_on)}
    for klass in config.priorities.classes:
        paths[f"priorities.classes.{klass.name}.paths"] = (node_of("priorities"), klass.paths)
    for key, (node, values) in paths.items():
        for path in values:
            if not _PATH.fullmatch(path):
                raise reader.fail(node, key, f"{path!r} must start with / and hold only "
                                  "letters, digits and . _ ~ / -")
    if not config.health.endpoints:
        raise reader.fail(node_of("health"), "health.endpoints", "needs at least one endpoint")
    if config.cache.edge_size_mb > 4095:
        raise reader.fail(node_of("cache"), "cache.edge_size_mb", "must be at most 4095")


def load_geo_config(path: str | Path | None = None) -> GeoConfig:
    """The config in `path`, or the defaults (`GeoConfig()`) when `path` is None."""
    if path is None:
        return GeoConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise GeoConfigError(f"{file}: (file): cannot read: {exc.strerror or exc}") from None
    return parse_geo_config(text, str(file))
