"""The edge against real aiohttp servers standing in for the regional workers."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from pitchey.geo.regions import BreakerConfig, CacheConfig, Region, TimeoutConfig

from .conftest import geo_test_config as config_for

SESSION = {"Cookie": "pitchey_session=abc"}


def region(name: str, **changes: Any) -> Any:
    return lambda config: tuple(dataclasses.replace(r, **changes) if r.name == name else r
                                for r in config.regions)


async def test_routes_by_region_header_colo_code_and_default(edge: Any) -> None:
    client, _ = await edge()
    for header, expected in [("asia", "asia"), ("NRT", "asia"), ("lhr", "europe"),
                             ("mars", "us-east"), (None, "us-east")]:
        headers = {"X-Pitchey-Region": header} if header else {}
        response = await client.get("/api/messages", headers={**headers, **SESSION})
        assert response.status == 200
        assert response.headers["X-Pitchey-Served-By"] == expected, header
        body = await response.json()
        assert body["forwarded_for"] == "127.0.0.1"


async def test_get_to_a_dead_region_is_retried_on_the_nearest_and_the_region_ejected(
    edge: Any,
) -> None:
    client, stubs = await edge(dead=("asia",))
    response = await client.get("/api/messages", headers={"X-Pitchey-Region": "asia", **SESSION})
    assert response.status == 200
    assert response.headers["X-Pitchey-Served-By"] == "us-west"
    status = await (await client.get("/status")).json()
    asia = next(r for r in status["regions"] if r["name"] == "asia")
    assert asia["health"] == "down" and asia["ejections"] == 1
    # ejected: the next request goes straight to us-west, no second refused connection
    await client.get("/api/messages", headers={"X-Pitchey-Region": "asia", **SESSION})
    metrics = await (await client.get("/metrics")).text()
    assert 'pitchey_edge_retries_total{region="asia"} 1.0' in metrics
    assert 'pitchey_region_up{region="asia"} 0.0' in metrics
    assert stubs["us-west"].calls["GET /api/messages"] == 2


@pytest.mark.parametrize("resend", [True, False])
async def test_a_refused_write_is_resent_only_when_configured(edge: Any, resend: bool) -> None:
    client, stubs = await edge(config_for(retry_refused_writes=resend), dead=("europe",))
    response = await client.post("/api/messages", json={"body": "hi"},
                                  headers={"X-Pitchey-Region": "europe", **SESSION})
    if resend:
        assert response.status == 201
        assert response.headers["X-Pitchey-Served-By"] == "us-east"
    else:
        assert response.status == 502
        assert response.headers["X-Pitchey-Failed-Region"] == "europe"
        assert stubs["us-east"].calls["POST /api/messages"] == 0


async def test_a_dropped_connection_is_retried_for_get_but_never_for_post(edge: Any) -> None:
    client, stubs = await edge()
    stubs["europe"].drop = True
    get = await client.get("/drop", headers={"X-Pitchey-Region": "europe", **SESSION})
    assert get.status == 200
    assert get.headers["X-Pitchey-Served-By"] == "us-east"
    post = await client.post("/drop", headers={"X-Pitchey-Region": "europe", **SESSION})
    assert post.status == 502
    assert post.headers["X-Pitchey-Edge-Error"] == "dropped"
    assert stubs["europe"].calls["POST /drop"] == 1
    assert stubs["us-east"].calls["POST /drop"] == 0


async def test_a_timeout_answers_504_and_is_not_retried(edge: Any) -> None:
    config = config_for(timeouts=TimeoutConfig(initial_s=0.3, min_s=0.2, max_s=0.3))
    client, stubs = await edge(config)
    started = time.perf_counter()
    response = await client.get("/slow", headers={"X-Pitchey-Region": "asia", **SESSION})
    assert response.status == 504
    assert time.perf_counter() - started < 1.5
    assert sum(stub.calls["GET /slow"] for stub in stubs.values()) == 1


async def test_anonymous_public_reads_are_cached_at_the_edge_until_a_write(edge: Any) -> None:
    client, stubs = await edge()
    first = await client.get("/api/pitches?page=1")
    second = await client.get("/api/pitches?page=1")
    assert (first.headers["X-Pitchey-Edge-Cache"], second.headers["X-Pitchey-Edge-Cache"]) == (
        "MISS", "HIT")
    assert await first.read() == await second.read()
    assert sum(s.calls["GET /api/pitches"] for s in stubs.values()) == 1
    personal = await client.get("/api/pitches?page=1", headers=SESSION)
    assert personal.headers["X-Pitchey-Edge-Cache"] == "BYPASS"
    write = await client.post("/api/pitches", json={}, headers=SESSION)
    assert write.status == 201
    after = await client.get("/api/pitches?page=1")
    assert after.headers["X-Pitchey-Edge-Cache"] == "MISS"
    assert sum(s.calls["GET /api/pitches"] for s in stubs.values()) == 3


async def test_a_rejected_write_leaves_the_edge_cache_alone(edge: Any) -> None:
    client, stubs = await edge()
    await client.get("/api/pitches")
    stubs["us-east"].api_status = 422
    assert (await client.post("/api/pitches", json={}, headers=SESSION)).status == 422
    stubs["us-east"].api_status = 200
    assert (await client.get("/api/pitches")).headers["X-Pitchey-Edge-Cache"] == "HIT"


async def test_edge_cache_off_when_its_ttl_is_zero(edge: Any) -> None:
    client, _ = await edge(config_for(cache=CacheConfig(edge_ttl_s=0)))
    await client.get("/api/pitches")
    assert (await client.get("/api/pitches")).headers["X-Pitchey-Edge-Cache"] == "BYPASS"


async def test_identical_concurrent_gets_share_one_upstream_call(edge: Any) -> None:
    client, stubs = await edge()
    stubs["europe"].delay_s = 0.05
    responses = await asyncio.gather(*(
        client.get("/api/dashboard/creator/metrics",
                   headers={"X-Pitchey-Region": "europe", **SESSION}) for _ in range(10)))
    assert all(r.status == 200 for r in responses)
    assert stubs["europe"].calls["GET /api/dashboard/creator/metrics"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert "pitchey_edge_coalesced_requests_total 9.0" in metrics


async def test_breaker_opens_on_errors_and_traffic_moves_to_the_nearest(edge: Any) -> None:
    config = config_for(breaker=BreakerConfig(volume_threshold=5, sleep_window_s=60))
    client, stubs = await edge(config)
    stubs["europe"].api_status = 500
    for _ in range(5):
        response = await client.get("/api/messages",
                                    headers={"X-Pitchey-Region": "europe", **SESSION})
        assert response.status == 500
    moved = await client.get("/api/messages", headers={"X-Pitchey-Region": "europe", **SESSION})
    assert moved.status == 200
    assert moved.headers["X-Pitchey-Served-By"] == "us-east"
    status = await (await client.get("/status")).json()
    assert next(r for r in status["regions"] if r["name"] == "europe")["breaker"] == "open"
    metrics = await (await client.get("/metrics")).text()
    assert 'pitchey_region_breaker_state{region="europe"} 1.0' in metrics


async def test_a_saturated_region_sheds_the_lowest_priority_first(edge: Any) -> None:
    config = config_for()
    config = dataclasses.replace(config, regions=region("asia", max_in_flight=10)(config))
    client, stubs = await edge(config)
    stubs["asia"].delay_s = 0.5
    asia = {"X-Pitchey-Region": "asia", **SESSION}
    held = [asyncio.create_task(client.get(f"/api/messages?n={n}", headers=asia))
            for n in range(3)]
    await asyncio.sleep(0.2)  # three requests in flight: over analytics' share (2 of 10)
    shed = await client.post("/api/analytics/events", json={}, headers=asia)
    assert shed.status == 503
    assert shed.headers["Retry-After"] == "1"
    assert (await shed.json())["error"]["code"] == "overloaded"
    admitted = await client.post("/api/auth/creator/login", json={}, headers=asia)
    assert admitted.status == 201
    assert all(r.status == 200 for r in await asyncio.gather(*held))
    metrics = await (await client.get("/metrics")).text()
    assert ('pitchey_edge_shed_requests_total{priority_class="analytics",region="asia"} 1.0'
            in metrics)


async def test_health_checks_mark_a_failing_dependency_degraded_and_route_around_it(
    edge: Any,
) -> None:
    client, stubs = await edge(health_checks=True)
    stubs["europe"].health_status["/health/db"] = 503

    async def europe_state() -> dict[str, Any]:
        status = await (await client.get("/status")).json()
        return dict(next(r for r in status["regions"] if r["name"] == "europe"))

    deadline = time.monotonic() + 5
    while (await europe_state())["health"] != "degraded":
        assert time.monotonic() < deadline, "the health check never saw /health/db fail"
        await asyncio.sleep(0.02)
    state = await europe_state()
    assert state["checks"]["/health/db"]["status"] == 503
    assert isinstance(state["pid"], int)
    response = await client.get("/api/messages", headers={"X-Pitchey-Region": "europe", **SESSION})
    assert response.headers["X-Pitchey-Served-By"] == "us-east"
    stubs["europe"].health_status.clear()
    while (await europe_state())["health"] != "healthy":
        assert time.monotonic() < deadline + 5, "europe never recovered"
        await asyncio.sleep(0.02)


async def test_status_lists_every_region_with_its_state(edge: Any) -> None:
    client, _ = await edge()
    status = await (await client.get("/status")).json()
    assert status["role"] == "edge" and status["routing"] == "geo"
    assert [r["name"] for r in status["regions"]] == ["us-east", "us-west", "europe", "asia"]
    for entry in status["regions"]:
        assert {"health", "breaker", "in_flight", "p95_ms", "weight", "pid", "url"} <= set(entry)
    assert [r["weight"] for r in status["regions"]] == [30, 25, 25, 20]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
async def test_edge_metrics_pass_promtool(edge: Any) -> None:
    client, _ = await edge(registry=CollectorRegistry())
    await client.get("/api/messages", headers={"X-Pitchey-Region": "asia", **SESSION})
    text = await (await client.get("/metrics")).text()
    for series in ("pitchey_region_up", "pitchey_region_breaker_state", "pitchey_region_in_flight",
                   "pitchey_region_p95_seconds", "pitchey_region_weight",
                   "http_server_request_duration_seconds_bucket"):
        assert f"{series}{{" in text, series
    result = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_the_latency_model_and_injected_delay_show_in_measured_latency(edge: Any) -> None:
    base = config_for()
    config = dataclasses.replace(base, latency=dataclasses.replace(base.latency, enabled=True))
    client, _ = await edge(config)
    asia = {"X-Pitchey-Region": "asia", **SESSION}

    async def timed(headers: dict[str, str]) -> float:
        started = time.perf_counter()
        response = await client.get(f"/api/messages?t={time.perf_counter()}", headers=headers)
        assert response.status == 200
        return time.perf_counter() - started

    assert await timed(asia) >= 0.065  # asia's round trip: seed 003's 65 ms
    assert await timed({"X-Pitchey-Region": "us-east", **SESSION}) >= 0.035
    put = await client.put("/_edge/regions/asia/latency", json={"extra_ms": 200})
    assert put.status == 200
    assert await timed(asia) >= 0.265
    assert (await client.put("/_edge/regions/asia/latency", json={"extra_ms": -1})).status == 422
    assert (await client.put("/_edge/regions/mars/latency", json={"extra_ms": 1})).status == 404
    await client.put("/_edge/regions/asia/latency", json={"extra_ms": 0})
    assert (await (await client.get("/_edge/regions/asia/latency")).json())["extra_ms"] == 0


async def test_responses_that_set_cookies_are_never_cached(edge: Any) -> None:
    client, _ = await edge(config_for(cache=CacheConfig(edge_paths=("/cookie",))))
    await client.get("/cookie")
    second = await client.get("/cookie")
    assert second.headers["X-Pitchey-Edge-Cache"] == "MISS"


async def test_every_region_down_is_503_with_retry_after(edge: Any) -> None:
    config = config_for()
    config = dataclasses.replace(config, regions=(Region("solo", (), 1, 100, 10.0, 10),),
                                 primary_region="solo", default_region="solo")
    client, _ = await edge(config, dead=("solo",))
    response = await client.get("/api/messages", headers=SESSION)
    assert response.status == 502  # refused, and nowhere else to go
    assert response.headers["X-Pitchey-Edge-Error"] == "refused"
    # ejected by the refusal; panic mode still tries the region rather than refuse outright
    again = await client.get("/api/messages", headers=SESSION)
    assert again.status == 502
    assert (await client.get("/_edge/health")).status == 200


async def test_a_client_leaving_during_a_half_open_trial_frees_the_trial(edge: Any) -> None:
    config = config_for(breaker=BreakerConfig(volume_threshold=5, sleep_window_s=0.2,
                                              success_threshold=1))
    client, stubs = await edge(config)
    europe = {"X-Pitchey-Region": "europe", **SESSION}
    stubs["europe"].api_status = 500
    for _ in range(5):
        await client.get("/api/messages", headers=europe)
    stubs["europe"].api_status = 200
    stubs["europe"].delay_s = 1.0
    await asyncio.sleep(0.25)  # the sleep window passes: the next call is the trial
    with pytest.raises(asyncio.TimeoutError):  # a POST: not coalesced, the client's own call
        await client.post("/api/messages", headers=europe, timeout=aiohttp.ClientTimeout(0.2))
    stubs["europe"].delay_s = 0.0
    await asyncio.sleep(0.1)  # the edge notices the client has gone
    trial = await client.post("/api/messages", headers=europe)
    assert trial.headers["X-Pitchey-Served-By"] == "europe"
    status = await (await client.get("/status")).json()
    assert next(r for r in status["regions"] if r["name"] == "europe")["breaker"] == "closed"
