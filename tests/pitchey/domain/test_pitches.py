"""Pitches: list with pagination and filters, detail, create, owner-only update/delete, the
read-through cache and its invalidation, protected fields."""

from __future__ import annotations

from typing import Any

from tests.pitchey.domain.conftest import Api, valid_pitch


async def _create(api: Api, portal: str = "creator", **overrides: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/api/pitches", json=valid_pitch(**overrides), headers=await api.headers(portal)
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_list_is_paginated_newest_first(api: Api) -> None:
    total = await api.db.fetchval("SELECT COUNT(*) FROM pitches WHERE status = 'published'")
    first = await (await api.client.get("/api/pitches?per_page=3")).json()
    assert first["total"] == total
    assert first["page"] == 1 and first["per_page"] == 3
    assert first["pages"] == -(-total // 3)
    assert len(first["items"]) == 3
    stamps = [item["created_at"] for item in first["items"]]
    assert stamps == sorted(stamps, reverse=True)
    ids = set()
    for page in range(1, first["pages"] + 1):
        body = await (await api.client.get(f"/api/pitches?per_page=3&page={page}")).json()
        ids.update(item["id"] for item in body["items"])
    assert len(ids) == total
    beyond = first["pages"] + 1
    past_end = await (await api.client.get(f"/api/pitches?per_page=3&page={beyond}")).json()
    assert past_end["items"] == []


async def test_list_items_never_carry_protected_fields(api: Api) -> None:
    body = await (await api.client.get("/api/pitches?per_page=100")).json()
    assert body["items"]
    for item in body["items"]:
        assert item["status"] == "published"
        assert not {"synopsis", "budget_details", "script_url"} & set(item)


async def test_filters_by_genre_budget_and_status(api: Api) -> None:
    await _create(api, genre="Horror", budget_range="micro")
    await _create(api, genre="Horror", budget_range="high")
    await _create(api, genre="Comedy", budget_range="micro", status="archived")
    horror = await (await api.client.get("/api/pitches?genre=Horror&per_page=100")).json()
    assert horror["items"] and all(i["genre"] == "Horror" for i in horror["items"])
    both = await (
        await api.client.get("/api/pitches?genre=Horror&budget_range=micro&per_page=100")
    ).json()
    assert both["items"]
    assert all(i["genre"] == "Horror" and i["budget_range"] == "micro" for i in both["items"])
    assert both["total"] < horror["total"]
    archived = await (await api.client.get("/api/pitches?status=archived&per_page=100")).json()
    assert archived["items"] and all(i["status"] == "archived" for i in archived["items"])


async def test_bad_list_parameters_are_422_naming_each(api: Api) -> None:
    response = await api.client.get(
        "/api/pitches?per_page=101&page=0&genre=Western&budget_range=huge&status=draft"
    )
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"per_page", "page", "genre", "budget_range", "status"}


async def test_list_is_served_from_the_cache_until_a_write(api: Api) -> None:
    url = "/api/pitches?per_page=5"
    first = await api.client.get(url)
    again = await api.client.get(url)
    assert await first.read() == await again.read()
    assert api.sample("pitchey_cache_lookups_total", cache="app") == 2
    assert api.sample("pitchey_cache_hits_total", cache="app") == 1
    queries = api.sample("pitchey_db_queries_total", operation="select")
    assert queries > 0  # the first request did load from the database
    await api.client.get(url)
    assert api.sample("pitchey_db_queries_total", operation="select") == queries
    created = await _create(api, title="Fresh Off The Press")
    newest = await (await api.client.get(url)).json()
    assert newest["items"][0]["id"] == created["id"]


async def test_detail_hides_protected_fields_from_the_public(api: Api) -> None:
    created = await _create(api, budget_details="Two locations.", script_url="https://x.test/s")
    anonymous = await (await api.client.get(f"/api/pitches/{created['id']}")).json()
    assert anonymous["access"] == "public"
    assert not {"synopsis", "budget_details", "script_url"} & set(anonymous)
    assert anonymous["title"] == created["title"]
    owner = await (
        await api.client.get(f"/api/pitches/{created['id']}", headers=await api.headers("creator"))
    ).json()
    assert owner["access"] == "owner"
    assert owner["synopsis"] == created["synopsis"]
    assert owner["budget_details"] == "Two locations."
    investor = await (
        await api.client.get(
            f"/api/pitches/{created['id']}", headers=await api.headers("investor")
        )
    ).json()
    assert investor["access"] == "public"
    assert "synopsis" not in investor


async def test_missing_pitch_is_404_json(api: Api) -> None:
    for path in ("/api/pitches/999999", "/api/pitches/99999999999999999999999", "/api/pitches/0"):
        response = await api.client.get(path)
        assert response.status == 404
        assert (await response.json())["error"]["status"] == 404
    assert (await api.client.get("/api/pitches/abc")).status == 404


async def test_create_requires_the_creator_portal(api: Api) -> None:
    anonymous = await api.client.post("/api/pitches", json=valid_pitch())
    assert anonymous.status == 401
    investor = await api.client.post(
        "/api/pitches", json=valid_pitch(), headers=await api.headers("investor")
    )
    assert investor.status == 403
    created = await _create(api)
    assert created["status"] == "published"
    assert created["access"] == "owner"
    assert created["creator"]["id"] == (
        await api.db.fetchval("SELECT id FROM users WHERE email = 'alex.creator@demo.com'")
    )


async def test_create_trims_text_and_ignores_unknown_fields(api: Api) -> None:
    created = await _create(api, title="  Spaced Out  ", creator_id=999, id=5)
    assert created["title"] == "Spaced Out"
    assert created["creator"]["id"] != 999


async def test_update_and_delete_by_the_owner_only(api: Api) -> None:
    created = await _create(api)
    path = f"/api/pitches/{created['id']}"
    other_creator = await api.login("creator", email="creator2@seed.pitchey.test")
    other = {"Authorization": f"Bearer {other_creator}"}
    assert (await api.client.put(path, json={"title": "Mine"}, headers=other)).status == 403
    assert (await api.client.delete(path, headers=other)).status == 403
    investor = await api.headers("investor")
    assert (await api.client.put(path, json={"title": "Mine"}, headers=investor)).status == 403
    assert (await api.client.put(path, json={"title": "Mine"})).status == 401
    owner = await api.headers("creator")
    updated = await api.client.put(path, json={"title": "Renamed", "genre": "Drama"}, headers=owner)
    assert updated.status == 200
    body = await updated.json()
    assert body["title"] == "Renamed" and body["genre"] == "Drama"
    assert body["logline"] == created["logline"]
    public = await (await api.client.get(path)).json()
    assert public["title"] == "Renamed"
    assert (await api.client.delete(path, headers=owner)).status == 204
    assert (await api.client.get(path)).status == 404
    assert (await api.client.put(path, json={"title": "Ghost"}, headers=owner)).status == 404
    assert (await api.client.delete(path, headers=owner)).status == 404


async def test_update_needs_a_field_and_validates_it(api: Api) -> None:
    created = await _create(api)
    path = f"/api/pitches/{created['id']}"
    owner = await api.headers("creator")
    empty = await api.client.put(path, json={}, headers=owner)
    assert empty.status == 422
    bad = await api.client.put(path, json={"logline": "short", "genre": "Noir"}, headers=owner)
    assert bad.status == 422
    assert set((await bad.json())["error"]["fields"]) == {"logline", "genre"}


async def test_drafts_are_visible_to_their_owner_only(api: Api) -> None:
    draft = await _create(api, status="draft")
    path = f"/api/pitches/{draft['id']}"
    assert (await api.client.get(path)).status == 404
    assert (await api.client.get(path, headers=await api.headers("investor"))).status == 404
    owner = await api.client.get(path, headers=await api.headers("creator"))
    assert owner.status == 200
    listed = await (await api.client.get("/api/pitches?per_page=100")).json()
    assert draft["id"] not in {item["id"] for item in listed["items"]}
    other = await api.login("creator", email="creator2@seed.pitchey.test")
    response = await api.client.put(
        path, json={"title": "x"}, headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status == 404


async def test_publishing_a_draft_shows_it_at_once(api: Api) -> None:
    draft = await _create(api, status="draft")
    before = await (await api.client.get("/api/pitches?per_page=100")).json()
    response = await api.client.put(
        f"/api/pitches/{draft['id']}", json={"status": "published"},
        headers=await api.headers("creator"),
    )
    assert response.status == 200
    after = await (await api.client.get("/api/pitches?per_page=100")).json()
    assert after["total"] == before["total"] + 1
    assert (await api.client.get(f"/api/pitches/{draft['id']}")).status == 200
