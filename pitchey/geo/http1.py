"""A small HTTP/1.1 keep-alive client for the edge's hop to the regional workers.

Why not aiohttp's ClientSession: on this hop it costs about twice what the regional worker
spends answering a cached read (request objects, cookie and redirect machinery, per-request
timers), which caps the edge below half the worker's throughput. The hop needs much less:
one pool of keep-alive connections per region, one write per request, and httptools (the C
parser uvicorn uses) to read the answer. Timeouts are the caller's (asyncio.timeout).

The failure kinds matter to the caller's retry rules, so they are distinct exceptions:
`ConnectRefused` (the request never left), `Dropped` (the connection ended before the answer's
headers arrived), `Broken` (it ended after them, or the answer was not valid HTTP).
"""

from __future__ import annotations

import asyncio
import errno
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import httptools

from pitchey.geo.deadlines import Deadlines

__all__ = ["Http1Pool", "Http1Response", "ConnectRefused", "ConnectFailed", "Dropped", "Broken"]

# An idle connection older than this is closed instead of reused: aiohttp servers (the
# workers) close idle keep-alive connections after 75 s, and a request written into a
# connection the server is closing is lost.
_IDLE_REUSE_S = 30.0
_MAX_IDLE = 256


class UpstreamError(Exception):
    pass


class ConnectRefused(UpstreamError):
    """The worker refused the connection: the request was never sent."""


class ConnectFailed(UpstreamError):
    """The connection could not be made for another reason (unreachable, reset)."""


class Dropped(UpstreamError):
    """The connection ended before the answer's headers arrived."""


class Broken(UpstreamError):
    """The connection ended mid-answer, or the answer was not valid HTTP."""


# Lines a proxy must not pass on (RFC 9110 7.6.1), plus the framing it recomputes. The
# patterns match a line by the "\n" before it, in the block with a "\n" put in front: a
# literal first character lets the regex engine skip to candidate lines, where a MULTILINE "^"
# makes it try every position (3x slower on a worker's 900-byte header block, measured).
_HOP_BY_HOP_LINE = re.compile(
    r"\n(?:connection|keep-alive|proxy-authenticate|proxy-authorization|te|trailers?|"
    r"transfer-encoding|upgrade|content-length)[ \t]*:[^\r\n]*\r(?=\n)",
    re.IGNORECASE)


_CONTENT_LENGTH = re.compile(r"\ncontent-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)


@dataclass(slots=True)
class Http1Response:
    """`head` holds the answer's header lines ("Name: value\r\n" each, hop-by-hop ones and
    Content-Length removed), ready to be passed on; `content_length` is the worker's."""

    status: int
    head: str
    body: bytes
    content_length: int | None = None

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), or None."""
        found = re.search(rf"^{re.escape(name)}[ \t]*:[ \t]*([^\r\n]*)\r\n", self.head,
                          re.IGNORECASE | re.MULTILINE)
        return found.group(1).strip() if found else None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Http1Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._raw_head = b""  # the bytes received until the headers are complete
        self._head = ""
        self._content_length: int | None = None
        self._body: list[bytes] = []
        self._headers_done = False
        self._is_head = False
        self.reusable = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        if not self._headers_done:
            self._raw_head += data
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Broken(f"invalid HTTP from the worker: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            reason = f"connection closed ({exc})" if exc else "connection closed"
            self._fail(Broken(reason) if self._headers_done else Dropped(reason))

    # -- httptools callbacks --------------------------------------------------------------

    def on_headers_complete(self) -> None:
        # The header block is kept as text and filtered with one regular expression instead
        # of a Python callback per header: a worker's answer carries a dozen of them, and
        # the edge passes them on unchanged. The parser has validated the block already.
        self._headers_done = True
        raw = self._raw_head
        self._raw_head = b""
        start = raw.find(b"\r\n") + 2
        block = "\n" + raw[start:raw.find(b"\r\n\r\n") + 2].decode("latin-1")
        found = _CONTENT_LENGTH.search(block)
        self._content_length = int(found.group(1)) if found else None
        self._head = _HOP_BY_HOP_LINE.sub("", block)[1:]
        if self._is_head:  # a HEAD answer has headers only, whatever Content-Length says
            self._complete(reusable=False)

    def on_body(self, chunk: bytes) -> None:
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if not self._is_head:
            assert self._parser is not None
            self._complete(reusable=self._parser.should_keep_alive())

    # -- requests -------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes, head: bool) -> asyncio.Future[Http1Response]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._raw_head = b""
        self._head = ""
        self._body = []
        self._headers_done = False
        self._is_head = head
        self.reusable = False
        self.transport.write(payload)
        return self._waiter

    def _complete(self, reusable: bool) -> None:
        assert self._parser is not None
        response = Http1Response(self._parser.get_status_code(), self._head,
                                 b"".join(self._body), self._content_length)
        self._parser = None
        self.reusable = reusable
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        self._parser = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Keep-alive connections to one worker (host, port)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"{host}:{port}".encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self.opened = 0

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
        *, deadline: float | None = None, deadlines: Deadlines | None = None,
    ) -> Http1Response:
        """Send one request and read the whole answer; TimeoutError once the loop clock
        passes `deadline` (watched by `deadlines`). A reused connection that turns out to be
        dead before anything was read raises Dropped, like a fresh one would."""
        connection = self._take_idle()
        if connection is None:
            if deadline is None:
                connection = await self._connect()
            else:
                async with asyncio.timeout_at(deadline):  # a new connection: rare enough
                    connection = await self._connect()
        payload = _serialize(method, target, headers, body, self._host_header)
        waiter = connection.send(payload, head=method == "HEAD")
        key = deadlines.watch(deadline, waiter) if deadlines and deadline is not None else None
        try:
            response = await waiter
        except BaseException:
            connection.close()  # cancelled (timeout) or failed: never reuse it
            if not waiter.done():
                waiter.cancel()
            raise
        finally:
            if key is not None:
                assert deadlines is not None
                deadlines.unwatch(key)
        if connection.reusable and connection.alive and len(self._idle) < _MAX_IDLE:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return response

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used is the most likely alive
            if connection.alive and now - connection.idle_since < _IDLE_REUSE_S:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        except ConnectionRefusedError as exc:
            raise ConnectRefused(f"{self.host}:{self.port} refused the connection") from exc
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                raise ConnectRefused(f"{self.host}:{self.port} refused the connection") from exc
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.opened += 1
        return protocol

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _serialize(method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes,
               host: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"Host: " + host]
    for name, value in headers:
        lines.append(f"{name}: {value}".encode("latin-1"))
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: keep-alive")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
