"""The per-route wrappers and the cached-page fast path: the same answers, metrics and spans as
the full handler path, whichever path served the request."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from pitchey import keys
from pitchey.security import SECURITY_HEADERS

_LABELS = {"http_route": "/api/pitches", "http_request_method": "GET",
           "http_response_status_code": "200"}


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_cached_page_is_the_same_answer_counted_the_same_way(service: Any) -> None:
    registry = CollectorRegistry()
    client, app = await service(registry=registry)
    first = await client.get("/api/pitches?per_page=5")  # miss: the handler loads the page
    second = await client.get("/api/pitches?per_page=5")  # hit: answered synchronously
    assert first.status == second.status == 200
    assert await first.read() == await second.read()
    for name, value in SECURITY_HEADERS.items():
        assert second.headers[name] == value
    assert second.headers["Content-Type"] == "application/json"
    app_cache = {"cache": "app"}
    assert _sample(registry, "pitchey_cache_lookups_total", app_cache) == 2
    assert _sample(registry, "pitchey_cache_hits_total", app_cache) == 1
    assert _sample(registry, "http_server_request_duration_seconds_count", _LABELS) == 2
    # a write bumps the generation: the fast path misses and the handler reloads
    await app[keys.CACHE].bump("pitches")
    third = await client.get("/api/pitches?per_page=5")
    assert await third.read() == await first.read()
    assert _sample(registry, "pitchey_cache_lookups_total", app_cache) == 3
    assert _sample(registry, "pitchey_cache_hits_total", app_cache) == 1
    assert _sample(registry, "http_server_request_duration_seconds_count", _LABELS) == 3


async def test_a_bad_query_is_refused_every_time(service: Any) -> None:
    client, _ = await service()
    for _ in range(2):  # never memoised, so never served from the fast path
        response = await client.get("/api/pitches?per_page=100000")
        assert response.status == 422
        assert "per_page" in (await response.json())["error"]["fields"]


async def test_sampled_requests_take_the_handler_and_record_the_cache_span(
    service: Any,
) -> None:
    exporter = InMemorySpanExporter()
    client, _ = await service(otel_traces_sampler="always_on", span_exporter=exporter)
    for _ in range(2):  # the second one is a cache hit
        assert (await client.get("/api/pitches")).status == 200
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("GET /api/pitches") == 2
    assert names.count("cache.read_through") == 2


async def test_head_and_preflight_and_unknown_methods(service: Any) -> None:
    client, _ = await service(frontend_origin="https://pitchey.pages.dev")
    head = await client.head("/api/pitches")
    assert head.status == 200 and head.headers["Content-Type"] == "application/json"
    wrong = await client.delete("/api/pitches")
    assert wrong.status == 405
    assert set(wrong.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    preflight = await client.options(
        "/no/such/route", headers={"Origin": "https://pitchey.pages.dev"}
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://pitchey.pages.dev"
