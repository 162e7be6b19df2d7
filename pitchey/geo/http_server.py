"""A lean HTTP/1.1 server for the edge: asyncio protocols and the httptools request parser.

The edge does little per request beyond moving bytes, so the general-purpose machinery of a
web framework (request and response objects with lazy properties, routers, middleware
chains, per-request timers) would be most of its cost; measured, it put the edge above what
a regional worker spends on a cached read. This server keeps what HTTP/1.1 needs: keep-alive
and pipelining (answers leave in request order), chunked request bodies (httptools decodes
them), `Expect: 100-continue`, a body size limit (413), 400 on malformed input, 501 for
protocol upgrades, and an idle timeout. Handlers are `async def handler(HttpRequest) ->
HttpResponse`; an exception in one becomes a 500 JSON answer, never a broken connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

import httptools

__all__ = ["HttpRequest", "HttpResponse", "HttpServer", "json_response", "reason"]

log = logging.getLogger("pitchey.geo.http")

_MAX_PIPELINE = 64
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    peer: str | None = None
    scheme: str = "http"
    path: str = field(init=False)
    _index: dict[str, str] | None = field(default=None, repr=False)
    _cookies: dict[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = self.target.split("?", 1)[0]

    @property
    def query_string(self) -> str:
        return self.target.partition("?")[2]

    def header(self, lowercase_name: str) -> str | None:
        """A header by its lower-case name (the last one when repeated)."""
        index = self._index
        if index is None:
            index = self._index = {name.lower(): value for name, value in self.headers}
        return index.get(lowercase_name)

    @property
    def cookies(self) -> dict[str, str]:
        cookies = self._cookies
        if cookies is None:
            cookies = {}
            for part in (self.header("cookie") or "").split(";"):
                name, sep, value = part.partition("=")
                if sep:
                    cookies[name.strip()] = value.strip()
            self._cookies = cookies
        return cookies


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    # a HEAD answer keeps the Content-Length of the body it does not carry
    content_length: int | None = None
    # header lines passed through as they are ("Name: value\r\n" each), before `headers`
    raw_head: str = ""
    # whether raw_head carries a Date already (a worker's answer does)
    dated: bool = False


def json_response(body: object, status: int = 200,
                  headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    payload = json.dumps(body, allow_nan=False, default=str).encode()
    return HttpResponse(status, [("Content-Type", "application/json; charset=utf-8"),
                                 *(headers or [])], payload)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class _Clock:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def date(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._peer: str | None = None
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._queue: deque[HttpRequest | HttpResponse] = deque()
        self._keep_alive: deque[bool] = deque()
        self._task: asyncio.Task[None] | None = None
        # set while the connection's serving task waits for the next request: one task per
        # connection, woken by a future, instead of a new task per request
        self._idle: asyncio.Future[None] | None = None
        self._paused = False
        self._closing = False
        self._expect_continue = False
        # activity is counted, not timed: the sweeper closes a connection that saw none
        # for long enough, so the hot path makes no clock call
        self.activity = 0
        self._swept_activity = -1
        self._idle_sweeps = 0

    # -- transport events -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, "protocol upgrades (WebSocket) are not proxied by the edge")
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: stop working for it

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._body_size = 0
        self._too_large = False
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        if len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        if self._expect_continue and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size > self._server.max_body:
            self._too_large = True
            self._body = []
        elif not self._too_large:
            self._body.append(chunk)

    def on_message_complete(self) -> None:
        if self._parser.should_upgrade():
            return  # feed_data raises HttpParserUpgrade next, which answers 501
        keep_alive = self._parser.should_keep_alive()
        if self._too_large:
            item: HttpRequest | HttpResponse = json_response(
                {"error": {"status": 413, "code": "payload_too_large",
                           "message": f"request body is larger than {self._server.max_body} "
                                      "bytes"}}, 413)
            keep_alive = False
        else:
            item = HttpRequest(self._parser.get_method().decode("ascii"),
                               self._url.decode("latin-1"), self._headers,
                               b"".join(self._body), self._peer)
        self._queue.append(item)
        self._keep_alive.append(keep_alive)
        if len(self._queue) >= _MAX_PIPELINE and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    # -- answering ------------------------------------------------------------------------

    def _wake(self) -> None:
        """Hand the queue to the serving task: wake it if it waits, start it if none runs."""
        idle = self._idle
        if idle is not None:
            self._idle = None
            if not idle.done():
                idle.set_result(None)
        elif self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._transport is not None:
                if not self._queue:
                    if self._server.stopping:
                        return
                    self._idle = loop.create_future()
                    await self._idle  # the next request, or cancelled when the peer leaves
                    continue
                item = self._queue.popleft()
                keep_alive = self._keep_alive.popleft()
                response = item if isinstance(item, HttpResponse) else await self._answer(item)
                self._write(response, keep_alive and not self._server.stopping)
                if not keep_alive or self._server.stopping:
                    self._close()
                    return
                if self._paused and len(self._queue) < _MAX_PIPELINE // 2:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
        finally:
            self._task = None
            self._idle = None

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self._server.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("edge handler failed for %s %s", request.method, request.target)
            return json_response({"error": {"status": 500, "code": "internal_error",
                                            "message": "internal error"}}, 500)

    def _write(self, response: HttpResponse, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        length = len(response.body) if response.content_length is None \
            else response.content_length
        parts = [f"HTTP/1.1 {response.status} {reason(response.status)}\r\n",
                 response.raw_head]
        parts += [f"{name}: {value}\r\n" for name, value in response.headers]
        parts.append(f"Content-Length: {length}\r\n")
        if not response.dated:
            parts.append(f"Date: {self._server.clock.date()}\r\n")
        if not keep_alive:
            parts.append("Connection: close\r\n")
        parts.append("\r\n")
        head = "".join(parts).encode("latin-1")
        transport.write(head + response.body if response.body else head)
        self.activity += 1

    def _reject(self, status: int, message: str) -> None:
        self._queue.append(json_response(
            {"error": {"status": status, "code": reason(status).lower().replace(" ", "_"),
                       "message": message}}, status))
        self._keep_alive.append(False)
        if self._transport is not None:
            self._transport.pause_reading()
        self._wake()

    def _close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._close()

    @property
    def busy(self) -> bool:
        """Answering (or about to): not merely waiting for the next request."""
        return self._task is not None and self._idle is None

    def sweep(self, sweeps_allowed: int) -> None:
        """Called every sweep interval: close after `sweeps_allowed` sweeps without activity."""
        if self.busy or self.activity != self._swept_activity:
            self._swept_activity = self.activity
            self._idle_sweeps = 0
            return
        self._idle_sweeps += 1
        if self._idle_sweeps >= sweeps_allowed:
            self._close()


class HttpServer:
    def __init__(self, handler: Handler, *, max_body: int = 1024 * 1024,
                 keepalive_timeout_s: float = 75.0) -> None:
        self.handler = handler
        self.max_body = max_body
        self.keepalive_timeout_s = keepalive_timeout_s
        self.connections: set[_Connection] = set()
        self.clock = _Clock()
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, *, host: str = "127.0.0.1", port: int = 0,
                    sock: socket.socket | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: _Connection(self), sock=sock,
                                                    backlog=1024)
        else:
            self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                    backlog=1024, reuse_address=True)
        self._sweeper = loop.create_task(self._sweep())

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    async def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than the timeout."""
        interval = max(0.05, min(10.0, self.keepalive_timeout_s / 4))
        sweeps_allowed = max(1, round(self.keepalive_timeout_s / interval))
        while True:
            await asyncio.sleep(interval)
            for connection in list(self.connections):
                connection.sweep(sweeps_allowed)

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let answers in progress finish (up to `grace_s`), close the rest."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace_s
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
