"""Storage failures answer 503 without a traceback; storage and cache calls are child spans
of the sampled request."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from pitchey.app import create_app
from pitchey.seed import seed_demo
from pitchey.storage.factory import open_database
from pitchey.tracing import Tracing
from tests.pitchey.domain.conftest import Api, fast_settings, valid_pitch


async def test_lost_storage_answers_503_json(api: Api) -> None:
    creator = await api.headers("creator")
    assert (await api.client.get("/api/auth/me", headers=creator)).status == 200  # caches it
    cached = await api.client.get("/api/pitches")
    assert cached.status == 200
    await api.db.close()
    uncached = await api.client.get("/api/pitches?page=2")
    assert uncached.status == 503
    assert (await uncached.json())["error"]["code"] == "storage_unavailable"
    assert uncached.headers["Retry-After"]
    write = await api.client.post("/api/pitches", json=valid_pitch(), headers=creator)
    assert write.status == 503
    again = await api.client.get("/api/pitches")  # cached bytes still serve
    assert again.status == 200


async def test_storage_and_cache_calls_are_child_spans(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, otel_traces_sampler="always_on")
    request_spans, storage_spans = InMemorySpanExporter(), InMemorySpanExporter()
    storage_tracing = Tracing(settings, exporter=storage_spans)
    database = await open_database(settings, None, tracing=storage_tracing)
    await database.migrate()
    await seed_demo(database, settings, users=0, pitches=3, seed=1)
    app = create_app(settings, registry=CollectorRegistry(), database=database,
                     span_exporter=request_spans)
    try:
        async with TestClient(TestServer(app)) as client:
            storage_spans.clear()
            assert (await client.get("/api/pitches?per_page=2")).status == 200
        server = [s for s in request_spans.get_finished_spans() if s.name.startswith("GET")]
        assert len(server) == 1
        server_id = server[0].context.span_id
        cache = [s for s in request_spans.get_finished_spans() if s.name == "cache.read_through"]
        assert len(cache) == 1
        assert cache[0].parent is not None and cache[0].parent.span_id == server_id
        queries = storage_spans.get_finished_spans()
        assert [s.name for s in queries] == ["db.query", "db.query"]  # the page and its count
        for span in queries:
            assert span.parent is not None and span.parent.span_id == cache[0].context.span_id
            assert span.context.trace_id == server[0].context.trace_id
    finally:
        await database.close()
        storage_tracing.shutdown()
