"""Sign-in per portal, sessions (cookie and bearer), refresh, logout, expiry, portal isolation."""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest

from tests.pitchey.domain.conftest import DEMO, PASSWORD, Api, fast_settings, start_api


@pytest.mark.parametrize("portal", sorted(DEMO))
async def test_each_demo_account_signs_in_to_its_portal(api: Api, portal: str) -> None:
    response = await api.client.post(
        f"/api/auth/{portal}/login", json={"email": DEMO[portal], "password": PASSWORD}
    )
    assert response.status == 200
    body = await response.json()
    assert body["user"]["email"] == DEMO[portal]
    assert body["user"]["portal"] == portal
    assert "password_hash" not in body["user"]
    assert len(body["session"]["token"]) >= 40
    cookie = response.cookies["pitchey_session"]
    assert cookie.value == body["session"]["token"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    assert int(cookie["max-age"]) == api.settings.session_ttl_s


async def test_the_cookie_alone_authenticates(api: Api) -> None:
    response = await api.client.post(
        "/api/auth/creator/login", json={"email": DEMO["creator"], "password": PASSWORD}
    )
    assert response.status == 200
    me = await api.client.get("/api/auth/me")  # the jar sends the cookie
    assert me.status == 200
    assert (await me.json())["user"]["email"] == DEMO["creator"]


async def test_wrong_portal_is_403_and_bad_credentials_401(api: Api) -> None:
    wrong_portal = await api.client.post(
        "/api/auth/investor/login", json={"email": DEMO["creator"], "password": PASSWORD}
    )
    assert wrong_portal.status == 403
    assert (await wrong_portal.json())["error"]["code"] == "wrong_portal"
    for email, password in ((DEMO["creator"], "Demo1234"), ("nobody@demo.com", PASSWORD)):
        response = await api.client.post(
            "/api/auth/creator/login", json={"email": email, "password": password}
        )
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_credentials"
        assert "pitchey_session" not in response.cookies


async def test_email_is_case_insensitive(api: Api) -> None:
    response = await api.client.post(
        "/api/auth/creator/login", json={"email": DEMO["creator"].upper(), "password": PASSWORD}
    )
    assert response.status == 200


async def test_login_input_is_validated(api: Api) -> None:
    response = await api.client.post("/api/auth/creator/login", json={"email": 5})
    assert response.status == 422
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"email", "password"}
    response = await api.client.post(
        "/api/auth/creator/login", json={"email": "no-at-sign", "password": "x"}
    )
    assert response.status == 422
    assert "email" in (await response.json())["error"]["fields"]


async def test_no_session_is_401_and_other_portal_403(api: Api) -> None:
    anonymous = await api.client.get("/api/dashboard/creator/metrics")
    assert anonymous.status == 401
    garbage = await api.client.get(
        "/api/dashboard/creator/metrics", headers={"Authorization": "Bearer " + "x" * 43}
    )
    assert garbage.status == 401
    investor = await api.headers("investor")
    assert (await api.client.get("/api/dashboard/creator/metrics", headers=investor)).status == 403
    assert (await api.client.get("/api/dashboard/investor/metrics", headers=investor)).status == 200


async def test_refresh_rotates_the_token(api: Api) -> None:
    old = await api.login("creator")
    api.clock.advance(3600)
    response = await api.client.post(
        "/api/auth/refresh", headers={"Authorization": f"Bearer {old}"}
    )
    assert response.status == 200
    body = await response.json()
    new = body["session"]["token"]
    assert new != old
    assert response.cookies["pitchey_session"].value == new
    stale = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
    assert stale.status == 401
    fresh = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {new}"})
    assert fresh.status == 200
    api.client.session.cookie_jar.clear()
    assert (await api.client.post("/api/auth/refresh")).status == 401


async def test_logout_ends_the_session_everywhere(api: Api) -> None:
    token = await api.login("investor")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 200  # now cached
    response = await api.client.post("/api/auth/logout", headers=headers)
    assert response.status == 200
    assert response.cookies["pitchey_session"].value == ""
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 401
    again = await api.client.post("/api/auth/logout", headers=headers)
    assert again.status == 200


async def test_sessions_expire_after_24_hours(api: Api) -> None:
    token = await api.login("production")
    headers = {"Authorization": f"Bearer {token}"}
    api.clock.advance(api.settings.session_ttl_s - 60)
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 200
    api.clock.advance(61)
    assert (await api.client.get("/api/auth/me", headers=headers)).status == 401


async def test_session_lookups_are_served_from_the_cache(api: Api) -> None:
    headers = await api.headers("creator")
    for _ in range(3):
        assert (await api.client.get("/api/auth/me", headers=headers)).status == 200
    lookups = api.sample("pitchey_cache_lookups_total", cache="session")
    hits = api.sample("pitchey_cache_hits_total", cache="session")
    assert lookups == 3
    assert hits == 2


async def test_passwords_are_argon2id_with_the_configured_cost(api: Api) -> None:
    stored = await api.db.fetchval(
        "SELECT password_hash FROM users WHERE email = $1", DEMO["creator"]
    )
    assert stored.startswith("$argon2id$")
    params = argon2.extract_parameters(stored)
    assert params.time_cost == api.settings.argon2_time_cost
    assert params.memory_cost == api.settings.argon2_memory_kib
    assert argon2.PasswordHasher().verify(stored, PASSWORD)


async def test_stored_sessions_hold_only_a_digest(api: Api) -> None:
    token = await api.login("creator")
    rows = await api.db.fetch("SELECT token_hash FROM sessions")
    assert len(rows) == 1
    assert rows[0]["token_hash"] != token
    assert len(rows[0]["token_hash"]) == 64


async def test_secure_cookie_behind_https(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, cookie_secure=True)
    api, cache = await start_api(settings, "sqlite-memory", users=0, pitches=0)
    try:
        response = await api.client.post(
            "/api/auth/creator/login", json={"email": DEMO["creator"], "password": PASSWORD}
        )
        assert response.status == 200
        assert response.cookies["pitchey_session"]["secure"] is True
    finally:
        await api.client.close()
        await cache.close()
