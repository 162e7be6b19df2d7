"""Request input checks, exactly as "Cloudflare Deployment Guide for Pitchey Platform" states
them (§ Security Considerations › 4. Input Validation), plus the ones that keep bad input
from ever reaching the database as a 5xx.

The guide's zod schema: title 1-200, logline 10-500, synopsis 50-5000, genre one of Action,
Comedy, Drama, Horror, Sci-Fi, Thriller; budget_range one of micro, low, medium, high,
blockbuster.
Text is trimmed before its length is checked (a title of spaces is empty). Every text must
also be storable: no NUL characters and no lone surrogates, which PostgreSQL refuses. Every
number that reaches SQL fits a signed 64-bit integer. Unknown body fields are ignored, as
zod's default object schema does.

All errors of one request are collected and raised together as one 422 naming each field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

from aiohttp import web

from pitchey.errors import ApiError, field_errors

__all__ = [
    "BUDGET_RANGES",
    "GENRES",
    "MAX_ID",
    "PITCH_STATUSES",
    "PORTALS",
    "PUBLIC_STATUSES",
    "TEXT_LIMITS",
    "Checker",
    "ListQuery",
    "Page",
    "parse_id",
    "parse_page",
    "parse_pitch_list",
    "parse_query_choice",
    "parse_query_id",
    "parse_query_int",
    "read_json",
    "validate_pitch",
]

GENRES = ("Action", "Comedy", "Drama", "Horror", "Sci-Fi", "Thriller")
BUDGET_RANGES = ("micro", "low", "medium", "high", "blockbuster")
PITCH_STATUSES = ("draft", "published", "archived")
# what the public list may show; drafts are visible to their owner only
PUBLIC_STATUSES = ("published", "archived")
PORTALS = ("creator", "investor", "production")
TEXT_LIMITS: dict[str, tuple[int, int]] = {
    "title": (1, 200),
    "logline": (10, 500),
    "synopsis": (50, 5000),
    "budget_details": (0, 2000),
    "script_url": (1, 2000),  # "" is no URL; null clears the field
}
MAX_ID = 2**63 - 1
MAX_PAGE = 100_000
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
_DIGITS = re.compile(r"[0-9]{1,19}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object: 400 when it is not JSON, 422 when it is JSON but
    not an object. Oversize bodies are refused by aiohttp (413) before this reads them."""
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise field_errors({"body": f"must be a JSON object, not {_json_type(data)}"})
    return data


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _storable(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


class Checker:
    """Collects the cleaned values and the errors of one object, field by field."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def _present(self, name: str, required: bool) -> bool:
        if name in self.body:
            return True
        if required:
            self.errors[name] = "is required"
        return False

    def text(
        self, name: str, low: int, high: int, *, required: bool = True, nullable: bool = False
    ) -> None:
        if not self._present(name, required):
            return
        value = self.body[name]
        if value is None and nullable:
            self.values[name] = None
            return
        value = self._string(name, low, high, strip=True)
        if value is not None:
            self.values[name] = value if value or not nullable else None

    def password(self, name: str, low: int, high: int) -> None:
        """A password is exactly what the user typed: unlike `text`, never stripped or
        normalised (spaces and tabs at either end are part of it)."""
        if not self._present(name, True):
            return
        value = self._string(name, low, high, strip=False)
        if value is not None:
            self.values[name] = value

    def _string(self, name: str, low: int, high: int, *, strip: bool) -> str | None:
        """The field as a storable string of `low`..`high` characters (after stripping when
        `strip`), or None with the error recorded."""
        value = self.body[name]
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return None
        problem = _storable(value)
        if problem is not None:
            self.errors[name] = problem
            return None
        if strip:
            value = value.strip()
        if not low <= len(value) <= high:
            self.errors[name] = (
                f"must be between {low} and {high} characters long (got {len(value)})"
            )
            return None
        return value

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = True) -> None:
        if not self._present(name, required):
            return
        value = self.body[name]
        if not isinstance(value, str) or value not in options:
            self.errors[name] = "must be one of " + ", ".join(options)
            return
        self.values[name] = value

    def identifier(self, name: str, *, required: bool = True, nullable: bool = False) -> None:
        """A positive id that fits a BIGINT column (JSON booleans are not numbers here)."""
        if not self._present(name, required):
            return
        value = self.body[name]
        if value is None and nullable:
            self.values[name] = None
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            self.errors[name] = f"must be a whole number between 1 and {MAX_ID}"
            return
        self.values[name] = value

    def url(self, name: str) -> None:
        """Optional http(s) URL without whitespace."""
        self.text(name, *TEXT_LIMITS[name], required=False, nullable=True)
        if name not in self.values or self.body[name] is None:
            return
        value = self.values[name]
        # "" (or spaces) is no URL: null is how a client clears the field
        if not value or (
            not value.startswith(("http://", "https://")) or any(c.isspace() for c in value)
        ):
            del self.values[name]
            self.errors[name] = "must be an http:// or https:// URL without spaces"

    def done(self) -> dict[str, Any]:
        if self.errors:
            raise field_errors(self.errors)
        return self.values


def validate_pitch(body: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The cleaned pitch fields. `partial` (PUT) checks only the fields that are present but
    needs at least one of them."""
    required = not partial
    check = Checker(body)
    for name in ("title", "logline", "synopsis"):
        check.text(name, *TEXT_LIMITS[name], required=required)
    check.choice("genre", GENRES, required=required)
    check.choice("budget_range", BUDGET_RANGES, required=required)
    check.choice("status", PITCH_STATUSES, required=False)
    check.text("budget_details", *TEXT_LIMITS["budget_details"], required=False, nullable=True)
    check.url("script_url")
    values = check.done()
    if partial and not values:
        raise field_errors({"body": "name at least one field to change"})
    return values


# -- query strings and path parameters -----------------------------------------------------


def _query_int(
    query: Mapping[str, str], name: str, default: int, high: int, errors: dict[str, str]
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    # an empty value (`?page=`) is refused like any other non-number: the OpenAPI document
    # types it as an integer, and a client that sends it has a bug worth telling about
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= high:
        errors[name] = f"must be a whole number between 1 and {high}"
        return default
    return int(raw)


@dataclass(frozen=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def parse_page(query: Mapping[str, str], errors: dict[str, str] | None = None) -> Page:
    """`page` (1-100000, default 1) and `per_page` (1-100, default 20)."""
    collected: dict[str, str] = {} if errors is None else errors
    page = Page(
        _query_int(query, "page", 1, MAX_PAGE, collected),
        _query_int(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE, collected),
    )
    if errors is None and collected:
        raise field_errors(collected)
    return page


@dataclass(frozen=True)
class ListQuery:
    """A validated pitch-list query; `cache_key` is canonical, so equal queries share bytes."""

    page: Page
    status: str
    genre: str | None
    budget_range: str | None

    @cached_property
    def cache_key(self) -> str:
        return (
            f"list:{self.page.page}:{self.page.per_page}:{self.status}:"
            f"{self.genre or ''}:{self.budget_range or ''}"
        )


def _query_choice(
    query: Mapping[str, str], name: str, options: tuple[str, ...], errors: dict[str, str]
) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in options:  # "" included: `?genre=` is no filter the document allows
        errors[name] = "must be one of " + ", ".join(options)
        return None
    return raw


def parse_query_id(query: Mapping[str, str], name: str, errors: dict[str, str]) -> int | None:
    """An optional id in the query string (1 to MAX_ID); None when absent."""
    raw = query.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        errors[name] = f"must be a whole number between 1 and {MAX_ID}"
        return None
    return int(raw)


def parse_query_int(
    query: Mapping[str, str], name: str, default: int, high: int, errors: dict[str, str]
) -> int:
    """An optional whole number 1..`high` in the query string; `default` when absent."""
    return _query_int(query, name, default, high, errors)


def parse_query_choice(
    query: Mapping[str, str], name: str, options: tuple[str, ...], errors: dict[str, str]
) -> str | None:
    """An optional enum value in the query string; None when absent, refused when empty."""
    return _query_choice(query, name, options, errors)


def parse_pitch_list(query: Mapping[str, str]) -> ListQuery:
    errors: dict[str, str] = {}
    page = parse_page(query, errors)
    status = _query_choice(query, "status", PUBLIC_STATUSES, errors) or "published"
    genre = _query_choice(query, "genre", GENRES, errors)
    budget = _query_choice(query, "budget_range", BUDGET_RANGES, errors)
    if errors:
        raise field_errors(errors)
    return ListQuery(page, status, genre, budget)


def parse_id(raw: str, what: str = "resource") -> int:
    """A path id; one that cannot exist (0, or past BIGINT) is simply not found."""
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise ApiError(404, "not_found", f"no such {what}")
    return int(raw)
