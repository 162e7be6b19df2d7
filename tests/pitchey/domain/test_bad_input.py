"""Bad input never yields a 5xx: malformed JSON is 400, JSON of the wrong shape 422 naming
each field, oversize 413, unknown routes 404 JSON. Property-style: Hypothesis throws
arbitrary JSON (NUL characters, lone surrogates, huge numbers, wrong types, nesting) at every
write endpoint and random query strings at the reads, on SQLite and on PostgreSQL, where
NUL and lone surrogates in text would otherwise surface as driver errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitchey.settings import Settings
from pitchey.validation import BUDGET_RANGES, GENRES
from tests.pitchey.domain.conftest import Api, start_api, valid_pitch

# -- explicit cases ------------------------------------------------------------------------

MALFORMED = [
    b"{", b"{bad", b"[1, 2", b"{\"title\": }", b"\xff\xfe\x00garbage", b"\x80\x81",
    b"NaN", b"{\"title\": NaN}", b"{\"n\": Infinity}", b"   ", b"",
    b"{\"n\": " + b"9" * 5000 + b"}",  # past Python's int-from-text limit
    b"[" * 100_00 + b"]" * 100_00,  # deeper than the JSON parser recurses
]
NOT_OBJECTS = [b"[]", b"[{\"title\": \"x\"}]", b"\"a string\"", b"42", b"true", b"null"]


async def test_malformed_json_is_400(api: Api) -> None:
    creator = await api.headers("creator")
    for body in MALFORMED:
        response = await api.client.post(
            "/api/pitches", data=body, headers={**creator, "Content-Type": "application/json"}
        )
        assert response.status == 400, body[:40]
        error = (await response.json())["error"]
        assert error["code"] == "malformed_json"


async def test_json_that_is_not_an_object_is_422(api: Api) -> None:
    for body in NOT_OBJECTS:
        response = await api.client.post("/api/auth/investor/login", data=body)
        assert response.status == 422, body
        assert set((await response.json())["error"]["fields"]) == {"body"}


async def test_oversize_body_is_413_json(api: Api) -> None:
    creator = await api.headers("creator")
    big = json.dumps(valid_pitch(synopsis="x" * (api.settings.max_body_bytes + 10))).encode()
    response = await api.client.post("/api/pitches", data=big, headers=creator)
    assert response.status == 413
    assert (await response.json())["error"]["status"] == 413


async def test_unknown_route_and_method_are_json(api: Api) -> None:
    missing = await api.client.get("/api/does-not-exist")
    assert missing.status == 404
    assert (await missing.json())["error"]["status"] == 404
    wrong_method = await api.client.patch("/api/pitches")
    assert wrong_method.status == 405
    assert (await wrong_method.json())["error"]["status"] == 405


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("title", "", "between 1 and 200"),
        ("title", "   ", "between 1 and 200"),
        ("title", "t" * 201, "between 1 and 200"),
        ("logline", "too short", "between 10 and 500"),
        ("logline", "l" * 501, "between 10 and 500"),
        ("synopsis", "s" * 49, "between 50 and 5000"),
        ("synopsis", "s" * 5001, "between 50 and 5000"),
        ("genre", "Western", "one of Action, Comedy, Drama, Horror, Sci-Fi, Thriller"),
        ("genre", "action", "one of"),
        ("budget_range", "mega", "one of micro, low, medium, high, blockbuster"),
        ("title", 12, "must be a string"),
        ("title", None, "must be a string"),
        ("title", "bad\x00byte", "NUL"),
        ("logline", "lone surrogate \ud800 here", "surrogate"),
        ("status", "deleted", "one of draft, published, archived"),
        ("script_url", "ftp://x.test/a", "http"),
    ],
)
async def test_each_seed_002_rule_names_field_and_reason(
    api: Api, field: str, value: Any, reason: str
) -> None:
    response = await api.client.post(
        "/api/pitches", json=valid_pitch(**{field: value}), headers=await api.headers("creator")
    )
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert list(fields) == [field]
    assert reason in fields[field]


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", "t"), ("title", "t" * 200), ("logline", "l" * 10), ("logline", "l" * 500),
     ("synopsis", "s" * 50), ("synopsis", "s" * 5000), *[("genre", g) for g in GENRES],
     *[("budget_range", b) for b in BUDGET_RANGES]],
)
async def test_boundary_values_are_accepted(api: Api, field: str, value: str) -> None:
    response = await api.client.post(
        "/api/pitches", json=valid_pitch(**{field: value}), headers=await api.headers("creator")
    )
    assert response.status == 201, await response.text()
    assert (await response.json())[field] == value


# -- property-style ------------------------------------------------------------------------

_SPECIAL_TEXT = st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "'; DROP TABLE users;--",
                                 "$1", "?1", "%s", "\\", "\n", "🎬"])
_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.lists(_SPECIAL_TEXT, min_size=1, max_size=4).map("".join),
)
_NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=2**63 - 2, max_value=2**70), st.just(-1), st.just(0),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
)
_JSON = st.recursive(
    st.one_of(_NUMBERS, _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_TEXT, inner, max_size=3)),
    max_leaves=6,
)
_PITCH_FIELDS = ["title", "logline", "synopsis", "genre", "budget_range", "status",
                 "budget_details", "script_url"]


def _mutated(base: dict[str, Any], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid bodies with some fields replaced by arbitrary JSON or removed."""
    return st.fixed_dictionaries({}, optional={key: _JSON for key in keys}).flatmap(
        lambda changes: st.sets(st.sampled_from(sorted(base)), max_size=2).map(
            lambda dropped: {
                **{k: v for k, v in base.items() if k not in dropped}, **changes
            }
        )
    )


def _spliced(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid bodies with awkward characters spliced into one text field: lengths stay legal,
    so the value gets past the length checks and would reach the database."""
    text_keys = sorted(key for key, value in base.items() if isinstance(value, str))
    return st.tuples(
        st.sampled_from(text_keys), st.lists(_SPECIAL_TEXT, min_size=1, max_size=3),
        st.integers(min_value=0, max_value=5),
    ).map(lambda pick: {**base, pick[0]: base[pick[0]][: pick[2]] + "".join(pick[1])
                        + base[pick[0]][pick[2]:]})


_BODY = st.one_of(_JSON, st.binary(max_size=40))


class Runner:
    """A running app on its own loop, so Hypothesis can drive it from a plain test."""

    def __init__(self, loop_runner: asyncio.Runner, api: Api) -> None:
        self.loop = loop_runner
        self.api = api
        self._ids: dict[str, int] = {}

    def demo_ids(self) -> dict[str, int]:
        if not self._ids:
            db = self.api.db
            self._ids["<user>"] = self.loop.run(db.fetchval(
                "SELECT id FROM users WHERE email = 'alex.creator@demo.com'"
            ))
            self._ids["<pitch>"] = self.loop.run(db.fetchval(
                "SELECT id FROM pitches WHERE creator_id = $1 AND status = 'published' "
                "ORDER BY id LIMIT 1", self._ids["<user>"],
            ))
        return self._ids

    def call(self, method: str, path: str, body: Any = None, portal: str | None = None,
             raw: bytes | None = None) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            headers = await self.api.headers(portal) if portal else {}
            data = raw if raw is not None else json.dumps(body).encode()
            response = await self.api.client.request(method, path, data=data, headers=headers)
            text = await response.read()
            return response.status, json.loads(text) if text else None

        return self.loop.run(go())


@pytest.fixture
def runner(backend_settings: Settings, backend: str) -> Iterator[Runner]:
    with asyncio.Runner() as loop_runner:
        api, cache = loop_runner.run(start_api(backend_settings, backend, users=3, pitches=3))
        try:
            yield Runner(loop_runner, api)
        finally:
            loop_runner.run(api.client.close())
            loop_runner.run(cache.close())


def _check(status: int, body: Any) -> None:
    assert status < 500, body
    if status >= 400:
        assert isinstance(body, dict) and set(body) == {"error"}
        assert body["error"]["status"] == status
        if status == 422:
            assert body["error"]["fields"]
            assert all(isinstance(reason, str) for reason in body["error"]["fields"].values())


_PROPERTY = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# "<pitch>" / "<user>": the demo creator's first published pitch / the demo creator's id,
# filled in per backend, so near-valid bodies get as far as the database
_NDA = {"pitch_id": "<pitch>", "message": "Please share the script."}
_MESSAGE = {"recipient_id": "<user>", "body": "hello there", "pitch_id": "<pitch>"}
_EVENT = {"event_type": "pitch_view", "pitch_id": None, "properties": {}}
_LOGIN = {"email": "alex.creator@demo.com", "password": "Demo123"}


TARGETS = [
    ("POST", "/api/pitches", "creator", valid_pitch(), _PITCH_FIELDS),
    ("PUT", "/api/pitches/<pitch>", "creator", {"title": "A new title"}, _PITCH_FIELDS),
    ("POST", "/api/info-requests", "investor", _NDA, ["pitch_id", "message"]),
    ("POST", "/api/messages", "production", _MESSAGE, ["recipient_id", "body", "pitch_id"]),
    ("POST", "/api/analytics/events", None, _EVENT, ["event_type", "pitch_id", "properties"]),
    ("POST", "/api/auth/creator/login", None, _LOGIN, ["email", "password"]),
]


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t[0]} {t[1]}" for t in TARGETS])
@_PROPERTY
@given(data=st.data())
def test_no_body_yields_a_5xx(runner: Runner, target: tuple[Any, ...], data: st.DataObject) -> None:
    method, path, portal, base, keys = target
    ids = runner.demo_ids()
    path = path.replace("<pitch>", str(ids["<pitch>"]))
    base = {key: ids.get(value, value) if isinstance(value, str) else value
            for key, value in base.items()}
    body = data.draw(st.one_of(_spliced(base), _mutated(base, keys), _BODY), label="body")
    if isinstance(body, bytes):
        status, answer = runner.call(method, path, portal=portal, raw=body)
    else:
        status, answer = runner.call(method, path, body, portal=portal)
    _check(status, answer)


_QUERY_KEYS = st.sampled_from(["page", "per_page", "status", "genre", "budget_range", "with",
                               "unread", "days", "x"])


@_PROPERTY
@given(
    path=st.sampled_from(["/api/pitches", "/api/messages", "/api/notifications",
                          "/api/info-requests", "/api/analytics/events",
                          "/api/pitches/{n}", "/api/notifications/{n}/read",
                          "/api/info-requests/{n}/approve"]),
    query=st.dictionaries(_QUERY_KEYS, _TEXT, max_size=4),
    number=st.one_of(st.integers(min_value=0, max_value=2**80), st.just(1)),
    portal=st.sampled_from([None, "creator", "investor", "production"]),
)
def test_no_query_or_path_yields_a_5xx(
    runner: Runner, path: str, query: dict[str, str], number: int, portal: str | None
) -> None:
    from urllib.parse import quote

    encoded = "&".join(
        f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in query.items()
    )
    target = path.replace("{n}", str(number)) + (f"?{encoded}" if encoded else "")
    method = "POST" if path.endswith(("read", "approve")) else "GET"
    status, answer = runner.call(method, target, portal=portal, raw=b"")
    _check(status, answer)
