"""The HTTP connection handling of `pitchey serve` and the geo processes: aiohttp's own, with
three changes no public aiohttp option offers.

- **Request-head deadline.** aiohttp has a keep-alive timer but nothing that bounds how long
  a client may take to send a request head: a client dribbling one header byte at a time
  holds its connection (and a file descriptor) forever. Here the head must be complete
  within `header_timeout_s` of the connection (or, on a kept-alive connection, of the first
  byte of the next request); otherwise the connection answers 408 and is closed.
- **aiohttp's own errors as JSON.** A request aiohttp cannot parse (bad request line, bad
  header) never reaches the application; aiohttp answers it from
  `RequestHandler.handle_error` as text/plain and logs a full traceback. Here it is the
  service's JSON error body with the security headers, and one log line.
- **No `Server: Python/… aiohttp/…`**: those responses say `Server: pitchey` as every
  other response does (`pitchey.security.SECURITY_HEADERS`).

aiohttp builds its `RequestHandler` in `web.Server.__call__` with no way to choose the class,
so the runner's server is given a subclass whose `__call__` builds ours (`PitcheyRunner`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from pitchey.errors import json_error
from pitchey.security import SECURITY_HEADERS

__all__ = ["PitcheyRunner"]

log = logging.getLogger("pitchey.http")

_TIMEOUT_BODY = json.dumps(
    {"error": {"status": 408, "code": "request_timeout",
               "message": "the request head was not received in time"}}
).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    + b"".join(f"{name}: {value}\r\n".encode() for name, value in SECURITY_HEADERS.items())
    + f"Content-Length: {len(_TIMEOUT_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"


class _Protocol(RequestHandler):
    """The deadline costs nothing per request but a clock reading: one timer per connection
    wakes at most once per `head_timeout_s` (or when a started head is due) and compares the
    time a request head started (`_head_since`) with now; no timer is made per request."""

    __slots__ = ("_head_timeout_s", "_head_timer", "_head_bytes", "_head_since")

    def __init__(self, manager: web.Server, *, head_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = False
        self._head_since: float | None = None

    # -- the request-head deadline ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # a connection that sends nothing is bounded too
        self._head_since = self._loop.time()
        self._head_timer = self._loop.call_later(self._head_timeout_s, self._check_head)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        # bytes while no request is queued or running start (or continue) a request head
        if data and not self._request_in_progress and not self._messages:
            if self._head_since is None:
                self._head_since = self._loop.time()
            self._head_bytes = True
        super().data_received(data)
        if self._request_count != before:  # the parser completed a request head
            self._head_since = None
            self._head_bytes = False

    def _check_head(self) -> None:
        self._head_timer = None
        if self.transport is None:
            return
        since = self._head_since
        waiting = since is not None and not self._request_in_progress and not self._messages
        due = since + self._head_timeout_s if since is not None else 0.0
        now = self._loop.time()
        if not waiting or now < due:  # nothing started, or not due yet: look again later
            delay = due - now if waiting else self._head_timeout_s
            self._head_timer = self._loop.call_later(max(delay, 0.001), self._check_head)
            return
        if self._head_bytes:  # a client mid-request is told why; a silent one is just closed
            self.transport.write(_TIMEOUT_RESPONSE)
        log.debug("closed a connection from %s: no complete request head within %ss",
                  self.peername, self._head_timeout_s)
        self.force_close()

    # -- aiohttp's own error responses ---------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a fault of ours: aiohttp logs it with its traceback
            super().handle_error(request, status, exc, message)
            return _json_answer(status, "internal_error", "internal error")
        # a malformed request is the client's problem: one line, no traceback
        level = (logging.DEBUG if self._request_count == 1 and isinstance(exc, BadHttpMethod)
                 else logging.WARNING)
        log.log(level, "malformed request from %s answered %s: %s", request.remote, status,
                _one_line(f"{type(exc).__name__}: {message or exc}"))
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; no error response can follow")
        return _json_answer(status, "bad_request", "the request is malformed")


def _json_answer(status: int, code: str, message: str) -> web.StreamResponse:
    response = json_error(status, code, message, headers=SECURITY_HEADERS)
    response.force_close()  # as aiohttp's own error answers: the connection is not reused
    return response


class _Server(web.Server):
    head_timeout_s: float = 10.0

    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, head_timeout_s=self.head_timeout_s,
                         **self._kwargs)


class PitcheyRunner(web.AppRunner):
    """`web.AppRunner` whose connections have the request-head deadline, idle keep-alive
    bound and JSON error answers described above."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout_s: float,
        keepalive_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, keepalive_timeout=keepalive_timeout_s, **kwargs)
        self._header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # same object, our protocol factory (see the module docstring for why)
        server.__class__ = _Server
        assert isinstance(server, _Server)
        server.head_timeout_s = self._header_timeout_s
        return server
