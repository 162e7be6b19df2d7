"""/health*, /api/health, /status, /config, /metrics and tracing over a real SQLite service."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

SAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_health_endpoints(service: Any) -> None:
    client, _ = await service()
    assert (await (await client.get("/health")).json())["status"] == "ok"
    db = await client.get("/health/db")
    assert db.status == 200
    assert (await db.json())["status"] == "healthy"
    services = await (await client.get("/health/services")).json()
    assert services["services"]["database"]["status"] == "healthy"
    assert services["services"]["cache"]["kind"] == "memory"


async def test_api_health_follows_seed_000_format(service: Any) -> None:
    client, _ = await service()
    body = await (await client.get("/api/health")).json()
    assert body["status"] in ("healthy", "degraded", "unhealthy")
    assert {"database", "cache", "storage", "websocket"} <= set(body["services"])
    assert body["services"]["database"]["latency"] is not None
    assert set(body["metrics"]) == {
        "uptime", "requests_per_second", "average_response_time", "error_rate"
    }
    assert body["timestamp"].endswith("Z")


async def test_status_reports_recent_traffic(service: Any) -> None:
    client, _ = await service(region="europe")
    for _ in range(5):
        await client.get("/api/pitches")
    body = await (await client.get("/status")).json()
    assert body["region"] == "europe" and body["version"]
    assert len(body["config_hash"]) == 12
    assert body["recent"]["requests"] >= 5 and body["recent"]["p95_ms"] > 0
    assert body["dependencies"]["database"]["backend"] == "sqlite"


async def test_config_redacts_secrets(service: Any) -> None:
    client, _ = await service(database_url=None, redis_url=None)
    body = await (await client.get("/config")).json()
    assert body["backend"] == "sqlite" and body["rate_limit_per_minute"] == 0


async def test_metrics_label_by_route_template(service: Any) -> None:
    registry = CollectorRegistry()
    client, _ = await service(registry=registry)
    await client.get("/api/pitches/12345")
    await client.get("/api/pitches/67890")
    await client.get("/definitely/not/here")
    text = await (await client.get("/metrics")).text()
    assert 'http_route="/api/pitches/{' in text
    assert "/api/pitches/12345" not in text, "raw paths must never become label values"
    count = registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_route": "unmatched", "http_request_method": "GET",
         "http_response_status_code": "404"},
    )
    assert count == 1
    assert 'le="0.1"' in text
    # the scrape itself is the one request in flight while /metrics renders
    assert "http_server_active_requests 1.0" in text
    for name in ("http_server_active_requests", "pitchey_db_pool_connections_max",
                 "pitchey_cache_lookups_total", "pitchey_rate_limited_requests_total",
                 "pitchey_build_info", "process_cpu_seconds_total"):
        assert name in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
async def test_metrics_pass_promtool_check(service: Any) -> None:
    client, _ = await service()
    await client.get("/api/pitches")
    text = await (await client.get("/metrics")).text()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_sampled_request_propagates_its_trace(service: Any) -> None:
    exporter = InMemorySpanExporter()
    client, _ = await service(span_exporter=exporter, otel_traces_sampler="parentbased_always_off")
    await client.get("/api/pitches")  # no parent: not sampled
    assert exporter.get_finished_spans() == ()
    await client.get("/api/pitches", headers={"traceparent": SAMPLED_PARENT})
    spans = exporter.get_finished_spans()
    server = [span for span in spans if span.name == "GET /api/pitches"]
    assert len(server) == 1
    assert f"{server[0].context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server[0].attributes["http.route"] == "/api/pitches"
    assert server[0].attributes["http.response.status_code"] == 200
