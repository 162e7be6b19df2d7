"""The validation core on its own: whatever the input, a clean value within the Cloudflare
Deployment Guide's limits or a 422 naming only real fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitchey.errors import ApiError
from pitchey.validation import (
    BUDGET_RANGES,
    GENRES,
    MAX_ID,
    TEXT_LIMITS,
    Checker,
    parse_id,
    parse_pitch_list,
    validate_pitch,
)

FIELDS = ["title", "logline", "synopsis", "genre", "budget_range", "status", "budget_details",
          "script_url"]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(st.characters(exclude_categories=()), max_size=60),
    st.sampled_from([*GENRES, *BUDGET_RANGES, "published", "draft", "https://a.test/x"]),
    st.builds(lambda n: "x" * n, st.integers(min_value=0, max_value=5100)),
    st.lists(st.integers(), max_size=2),
)
_BODIES = st.dictionaries(st.sampled_from([*FIELDS, "other"]), _VALUES, max_size=9)


@settings(max_examples=400, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(body=_BODIES, partial=st.booleans())
def test_validate_pitch_is_total(body: dict[str, Any], partial: bool) -> None:
    try:
        values = validate_pitch(body, partial=partial)
    except ApiError as error:
        assert error.status == 422
        assert error.fields and set(error.fields) <= {*FIELDS, "body"}
        return
    for name, value in values.items():
        if name in ("title", "logline", "synopsis"):
            low, high = TEXT_LIMITS[name]
            assert low <= len(value) <= high and value == value.strip()
            assert "\x00" not in value
            value.encode("utf-8")
    assert values.get("genre", GENRES[0]) in GENRES
    assert values.get("budget_range", BUDGET_RANGES[0]) in BUDGET_RANGES
    assert "other" not in values


@settings(max_examples=300, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(query=st.dictionaries(
    st.sampled_from(["page", "per_page", "status", "genre", "budget_range"]),
    st.one_of(st.text(max_size=8), st.integers(min_value=-5, max_value=10**6).map(str)),
))
def test_list_query_is_total_and_canonical(query: dict[str, str]) -> None:
    try:
        parsed = parse_pitch_list(query)
    except ApiError as error:
        assert error.status == 422 and error.fields
        return
    assert 1 <= parsed.page.per_page <= 100
    assert parsed.page.offset >= 0
    assert parse_pitch_list(query).cache_key == parsed.cache_key


def test_list_defaults() -> None:
    parsed = parse_pitch_list({})
    assert (parsed.page.page, parsed.page.per_page, parsed.status) == (1, 20, "published")
    assert parsed.cache_key == parse_pitch_list({"page": "1", "per_page": "20"}).cache_key


@pytest.mark.parametrize("raw", ["0", "-1", str(MAX_ID + 1), "1" * 25, "١٢", "abc", ""])
def test_impossible_ids_are_not_found(raw: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_id(raw)
    assert caught.value.status == 404


def test_identifiers_reject_booleans_and_overflow() -> None:
    check = Checker({"a": True, "b": MAX_ID + 1, "c": 1.5, "d": MAX_ID})
    for name in "abcd":
        check.identifier(name)
    assert set(check.errors) == {"a", "b", "c"}
    assert check.values == {"d": MAX_ID}


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(ApiError) as caught:
        validate_pitch({"title": "", "genre": "Noir"})
    assert set(caught.value.fields) == {"title", "logline", "synopsis", "genre", "budget_range"}
