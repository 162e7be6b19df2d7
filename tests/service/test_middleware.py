"""Behaviour every response shares: security headers, JSON errors, CORS, rate limits."""

from __future__ import annotations

from typing import Any

from pitchey import keys
from pitchey.security import SECURITY_HEADERS


async def test_every_response_carries_the_security_headers(service: Any) -> None:
    client, _ = await service()
    for path in ("/health", "/api/pitches", "/no/such/route", "/metrics"):
        response = await client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)


async def test_unknown_route_is_a_json_404(service: Any) -> None:
    client, _ = await service()
    response = await client.get("/api/nope")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["status"] == 404 and body["error"]["code"] == "not_found"


async def test_wrong_method_is_a_json_405_with_allow(service: Any) -> None:
    client, _ = await service()
    response = await client.patch("/health")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert (await response.json())["error"]["status"] == 405


async def test_oversize_body_is_a_json_413(service: Any) -> None:
    client, _ = await service(max_body_bytes=1024)
    response = await client.post(
        "/api/auth/creator/login", data=b"{" + b" " * 4096 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["status"] == 413


async def test_rate_limit_answers_429_with_retry_after_and_counts_it(service: Any) -> None:
    client, app = await service(rate_limit_per_minute=3)
    statuses = [(await client.get("/api/pitches")).status for _ in range(4)]
    assert statuses[:3] != [429, 429, 429] and statuses[3] == 429
    refused = await client.get("/api/pitches")
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert app[keys.METRICS].rate_limited._value.get() == 2
    # observability endpoints stay reachable for the operator and the scraper
    assert (await client.get("/health")).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_cors_allows_only_the_configured_origin(service: Any) -> None:
    client, _ = await service(frontend_origin="https://pitchey.pages.dev")
    preflight = await client.options(
        "/api/pitches",
        headers={"Origin": "https://pitchey.pages.dev", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://pitchey.pages.dev"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    foreign = await client.options(
        "/api/pitches",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert foreign.status == 403
    plain = await client.get("/api/pitches", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers
