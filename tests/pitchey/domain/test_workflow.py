"""The NDA workflow, messages, notifications, analytics events and the portal dashboards."""

from __future__ import annotations

from typing import Any

from tests.pitchey.domain.conftest import Api, valid_pitch


async def _pitch(api: Api, **overrides: Any) -> int:
    response = await api.client.post(
        "/api/pitches", json=valid_pitch(**overrides), headers=await api.headers("creator")
    )
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


async def _request_nda(api: Api, portal: str, pitch_id: int) -> Any:
    return await api.client.post(
        "/api/info-requests", json={"pitch_id": pitch_id, "message": "Please share."},
        headers=await api.headers(portal),
    )


async def test_nda_approval_unlocks_protected_fields(api: Api) -> None:
    pitch_id = await _pitch(api, script_url="https://scripts.test/night-shift.pdf")
    investor = await api.headers("investor")
    before = await (await api.client.get(f"/api/pitches/{pitch_id}", headers=investor)).json()
    assert "script_url" not in before
    requested = await _request_nda(api, "investor", pitch_id)
    assert requested.status == 201
    request_body = await requested.json()
    assert request_body["status"] == "pending"
    assert request_body["requester"]["portal"] == "investor"
    assert (await _request_nda(api, "investor", pitch_id)).status == 409
    creator = await api.headers("creator")
    pending = await api.client.get("/api/info-requests?status=pending", headers=creator)
    incoming = await pending.json()
    assert request_body["id"] in {item["id"] for item in incoming["items"]}
    approved = await api.client.post(
        f"/api/info-requests/{request_body['id']}/approve", headers=creator
    )
    assert approved.status == 200
    assert (await approved.json())["status"] == "approved"
    assert (await api.client.post(
        f"/api/info-requests/{request_body['id']}/reject", headers=creator
    )).status == 409
    after = await (await api.client.get(f"/api/pitches/{pitch_id}", headers=investor)).json()
    assert after["access"] == "nda"
    assert after["script_url"] == "https://scripts.test/night-shift.pdf"
    assert "synopsis" in after
    anonymous = await (await api.client.get(f"/api/pitches/{pitch_id}")).json()
    assert "script_url" not in anonymous
    production = await (
        await api.client.get(f"/api/pitches/{pitch_id}", headers=await api.headers("production"))
    ).json()
    assert "script_url" not in production


async def test_rejected_request_can_be_reopened(api: Api) -> None:
    pitch_id = await _pitch(api)
    first = await (await _request_nda(api, "production", pitch_id)).json()
    creator = await api.headers("creator")
    rejected = await api.client.post(f"/api/info-requests/{first['id']}/reject", headers=creator)
    assert (await rejected.json())["status"] == "rejected"
    again = await _request_nda(api, "production", pitch_id)
    assert again.status == 201
    body = await again.json()
    assert body["id"] == first["id"] and body["status"] == "pending"
    mine = await (
        await api.client.get("/api/info-requests", headers=await api.headers("production"))
    ).json()
    assert [item["status"] for item in mine["items"] if item["id"] == first["id"]] == ["pending"]


async def test_nda_rules(api: Api) -> None:
    pitch_id = await _pitch(api)
    assert (await _request_nda(api, "creator", pitch_id)).status == 403
    missing = await _request_nda(api, "investor", 987654)
    assert missing.status == 422
    assert "pitch_id" in (await missing.json())["error"]["fields"]
    draft_id = await _pitch(api, status="draft")
    assert (await _request_nda(api, "investor", draft_id)).status == 422
    request_id = (await (await _request_nda(api, "investor", pitch_id)).json())["id"]
    investor = await api.headers("investor")
    assert (await api.client.post(
        f"/api/info-requests/{request_id}/approve", headers=investor
    )).status == 403
    other = await api.login("creator", email="creator2@seed.pitchey.test")
    assert (await api.client.post(
        f"/api/info-requests/{request_id}/approve", headers={"Authorization": f"Bearer {other}"}
    )).status == 404
    assert (await api.client.post("/api/info-requests/424242/approve",
                                  headers=await api.headers("creator"))).status == 404
    bad_status = await api.client.get("/api/info-requests?status=maybe", headers=investor)
    assert bad_status.status == 422


