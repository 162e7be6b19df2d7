"""The edge's HTTP/1.1 server and its upstream client, over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pitchey.geo.deadlines import Deadlines
from pitchey.geo.http1 import ConnectRefused, Dropped, Http1Pool
from pitchey.geo.http_server import HttpRequest, HttpResponse, HttpServer, json_response

from .conftest import refused_url


async def echo(request: HttpRequest) -> HttpResponse:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/slow":
        await asyncio.sleep(0.1)
    return json_response({"method": request.method, "target": request.target,
                          "body": request.body.decode(), "host": request.header("host")})


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer(echo, max_body=1000, keepalive_timeout_s=0.3)
    await http.start()
    yield http
    await http.close()


async def exchange(server: HttpServer, payload: bytes, read_until_close: bool = False,
                   responses: int = 1) -> bytes:
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    data = b""
    try:
        if read_until_close:
            data = await asyncio.wait_for(reader.read(), 5)
        else:
            while data.count(b"HTTP/1.1 ") < responses or not _complete(data, responses):
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                if not chunk:
                    break
                data += chunk
    finally:
        writer.close()
    return data


def _complete(data: bytes, responses: int) -> bool:
    """Whether `data` holds `responses` whole answers (by their Content-Length)."""
    rest = data
    for _ in range(responses):
        head, sep, body = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), b"0"))
        if len(body) < length:
            return False
        rest = body[length:]
    return True


def bodies(data: bytes) -> list[dict[str, Any]]:
    found = []
    for part in data.split(b"HTTP/1.1 ")[1:]:
        if part.startswith(b"100"):
            continue
        found.append(json.loads(part.partition(b"\r\n\r\n")[2].split(b"HTTP/1.1")[0]))
    return found


async def test_pipelined_requests_are_answered_in_order(server: HttpServer) -> None:
    data = await exchange(server, b"GET /slow?n=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                                  b"GET /fast?n=2 HTTP/1.1\r\nHost: b\r\n\r\n", responses=2)
    assert [b["target"] for b in bodies(data)] == ["/slow?n=1", "/fast?n=2"]
    assert b"Date: " in data


async def test_a_chunked_body_is_decoded(server: HttpServer) -> None:
    data = await exchange(server, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                                  b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert bodies(data)[0]["body"] == "hello world"


async def test_an_oversize_body_is_413_and_the_connection_closes(server: HttpServer) -> None:
    body = b"x" * 1001
    data = await exchange(server, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"
                          + body, read_until_close=True)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in data


@pytest.mark.parametrize(
    ("payload", "status"),
    [(b"NOT-HTTP\r\n\r\n", b"400"),
     (b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      b"501")],
)
async def test_malformed_and_upgrade_requests_get_an_answer(server: HttpServer, payload: bytes,
                                                            status: bytes) -> None:
    data = await exchange(server, payload, read_until_close=True)
    assert data.startswith(b"HTTP/1.1 " + status), data[:80]
    assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]["status"] == int(status)


async def test_expect_100_continue(server: HttpServer) -> None:
    data = await exchange(server, b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                                  b"Content-Length: 2\r\n\r\nok", responses=2)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


async def test_http_1_0_closes_after_the_answer(server: HttpServer) -> None:
    data = await exchange(server, b"GET /old HTTP/1.0\r\n\r\n", read_until_close=True)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data


async def test_a_failing_handler_is_a_500_and_the_connection_survives(
    server: HttpServer,
) -> None:
    data = await exchange(server, b"GET /boom HTTP/1.1\r\nHost: a\r\n\r\n"
                                  b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n", responses=2)
    assert data.startswith(b"HTTP/1.1 500 ")
    assert bodies(data)[1]["target"] == "/after"


async def test_idle_keep_alive_connections_are_closed(server: HttpServer) -> None:
    host, port = server.address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    rest = await asyncio.wait_for(reader.read(), 5)  # returns once the server closes
    assert b'"target": "/x"' in rest
    writer.close()


# -- the upstream client ------------------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Http1Pool, dict[str, int]]]:
    calls = {"n": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        calls["n"] += 1
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for part in (b"one ", b"two ", b"three"):
                await response.write(part)
            await response.write_eof()
            return response
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(1)
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.Response(text="hello" * 10, headers={"X-Answer": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app)
    await server.start_server()
    assert server.port is not None
    pool = Http1Pool("127.0.0.1", server.port)
    yield pool, calls
    pool.close()
    await server.close()


async def test_keep_alive_connections_are_reused(upstream: Any) -> None:
    pool, _ = upstream
    for _ in range(3):
        answer = await pool.request("GET", "/x", [("Accept", "*/*")], b"")
        assert answer.status == 200 and answer.body == b"hello" * 10
        assert answer.header("x-answer") == "yes"
        assert "Content-Length" not in answer.head  # the edge sets its own
    assert pool.opened == 1


async def test_chunked_answers_are_decoded(upstream: Any) -> None:
    pool, _ = upstream
    answer = await pool.request("GET", "/chunked", [], b"")
    assert answer.body == b"one two three"
    assert "Transfer-Encoding" not in answer.head


async def test_head_keeps_the_length_it_does_not_carry(upstream: Any) -> None:
    pool, _ = upstream
    answer = await pool.request("HEAD", "/x", [], b"")
    assert answer.body == b"" and answer.content_length == 50


async def test_failure_kinds(upstream: Any) -> None:
    pool, calls = upstream
    with pytest.raises(Dropped):
        await pool.request("POST", "/drop", [], b"{}")
    assert calls["n"] == 1
    host, port = refused_url().removeprefix("http://").split(":")
    with pytest.raises(ConnectRefused):
        await Http1Pool(host, int(port)).request("GET", "/", [], b"")


async def test_a_deadline_fails_the_call_and_retires_the_connection(upstream: Any) -> None:
    pool, _ = upstream
    deadlines = Deadlines(resolution_s=0.02)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await pool.request("GET", "/slow", [], b"", deadline=loop.time() + 0.1,
                           deadlines=deadlines)
    await pool.request("GET", "/x", [], b"")
    assert pool.opened == 2  # the timed-out connection was not reused
    await deadlines.close()
