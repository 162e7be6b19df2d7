"""Spans leave the service over OTLP/HTTP when an endpoint is set, else as JSON lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from pitchey import keys

SAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_spans_go_to_the_otlp_endpoint(service: Any) -> None:
    received: list[bytes] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=200)

    receiver = web.Application()
    receiver.router.add_post("/v1/traces", collect)
    async with TestServer(receiver, host="127.0.0.1") as server:
        client, app = await service(
            otel_exporter_otlp_endpoint=str(server.make_url("")).rstrip("/"),
            otel_traces_sampler="always_on",
        )
        await client.get("/api/pitches", headers={"traceparent": SAMPLED_PARENT})
        loop = asyncio.get_running_loop()
        # force_flush blocks until the exporter's POST is answered, so it runs off the loop
        assert await loop.run_in_executor(None, app[keys.TRACING].provider.force_flush, 10_000)
    assert received, "the OTLP receiver got no export"
    assert b"GET /api/pitches" in b"".join(received)
    assert bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736") in b"".join(received)


async def test_spans_go_to_a_json_lines_file_without_an_endpoint(
    service: Any, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    client, app = await service(otel_spans_file=str(spans_file), otel_traces_sampler="always_on")
    await client.get("/api/pitches")
    app[keys.TRACING].provider.force_flush()
    lines = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert any(line["name"] == "GET /api/pitches" for line in lines)
    assert all("trace_id" in line["context"] for line in lines)