async def test_each_step_notifies_the_other_side(api: Api) -> None:
    pitch_id = await _pitch(api)
    request_id = (await (await _request_nda(api, "investor", pitch_id)).json())["id"]
    creator = await api.headers("creator")
    notes = await (await api.client.get("/api/notifications?unread=true", headers=creator)).json()
    kinds = [n["kind"] for n in notes["items"]]
    assert "nda_requested" in kinds
    await api.client.post(f"/api/info-requests/{request_id}/approve", headers=creator)
    investor = await api.headers("investor")
    inbox = await (await api.client.get("/api/notifications", headers=investor)).json()
    approved = [n for n in inbox["items"] if n["kind"] == "nda_approved"]
    assert len(approved) == 1
    assert approved[0]["data"] == {"info_request_id": request_id, "pitch_id": pitch_id}
    assert approved[0]["read"] is False
    read = await api.client.post(f"/api/notifications/{approved[0]['id']}/read", headers=investor)
    assert read.status == 200
    assert (await read.json())["read"] is True
    unread = await (await api.client.get("/api/notifications?unread=true", headers=investor)).json()
    assert approved[0]["id"] not in {n["id"] for n in unread["items"]}
    # someone else's notification is not found, not readable
    assert (await api.client.post(
        f"/api/notifications/{approved[0]['id']}/read", headers=creator
    )).status == 404
    assert (await api.client.get("/api/notifications?unread=maybe", headers=creator)).status == 422


async def test_messages_form_conversations(api: Api) -> None:
    creator_id = await api.db.fetchval("SELECT id FROM users WHERE email = 'alex.creator@demo.com'")
    investor_id = await api.db.fetchval(
        "SELECT id FROM users WHERE email = 'sarah.investor@demo.com'"
    )
    investor = await api.headers("investor")
    creator = await api.headers("creator")
    sent = await api.client.post(
        "/api/messages", json={"recipient_id": creator_id, "body": "Loved the logline!"},
        headers=investor,
    )
    assert sent.status == 201
    message = await sent.json()
    assert message["sender"]["id"] == investor_id
    reply = await api.client.post(
        "/api/messages", json={"recipient_id": investor_id, "body": "Thank you!"}, headers=creator
    )
    assert reply.status == 201
    thread = await (
        await api.client.get(f"/api/messages?with={investor_id}", headers=creator)
    ).json()
    assert [m["body"] for m in thread["items"]] == ["Thank you!", "Loved the logline!"]
    assert {m["conversation_id"] for m in thread["items"]} == {message["conversation_id"]}
    everything = await (await api.client.get("/api/messages?per_page=1", headers=investor)).json()
    assert len(everything["items"]) == 1 and everything["has_more"] is True
    notes = await (await api.client.get("/api/notifications", headers=creator)).json()
    assert any(n["kind"] == "message" for n in notes["items"])
    assert (await api.client.get("/api/messages")).status == 401


async def test_message_input_is_checked(api: Api) -> None:
    investor = await api.headers("investor")
    me = await api.db.fetchval("SELECT id FROM users WHERE email = 'sarah.investor@demo.com'")
    other = await api.db.fetchval("SELECT id FROM users WHERE email = 'alex.creator@demo.com'")
    cases = [
        ({"recipient_id": me, "body": "hi"}, {"recipient_id"}),
        ({"recipient_id": 99999999, "body": "hi"}, {"recipient_id"}),
        ({"recipient_id": other, "body": ""}, {"body"}),
        ({"recipient_id": True, "body": "hi"}, {"recipient_id"}),
        ({"recipient_id": other, "body": "hi", "pitch_id": 88888888}, {"pitch_id"}),
        ({}, {"recipient_id", "body"}),
    ]
    for payload, fields in cases:
        response = await api.client.post("/api/messages", json=payload, headers=investor)
        assert response.status == 422, payload
        assert set((await response.json())["error"]["fields"]) == fields, payload
    assert (await api.client.get("/api/messages?with=abc", headers=investor)).status == 422


