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


async def test_behind_a_proxy_the_rate_limit_counts_the_address_the_proxy_added(
    service: Any,
) -> None:
    client, app = await service(rate_limit_per_minute=5, trust_forwarded_for=True)

    async def status(*forwarded_for: str) -> int:
        headers = [("X-Forwarded-For", line) for line in forwarded_for]
        return int((await client.get("/api/pitches", headers=headers)).status)

    # the client rotates its own header; the proxy appends the address it saw, as a new line
    rotating = [await status(f"198.51.100.{i}", "203.0.113.7") for i in range(7)]
    assert rotating == [200] * 5 + [429] * 2
    # ... or at the end of the one line the client sent
    same_line = [await status(f"198.51.100.{i}, 203.0.113.8") for i in range(7)]
    assert same_line == [200] * 5 + [429] * 2
    assert await status("203.0.113.7, 203.0.113.9") == 200  # another client: its own counter
    assert app[keys.METRICS].rate_limited._value.get() == 4


async def test_a_forwarded_for_without_a_usable_last_entry_counts_against_the_peer(
    service: Any,
) -> None:
    client, _ = await service(rate_limit_per_minute=3, trust_forwarded_for=True)

    async def status(*forwarded_for: str) -> int:
        headers = [("X-Forwarded-For", line) for line in forwarded_for]
        return int((await client.get("/api/pitches", headers=headers)).status)

    # no usable last entry: each of these counts against the peer (127.0.0.1), whatever else
    # the header says
    statuses = [await status("198.51.100.1", "garbage"), await status("198.51.100.2, "),
                await status("unknown"), await status("198.51.100.3", "")]
    assert statuses == [200, 200, 200, 429]
    assert await status() == 429  # no header at all: the peer too
    assert await status("203.0.113.10") == 200


async def test_without_trust_the_forwarded_for_header_is_ignored(service: Any) -> None:
    client, _ = await service(rate_limit_per_minute=2)
    statuses = [(await client.get("/api/pitches",
                                  headers={"X-Forwarded-For": f"198.51.100.{i}"})).status
                for i in range(3)]
    assert statuses == [200, 200, 429]
