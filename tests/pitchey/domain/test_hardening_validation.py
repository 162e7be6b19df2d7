"""Issue 13: drafts cannot be told apart from missing pitches through writes that name a
pitch id, and the validation gaps between the service and its OpenAPI document are closed."""

from __future__ import annotations

from typing import Any

import pytest

from pitchey.instrumentation import UNLIMITED_PATHS
from pitchey.validation import MAX_ID
from tests.pitchey.domain.conftest import Api, valid_pitch

_MISSING = 987_654_321


async def _user_id(api: Api, portal: str) -> int:
    me = await api.client.get("/api/auth/me", headers=await api.headers(portal))
    assert me.status == 200
    return int((await me.json())["user"]["id"])


async def _draft(api: Api) -> int:
    created = await api.client.post(
        "/api/pitches", json=valid_pitch(status="draft"), headers=await api.headers("creator")
    )
    assert created.status == 201, await created.text()
    return int((await created.json())["id"])


async def _refused(api: Api, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = await api.client.post(path, json=body, headers=headers)
    assert response.status == 422, await response.text()
    return await response.json()


async def test_a_message_about_someone_elses_draft_is_answered_like_a_missing_pitch(
    api: Api,
) -> None:
    draft = await _draft(api)
    creator_id = await _user_id(api, "creator")
    investor = await api.headers("investor")
    about_draft = await _refused(
        api, "/api/messages", {"recipient_id": creator_id, "body": "hi", "pitch_id": draft},
        investor,
    )
    about_nothing = await _refused(
        api, "/api/messages", {"recipient_id": creator_id, "body": "hi", "pitch_id": _MISSING},
        investor,
    )
    assert about_draft == about_nothing
    assert set(about_draft["error"]["fields"]) == {"pitch_id"}
    # the draft's creator may still name it
    investor_id = await _user_id(api, "investor")
    own = await api.client.post(
        "/api/messages", json={"recipient_id": investor_id, "body": "hi", "pitch_id": draft},
        headers=await api.headers("creator"),
    )
    assert own.status == 201, await own.text()


@pytest.mark.parametrize("portal", [None, "investor"], ids=["anonymous", "investor"])
async def test_an_event_on_someone_elses_draft_is_answered_like_a_missing_pitch(
    api: Api, portal: str | None
) -> None:
    draft = await _draft(api)
    headers = await api.headers(portal) if portal else {}
    on_draft = await _refused(
        api, "/api/analytics/events", {"event_type": "pitch_view", "pitch_id": draft}, headers
    )
    on_nothing = await _refused(
        api, "/api/analytics/events", {"event_type": "pitch_view", "pitch_id": _MISSING},
        headers,
    )
    assert on_draft == on_nothing
    assert set(on_draft["error"]["fields"]) == {"pitch_id"}
    own = await api.client.post(
        "/api/analytics/events", json={"event_type": "pitch_view", "pitch_id": draft},
        headers=await api.headers("creator"),
    )
    assert own.status == 201, await own.text()


@pytest.mark.parametrize(("path", "name"), [
    ("/api/pitches?genre=", "genre"),
    ("/api/pitches?budget_range=", "budget_range"),
    ("/api/pitches?status=", "status"),
    ("/api/pitches?page=", "page"),
    ("/api/pitches?per_page=", "per_page"),
    ("/api/messages?with=", "with"),
    ("/api/notifications?page=", "page"),
    ("/api/info-requests?status=", "status"),
])
async def test_an_empty_query_value_is_refused_naming_the_parameter(
    api: Api, path: str, name: str
) -> None:
    response = await api.client.get(path, headers=await api.headers("creator"))
    assert response.status == 422, await response.text()
    assert set((await response.json())["error"]["fields"]) == {name}


async def test_null_properties_and_an_untrimmed_event_type_are_refused(api: Api) -> None:
    null = await _refused(
        api, "/api/analytics/events", {"event_type": "pitch_view", "properties": None}, {}
    )
    assert set(null["error"]["fields"]) == {"properties"}
    spaced = await _refused(api, "/api/analytics/events", {"event_type": " pitch_view"}, {})
    assert set(spaced["error"]["fields"]) == {"event_type"}


async def test_an_empty_script_url_is_refused_and_null_clears_it(api: Api) -> None:
    creator = await api.headers("creator")
    for blank in ("", "   "):
        refused = await _refused(api, "/api/pitches", valid_pitch(script_url=blank), creator)
        assert set(refused["error"]["fields"]) == {"script_url"}
    created = await api.client.post(
        "/api/pitches", json=valid_pitch(script_url="https://scripts.test/a.pdf"),
        headers=creator,
    )
    pitch_id = (await created.json())["id"]
    blank = await api.client.put(
        f"/api/pitches/{pitch_id}", json={"script_url": ""}, headers=creator
    )
    assert blank.status == 422
    cleared = await api.client.put(
        f"/api/pitches/{pitch_id}", json={"script_url": None}, headers=creator
    )
    assert cleared.status == 200, await cleared.text()
    assert (await cleared.json())["script_url"] is None


async def test_the_document_states_the_new_limits(api: Api) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    parameters = {p["name"]: p for p in document["paths"]["/api/messages"]["get"]["parameters"]}
    assert parameters["with"]["schema"]["maximum"] == MAX_ID
    schemas = document["components"]["schemas"]
    assert schemas["PitchInput"]["properties"]["script_url"]["anyOf"][0]["minLength"] == 1
    assert schemas["AnalyticsEventInput"]["properties"]["properties"]["type"] == "object"


async def test_413_429_and_503_are_documented_wherever_they_can_happen(api: Api) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    observability = {"/health", "/health/db", "/health/services", "/api/health", "/metrics",
                     "/status", "/config", "/openapi.json"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            if "requestBody" in operation:
                assert "413" in responses, where
            if path not in UNLIMITED_PATHS:
                assert "429" in responses, where
                assert "Retry-After" in responses["429"]["headers"], where
            if path not in observability:
                assert "503" in responses, where


async def test_an_oversize_body_is_a_documented_json_413(api: Api) -> None:
    body = {"recipient_id": 1, "body": "x" * (api.settings.max_body_bytes + 1)}
    response = await api.client.post(
        "/api/messages", json=body, headers=await api.headers("investor")
    )
    assert response.status == 413
    assert response.content_type == "application/json"
    assert (await response.json())["error"]["status"] == 413
    document = await (await api.client.get("/openapi.json")).json()
    assert "413" in document["paths"]["/api/messages"]["post"]["responses"]
