"""The versioned price table (prices.yaml beside this module) and its loader.

Every price carries its source and date, because prices change and a cost projection is
only as good as the oldest figure in it. A bad file is an error that names the file, the
line and the key, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_PRICES_PATH",
    "Price",
    "PriceTable",
    "PriceTableError",
    "load_price_table",
    "default_price_table",
]

DEFAULT_PRICES_PATH = Path(__file__).with_name("prices.yaml")

# Keys the cost model charges; a table without one of them cannot price a month.
REQUIRED_PRICES = (
    "workers_base", "workers_requests", "workers_cpu_ms", "kv_reads", "kv_writes",
    "kv_storage", "r2_storage", "r2_class_a", "r2_class_b", "do_requests", "do_duration",
    "neon_compute_launch", "neon_compute_scale", "neon_storage",
)
_PRICE_FIELDS = ("product", "item", "unit", "price", "per", "included", "source", "as_of")


class PriceTableError(ValueError):
    """A price file that cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class Price:
    key: str
    product: str
    item: str
    unit: str
    price: float
    per: float
    included: float
    source: str
    as_of: str
    source_url: str = ""
    note: str = ""

    def charge(self, quantity: float) -> float:
        """Dollars for `quantity` units in a month, after the monthly allowance."""
        return max(0.0, quantity - self.included) / self.per * self.price

    @property
    def rate_text(self) -> str:
        """"$0.3 per 1M requests", "$0.015 per GB-month"."""
        if self.per == 1:
            return f"${self.price:g} per {self.unit}"
        plural = self.unit if self.unit.endswith("s") else f"{self.unit}s"
        return f"${self.price:g} per {self.per / 1e6:g}M {plural}"


@dataclass(frozen=True)
class PriceTable:
    version: str
    currency: str
    month_days: int
    prices: Mapping[str, Price]
    reference_estimates: Mapping[str, float]
    reference_source: str
    path: str
    reference_total: float | None = None  # the total the document states
    reference_labels: Mapping[str, str] = dataclass_field(default_factory=dict)  # group -> its name

    def __getitem__(self, key: str) -> Price:
        return self.prices[key]

    @property
    def oldest_as_of(self) -> str:
        return min(p.as_of for p in self.prices.values())

    def rows(self) -> list[dict[str, str]]:
        """The table as display rows: product, item, rate, included, source, date."""
        return [
            {
                "key": p.key, "product": p.product, "item": p.item, "rate": p.rate_text,
                "included": f"{p.included:,.0f} {p.unit}" if p.included else "-",
                "source": p.source, "as_of": p.as_of, "note": p.note,
            }
            for p in self.prices.values()
        ]


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key path in the document, for error messages."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key_path = (*path, str(key_node.value))
                lines[key_path] = key_node.start_mark.line + 1
                walk(value_node, key_path)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


class _Checker:
    """Builds errors that point at a key path in one file."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = _key_lines(text)

    def fail(self, key_path: tuple[str, ...], reason: str) -> PriceTableError:
        probe = key_path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        return PriceTableError(f"{self.path}:{line}: {'.'.join(key_path)}: {reason}")

    def number(self, raw: Mapping[str, Any], key_path: tuple[str, ...]) -> float:
        value = raw.get(key_path[-1])
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key_path, f"must be a number, got {value!r}")
        if value < 0:
            raise self.fail(key_path, f"must not be negative, got {value!r}")
        return float(value)


def _date_text(value: object) -> str | None:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def _parse_price(check: _Checker, key: str, raw: object) -> Price:
    base = ("prices", key)
    if not isinstance(raw, Mapping):
        raise check.fail(base, "must be a mapping of price fields")
    for field in _PRICE_FIELDS:
        if field not in raw:
            raise check.fail((*base, field), "is missing")
    as_of = _date_text(raw["as_of"])
    if as_of is None:
        raise check.fail((*base, "as_of"), f"must be a date YYYY-MM-DD, got {raw['as_of']!r}")
    per = check.number(raw, (*base, "per"))
    if per == 0:
        raise check.fail((*base, "per"), "must be positive")
    return Price(
        key=key, product=str(raw["product"]), item=str(raw["item"]), unit=str(raw["unit"]),
        price=check.number(raw, (*base, "price")), per=per,
        included=check.number(raw, (*base, "included")), source=str(raw["source"]),
        as_of=as_of, source_url=str(raw.get("source_url", "")), note=str(raw.get("note", "")),
    )


@dataclass(frozen=True)
class _Reference:
    groups: dict[str, float]
    source: str = ""
    total: float | None = None
    labels: dict[str, str] = dataclass_field(default_factory=dict)


def _parse_reference(check: _Checker, raw: object) -> _Reference:
    if raw is None:
        return _Reference({})
    if not isinstance(raw, Mapping) or not isinstance(raw.get("groups"), Mapping):
        raise check.fail(("reference_estimates", "groups"), "must be a mapping group -> dollars")
    groups = raw["groups"]
    figures = {
        str(k): check.number(groups, ("reference_estimates", "groups", str(k))) for k in groups
    }
    total = (check.number(raw, ("reference_estimates", "total")) if "total" in raw else None)
    labels = raw.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise check.fail(("reference_estimates", "labels"), "must be a mapping group -> name")
    return _Reference(figures, str(raw.get("source", "")), total,
                      {str(k): str(v) for k, v in labels.items()})


def parse_price_table(text: str, path: str = "<prices>") -> PriceTable:
    """Parse the YAML text of a price table; errors name `path`, the line and the key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PriceTableError(f"{path}:{line}: not valid YAML: {problem}") from None
    check = _Checker(path, text)
    if not isinstance(raw, Mapping) or raw.get("format") != "pitchey-prices":
        raise check.fail(("format",), "must be 'pitchey-prices' (is this a price table?)")
    if not isinstance(raw.get("prices"), Mapping):
        raise check.fail(("prices",), "must be a mapping of price key -> price")
    prices = {str(k): _parse_price(check, str(k), v) for k, v in raw["prices"].items()}
    for key in REQUIRED_PRICES:
        if key not in prices:
            raise check.fail(("prices", key), "is missing (the cost model charges it)")
    month_days = check.number(raw, ("month_days",)) if "month_days" in raw else 30.0
    reference = _parse_reference(check, raw.get("reference_estimates"))
    return PriceTable(
        version=str(raw.get("version", "")), currency=str(raw.get("currency", "USD")),
        month_days=int(month_days), prices=prices, reference_estimates=reference.groups,
        reference_source=reference.source, path=path, reference_total=reference.total,
        reference_labels=reference.labels,
    )


def load_price_table(path: str | Path = DEFAULT_PRICES_PATH) -> PriceTable:
    """Load and validate a price table file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceTableError(f"{path}: cannot read price table: {exc.strerror}") from None
    return parse_price_table(text, str(path))


_DEFAULT: PriceTable | None = None


def default_price_table() -> PriceTable:
    """The shipped table, parsed once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_price_table()
    return _DEFAULT