async def test_analytics_events_and_summary(api: Api) -> None:
    pitch_id = await _pitch(api)
    investor = await api.headers("investor")
    for _ in range(2):
        recorded = await api.client.post(
            "/api/analytics/events",
            json={"event_type": "pitch_view", "pitch_id": pitch_id, "properties": {"src": "list"}},
            headers=investor,
        )
        assert recorded.status == 201
    anonymous = await api.client.post("/api/analytics/events", json={"event_type": "page.load"})
    assert anonymous.status == 201
    mine = await (await api.client.get("/api/analytics/events", headers=investor)).json()
    assert mine["mine"] == {"pitch_view": 2}
    creator = await (
        await api.client.get("/api/analytics/events?days=7", headers=await api.headers("creator"))
    ).json()
    assert creator["on_my_pitches"] == {"pitch_view": 2}
    api.clock.advance(8 * 86400)
    api.tokens.clear()  # the sessions expired meanwhile
    later = await (
        await api.client.get("/api/analytics/events?days=7", headers=await api.headers("creator"))
    ).json()
    assert later["on_my_pitches"] == {}
    bad = await api.client.post(
        "/api/analytics/events",
        json={"event_type": "Bad Type!", "pitch_id": 77777777, "properties": [1]},
    )
    assert bad.status == 422
    assert set((await bad.json())["error"]["fields"]) == {"event_type", "properties"}
    unknown_pitch = await api.client.post(
        "/api/analytics/events", json={"event_type": "pitch_view", "pitch_id": 77777777}
    )
    assert unknown_pitch.status == 422
    fresh = await api.headers("investor")
    assert (await api.client.get("/api/analytics/events?days=0", headers=fresh)).status == 422
    assert (await api.client.get("/api/analytics/events")).status == 401


async def test_dashboards_per_portal(api: Api) -> None:
    for portal in ("creator", "investor", "production"):
        response = await api.client.get(
            f"/api/dashboard/{portal}/metrics", headers=await api.headers(portal)
        )
        assert response.status == 200
        body = await response.json()
        assert body["portal"] == portal
        assert set(body["info_requests"]) == {"pending", "approved", "rejected"}
        assert isinstance(body["unread_notifications"], int)
    creator = await (
        await api.client.get("/api/dashboard/creator/metrics", headers=await api.headers("creator"))
    ).json()
    owned = await api.db.fetchval(
        "SELECT COUNT(*) FROM pitches p JOIN users u ON u.id = p.creator_id "
        "WHERE u.email = 'alex.creator@demo.com'"
    )
    assert sum(creator["pitches"].values()) == owned
    investor_headers = await api.headers("investor")
    investor = await (
        await api.client.get("/api/dashboard/investor/metrics", headers=investor_headers)
    ).json()
    assert investor["portfolio"]["positions"] >= 1  # the seed invests for the demo investor


async def test_dashboards_are_cached_and_invalidated_by_writes(api: Api) -> None:
    creator = await api.headers("creator")
    url = "/api/dashboard/creator/metrics"
    first = await (await api.client.get(url, headers=creator)).json()
    hits = api.sample("pitchey_cache_hits_total", cache="app")
    second = await (await api.client.get(url, headers=creator)).json()
    assert second == first
    assert api.sample("pitchey_cache_hits_total", cache="app") > hits
    pitch_id = await _pitch(api, status="draft")
    after_create = await (await api.client.get(url, headers=creator)).json()
    assert after_create["pitches"]["draft"] == first["pitches"]["draft"] + 1
    await _request_nda(api, "investor", await _pitch(api))
    after_request = await (await api.client.get(url, headers=creator)).json()
    assert after_request["info_requests"]["pending"] == first["info_requests"]["pending"] + 1
    assert after_request["unread_notifications"] == first["unread_notifications"] + 1
    production = await api.headers("production")
    catalog = await (await api.client.get("/api/dashboard/production/metrics",
                                          headers=production)).json()
    await api.client.put(f"/api/pitches/{pitch_id}",
                         json={"status": "published", "genre": "Horror"}, headers=creator)
    updated = await (await api.client.get("/api/dashboard/production/metrics",
                                          headers=production)).json()
    by_genre = catalog["catalog"]["published_by_genre"]
    assert updated["catalog"]["published_by_genre"]["Horror"] == by_genre.get("Horror", 0) + 1
