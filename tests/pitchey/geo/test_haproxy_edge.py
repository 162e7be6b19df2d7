"""Security and behaviour of the HAProxy edge, each test replaying an attack that broke the
hand-written proxy it replaced, against real processes: HAProxy in front of four regional
workers on a seeded SQLite file (one topology for the module, a second one with a rate
limit for the rate-limit test), or HAProxy in front of an echo upstream where the test must
see what the edge forwards.

Raw sockets wherever an HTTP client library would normalise the attack away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pitchey.geo.config_file import load_geo_config
from pitchey.geo.haproxy_config import EdgeLayout, render_haproxy_config
from pitchey.geo.supervisor import haproxy_binary
from pitchey.settings import Settings

from .topology import Topology, topology

pytestmark = pytest.mark.integration

EMAIL, PASSWORD = "alex.creator@demo.com", "Demo123"
SESSION_COOKIE = "pitchey_session"
REGION = {"X-Pitchey-Region": "us-east"}
HTTP_REQUEST_S = 1.0  # timeouts.http_request_s below: the slow-client bound
# The module topology: fast health checks (as tests/pitchey/geo/topology.py), short client timeouts.
EDGE_YAML = f"""
health: {{interval_s: 0.2, timeout_s: 0.5, retries: 1}}
breaker: {{volume_threshold: 20, sleep_window_s: 1, success_threshold: 5}}
timeouts: {{server_s: 5, connect_s: 0.5, queue_s: 2, http_request_s: {HTTP_REQUEST_S},
           keep_alive_s: 2}}
latency: {{enabled: false}}
supervisor: {{restart_delay_s: 60, start_timeout_s: 90}}
"""
RATE_LIMIT = 20
PITCH = {
    "logline": "An edge that keeps one client's answers away from every other client.",
    "synopsis": "A proxy learns the hard way that a shared cache and a shared connection "
                "are both places where one user's session can end up in another's hands.",
    "genre": "Thriller",
    "budget_range": "micro",
    "status": "published",
}


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("haproxy-edge")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db"),
                        "PITCHEY_RATE_LIMIT_PER_MINUTE": "0"}, regions_yaml=EDGE_YAML) as running:
        yield running


@pytest.fixture(scope="module")
def weighted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A third topology, balancing by weight with an affinity cookie."""
    tmp = tmp_path_factory.mktemp("haproxy-edge-weighted")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db"),
                        "PITCHEY_RATE_LIMIT_PER_MINUTE": "0"},
                  regions_yaml=EDGE_YAML + "routing: weighted\n") as running:
        yield running


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """A second topology, rate limited to RATE_LIMIT requests per minute per client."""
    tmp = tmp_path_factory.mktemp("haproxy-edge-limited")
    with topology(tmp, {"PITCHEY_SQLITE_PATH": str(tmp / "pitchey.db"),
                        "PITCHEY_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT)}) as running:
        yield running


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


# -- a raw HTTP/1.1 connection --------------------------------------------------------------


@dataclass
class Answer:
    status: int
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Raw:
    """One TCP connection to the edge, read as HTTP/1.1 exactly where the bytes are."""

    port: int
    timeout: float = 5.0
    sock: socket.socket = field(init=False)
    buffer: bytes = b""

    def __post_init__(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"the edge closed the connection; unread: {self.buffer[:200]!r}")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def answer(self, *, head: bool = False) -> Answer:
        """The next response; its status line must start exactly where the last one ended."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        assert re.fullmatch(r"HTTP/1\.[01] \d{3}( .*)?", lines[0]), (
            f"no status line where the response should start: {raw_head[:200]!r}")
        status = int(lines[0].split()[1])
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":")
                                                           for line in lines[1:])]
        answer = Answer(status, lines[0], headers)
        if head or status < 200 or status in (204, 304):
            return answer
        if answer.get("Transfer-Encoding") == "chunked":
            answer.body = self._chunked()
        elif answer.get("Content-Length") is not None:
            answer.body = self._take(int(answer.get("Content-Length") or 0))
        else:
            answer.body = self._until_close()
        return answer

    def final_answer(self) -> tuple[list[Answer], Answer]:
        """Interim (1xx) answers, then the final one."""
        interim = []
        while (answer := self.answer()).status < 200:
            interim.append(answer)
        return interim, answer

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            size_line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in self.buffer:  # no trailers expected
                    self._fill()
                self.buffer = self.buffer.partition(b"\r\n")[2]
                return body
            body += self._take(size)
            self._take(2)

    def _until_close(self) -> bytes:
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        body, self.buffer = self.buffer, b""
        return body

    def nothing_more(self, wait_s: float) -> bool:
        """No byte arrives within `wait_s` (the connection stays open and silent)."""
        if self.buffer:
            return False
        self.sock.settimeout(wait_s)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        self.buffer += chunk
        return False

    def closed_within(self, wait_s: float) -> bool:
        """The edge closes the connection (FIN or RST) within `wait_s`, sending nothing
        else first."""
        self.sock.settimeout(wait_s)
        try:
            return not self.buffer and self.sock.recv(65536) == b""
        except ConnectionResetError:
            return not self.buffer
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)


def request(method: str, target: str, headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", *, host: str | None = "edge.test",
            version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fetch(port: int, method: str, target: str, headers: list[tuple[str, str]] | None = None,
          body: bytes = b"") -> Answer:
    with Raw(port) as conn:
        conn.send(request(method, target, headers, body))
        return conn.answer(head=method == "HEAD")


def login_body() -> bytes:
    return json.dumps({"email": EMAIL, "password": PASSWORD}).encode()


def session_token(port: int) -> str:
    answer = fetch(port, "POST", "/api/auth/creator/login",
                   [("Content-Type", "application/json"), *REGION.items()], login_body())
    assert answer.status == 200, answer
    return str(answer.json()["session"]["token"])


def unique_list_url(per_page: int = 3) -> str:
    return f"/api/pitches?per_page={per_page}&t={uuid.uuid4().hex}"


# -- 1. Expect: 100-continue ----------------------------------------------------------------


def test_expect_100_continue_login_answers_only_its_own_connection(edge: Topology) -> None:
    """The old proxy relayed a region's 100 Continue and the final login answer to whichever
    client connection to that region came next: anonymous clients got the session cookie."""
    port = _port(edge.edge)
    body = login_body()
    anonymous: list[Answer] = []
    with Raw(port) as kept_alive:
        for _ in range(5):
            with Raw(port) as login:
                login.send(request("POST", "/api/auth/creator/login", [
                    ("Content-Type", "application/json"), *REGION.items(),
                    ("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
                # the interim answer, if the edge sends one before the body, is ours alone
                if not login.nothing_more(1.0):
                    interim = login.answer()
                    assert interim.status == 100, interim
                    assert interim.get("Set-Cookie") is None
                # other clients of the same region while the login waits for its body
                kept_alive.send(request("GET", "/api/auth/me", list(REGION.items())))
                anonymous.append(kept_alive.answer())
                anonymous.append(fetch(port, "GET", "/api/auth/me", list(REGION.items())))
                login.send(body)
                anonymous.append(fetch(port, "GET", "/api/auth/me", list(REGION.items())))
                interims, answer = login.final_answer()
                assert all(a.status == 100 for a in interims), interims
                assert answer.status == 200, answer
                cookies = [c for c in answer.all("Set-Cookie")
                           if c.startswith(f"{SESSION_COOKIE}=")]
                assert len(cookies) == 1, answer.headers
                token = cookies[0].split(";")[0].split("=", 1)[1]
                assert answer.json()["session"]["token"] == token
                assert answer.json()["user"]["email"] == EMAIL
                # the same connection goes on: its next answer starts where this one ended
                login.send(request("GET", "/api/auth/me",
                                   [*REGION.items(), ("Cookie", f"{SESSION_COOKIE}={token}")]))
                me = login.answer()
                assert me.status == 200, me
                assert me.json()["user"]["email"] == EMAIL
    assert len(anonymous) == 15
    for answer in anonymous:
        assert answer.status == 401, answer
        assert answer.all("Set-Cookie") == [], answer.headers
        assert answer.json()["error"]["code"] == "unauthenticated"


# -- 2. oversize requests -------------------------------------------------------------------


def _refused_quickly(port: int, data: bytes) -> tuple[Answer, float]:
    """Send `data` (from a thread: the edge may stop reading) and time the refusal."""
    with Raw(port) as conn:
        started = time.monotonic()

        def send() -> None:
            try:
                conn.send(data)
            except OSError:
                pass  # refused and closed before the rest was read: what we want

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = conn.answer()
        elapsed = time.monotonic() - started
        assert conn.closed_within(2.0), "the edge kept the refused connection open"
        sender.join(5)
    return answer, elapsed


OVERSIZE = 200 * 1024


@pytest.mark.parametrize("shape", ["url", "header-line", "many-headers"])
def test_oversize_requests_are_refused_fast_and_closed(edge: Topology, shape: str) -> None:
    """The old proxy buffered whatever a client sent, so one client could hold a worker's
    memory and the edge's attention indefinitely."""
    port = _port(edge.edge)
    if shape == "url":
        data = request("GET", "/api/pitches?q=" + "a" * OVERSIZE)
    elif shape == "header-line":
        data = request("GET", "/health", [("X-Big", "b" * OVERSIZE)])
    else:  # 1 MiB of small headers
        data = request("GET", "/health", [(f"X-H{i}", "c" * 100) for i in range(9533)])
        assert len(data) >= 1024 * 1024
    answer, elapsed = _refused_quickly(port, data)
    print(f"{shape}: {len(data)} bytes refused with {answer.status} in {elapsed * 1000:.1f} ms")
    assert answer.status in (400, 414, 431), answer
    assert elapsed < 2.0
    started = time.monotonic()
    health = fetch(port, "GET", "/_edge/health")
    assert health.status == 200
    assert time.monotonic() - started < 1.0


# -- 3. metric-label flood ------------------------------------------------------------------


def _series(metrics: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in metrics.splitlines()
            if line and not line.startswith("#")}


async def test_random_paths_do_not_grow_the_edge_metrics(edge: Topology) -> None:
    """The old proxy labelled its metrics with the raw path and method: 2,000 random paths
    were 2,000 new series, for ever."""
    tokens = [secrets.token_hex(8) for _ in range(2000)]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{edge.edge}/metrics") as response:
            assert response.status == 200
            before = await response.text()
        gate = asyncio.Semaphore(32)

        async def one(i: int, token: str) -> int:
            method, path = ("DELETE", f"/_edge/{token}") if i % 2 else ("GET", f"/{token}")
            async with gate, session.request(method, f"{edge.edge}{path}") as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
        async with session.get(f"{edge.edge}/metrics") as response:
            after = await response.text()
    assert set(statuses) <= {404, 405}, sorted(set(statuses))
    leaked = [t for t in tokens if t in after]
    assert leaked == []
    assert _series(after) == _series(before)
    print(f"/metrics: {len(before)} bytes before, {len(after)} after 2,000 random paths")
    assert len(after) - len(before) < 4096


# -- 4. the edge cache ----------------------------------------------------------------------


EDGE_CACHE = "X-Pitchey-Edge-Cache"


def _no_credentials_leak(answer: Answer, token: str) -> None:
    assert answer.all("Set-Cookie") == [], answer.headers
    assert token.encode() not in answer.body
    assert "private" not in (answer.get("Cache-Control") or "")


@pytest.mark.parametrize("cookies", [
    [f"{SESSION_COOKIE}={{token}}"],
    ["theme=dark", f"{SESSION_COOKIE}={{token}}"],
    [f"{SESSION_COOKIE}={{token}}", "theme=dark"],
    [f"theme=dark; {SESSION_COOKIE}={{token}}"],
], ids=["session", "innocent-then-session", "session-then-innocent", "one-line"])
def test_personalised_answers_are_never_stored(edge: Topology, cookies: list[str]) -> None:
    """The old edge cache keyed on the URL alone and stored whatever came back: the next
    anonymous reader got the signed-in user's answer (and cookie)."""
    port = _port(edge.edge)
    token = session_token(port)
    url = unique_list_url()
    headers = [("Cookie", line.format(token=token)) for line in cookies]
    personal = fetch(port, "GET", url, headers)
    assert personal.status == 200
    assert personal.get(EDGE_CACHE) == "BYPASS"
    anonymous = fetch(port, "GET", url)
    assert anonymous.status == 200
    assert anonymous.get(EDGE_CACHE) == "MISS", anonymous.headers
    assert anonymous.get("Age") is None
    _no_credentials_leak(anonymous, token)
    # and the other way round: a signed-in request is never answered from the shared entry
    again = fetch(port, "GET", url, headers)
    assert again.get(EDGE_CACHE) == "BYPASS"
    assert again.get("Age") is None


def test_authorization_requests_bypass_the_cache(edge: Topology) -> None:
    port = _port(edge.edge)
    token = session_token(port)
    url = unique_list_url()
    bearer = [("Authorization", f"Bearer {token}")]
    first = fetch(port, "GET", url, bearer)
    assert first.status == 200
    assert first.get(EDGE_CACHE) == "BYPASS"
    anonymous = fetch(port, "GET", url)
    assert anonymous.get(EDGE_CACHE) == "MISS", anonymous.headers
    _no_credentials_leak(anonymous, token)
    assert fetch(port, "GET", url, bearer).get(EDGE_CACHE) == "BYPASS"


def test_anonymous_reads_are_cached(edge: Topology) -> None:
    port = _port(edge.edge)
    url = unique_list_url()
    first = fetch(port, "GET", url)
    assert first.status == 200
    assert first.get(EDGE_CACHE) == "MISS"
    second = fetch(port, "GET", url)
    assert second.status == 200
    assert second.get(EDGE_CACHE) == "HIT", second.headers
    assert second.get("Age") is not None and int(second.get("Age") or "x") >= 0
    assert second.body == first.body


def test_cached_answers_carry_the_cors_headers_of_their_own_origin(edge: Topology) -> None:
    """Vary: Origin. Whatever order the origins come in, each answer carries exactly the
    Access-Control-Allow-Origin the worker gives that origin: the allowed origin gets itself,
    anything else (no Origin, a foreign one) gets none."""
    port = _port(edge.edge)
    allowed = Settings.from_environ(edge.env).frontend_origin
    evil = "https://evil.example"
    expected = {None: None, allowed: allowed, evil: None}
    for order in ([None, evil, allowed, None, evil, allowed],
                  [allowed, None, evil, allowed, evil, None],
                  [evil, allowed, None, evil, allowed, None]):
        url = unique_list_url()
        seen = []
        for origin in order:
            answer = fetch(port, "GET", url, [("Origin", origin)] if origin else [])
            assert answer.status == 200
            acao = answer.get("Access-Control-Allow-Origin")
            seen.append((origin, answer.get(EDGE_CACHE), acao))
            assert acao == expected[origin], seen
            assert (answer.get("Access-Control-Allow-Credentials") is not None) == (
                origin == allowed), seen


async def test_a_write_makes_the_cached_lists_stale(edge: Topology) -> None:
    """A successful write bumps the edge's generation: the next anonymous read of a list
    cached before it is a MISS (and the new pitch is in it)."""
    port = _port(edge.edge)
    url = unique_list_url(per_page=50)
    assert fetch(port, "GET", url).get(EDGE_CACHE) == "MISS"
    cached = fetch(port, "GET", url)
    assert cached.get(EDGE_CACHE) == "HIT", cached.headers
    token = session_token(port)
    title = f"edge generation {uuid.uuid4().hex}"
    async with aiohttp.ClientSession() as session, session.post(
            f"{edge.edge}/api/pitches", json={**PITCH, "title": title},
            headers={**REGION, "Cookie": f"{SESSION_COOKIE}={token}"}) as response:
        assert response.status == 201, await response.text()
        assert response.headers.get(EDGE_CACHE) == "BYPASS"
    fresh = fetch(port, "GET", url)
    assert fresh.get(EDGE_CACHE) == "MISS", fresh.headers
    assert title.encode() in fresh.body
    assert fetch(port, "GET", url).get(EDGE_CACHE) == "HIT"


# -- 5. HEAD on a keep-alive connection -----------------------------------------------------


def test_head_answers_have_no_body_on_a_kept_alive_connection(edge: Topology) -> None:
    """The old proxy forwarded a HEAD answer's Content-Length worth of the next answer as its
    body, desynchronising the connection."""
    with Raw(_port(edge.edge)) as conn:
        for path in ("/status", "/health"):
            conn.send(request("HEAD", path))
            head = conn.answer(head=True)
            assert head.status == 200, head
            assert int(head.get("Content-Length") or 0) > 0 or head.get(
                "Transfer-Encoding") == "chunked", head.headers
            assert conn.nothing_more(0.3), f"bytes after the HEAD answer: {conn.buffer!r}"
        conn.send(request("GET", "/health"))
        get = conn.answer()
        assert get.status_line.startswith("HTTP/1.1 200")
        assert get.json()["status"] == "ok"
        assert conn.nothing_more(0.2)


# -- 6. malformed request lines and Host ----------------------------------------------------


@pytest.mark.parametrize(("data", "statuses"), [
    (b"GET /health HTTP/1.1\r\n\r\n", {400}),
    (b"GET /health HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", {400}),
    (b"GET /health HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n", {400}),
    (b"GET /health HTTP/2.0\r\nHost: a.test\r\n\r\n", {400, 505}),
    (b"GET /health HTTP/3.0\r\nHost: a.test\r\n\r\n", {400, 505}),
], ids=["no-host", "two-hosts", "host-list", "http-2.0-line", "http-3.0-line"])
def test_malformed_requests_are_refused(edge: Topology, data: bytes, statuses: set[int]) -> None:
    with Raw(_port(edge.edge)) as conn:
        conn.send(data)
        answer = conn.answer()
    assert answer.status in statuses, answer
    assert answer.get("X-Pitchey-Served-By") is None  # never reached a worker


# -- 7. what the edge forwards: an echo upstream --------------------------------------------


@dataclass
class EchoEdge:
    port: int
    seen: list[dict[str, Any]]

    def request_tagged(self, tag: str) -> dict[str, Any] | None:
        return next((r for r in self.seen if tag in r["path"]), None)


@contextlib.asynccontextmanager
async def haproxy_in_front(tmp_path: Path, handler: Any,
                           regions_yaml: str = EDGE_YAML) -> AsyncIterator[int]:
    """The real HAProxy running the generated configuration, every region (and the agent) one
    aiohttp upstream answering with `handler`; yields the edge's port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    regions = tmp_path / "regions.yaml"
    regions.write_text(regions_yaml)
    config = load_geo_config(regions)
    upstream = ("127.0.0.1", server.port or 0)
    text = render_haproxy_config(config, EdgeLayout(
        bind=f"127.0.0.1:{port}", workers={name: upstream for name in config.names},
        agent=upstream, runtime_socket=str(tmp_path / "h.sock"), rate_limit_per_minute=0,
        max_connections=1000))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    log = (tmp_path / "haproxy.log").open("wb")
    process = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, (tmp_path / "haproxy.log").read_text()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert time.monotonic() < deadline, "HAProxy did not start listening"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        await server.close()


@pytest.fixture
async def echo_edge(tmp_path: Path) -> AsyncIterator[EchoEdge]:
    """HAProxy in front of echo servers that answer each request with the headers it
    received."""
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        record = {"path": request.path_qs, "headers": list(request.headers.items()),
                  "method": request.method}
        if request.path != "/health":
            seen.append(record)
        if request.path == "/api/drop" and sum(r["path"] == request.path_qs
                                               for r in seen) == 1:
            # the first delivery of each URL: the worker dies after reading the request
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(1)
        return web.json_response(record)

    async with haproxy_in_front(tmp_path, echo) as port:
        yield EchoEdge(port, seen)


async def _exchange(port: int, data: bytes) -> bytes:
    """One request on its own connection (asyncio: the echo server shares this loop)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), 5) if length \
            else b""
        return head + body
    finally:
        writer.close()
        await writer.wait_closed()


async def test_connection_listed_headers_never_reach_the_worker(echo_edge: EchoEdge) -> None:
    """A header named in Connection is hop-by-hop (RFC 9110 7.6.1): the old proxy forwarded
    it, so a client could hand the worker headers meant for one hop only."""
    tag = uuid.uuid4().hex
    answer = await _exchange(echo_edge.port, request("GET", f"/api/echo?tag={tag}", [
        ("Connection", "keep-alive, X-Pitchey-Secret"), ("X-Pitchey-Secret", "1")]))
    delivered = echo_edge.request_tagged(tag)
    if delivered is None:  # refused at the edge: acceptable, as long as it says so
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        return
    names = [name.lower() for name, _ in delivered["headers"]]
    assert "x-pitchey-secret" not in names, delivered["headers"]
    assert all("x-pitchey-secret" not in value.lower()
               for name, value in delivered["headers"] if name.lower() == "connection"), \
        delivered["headers"]


async def test_the_client_address_is_the_last_forwarded_for_entry(echo_edge: EchoEdge) -> None:
    """Workers trust only the right-most X-Forwarded-For entry: the edge must append the
    address it saw after whatever the client claimed."""
    tag = uuid.uuid4().hex
    answer = await _exchange(echo_edge.port, request("GET", f"/api/echo?tag={tag}", [
        ("X-Forwarded-For", "6.6.6.6")]))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    delivered = echo_edge.request_tagged(tag)
    assert delivered is not None
    lines = [v for k, v in delivered["headers"] if k.lower() == "x-forwarded-for"]
    entries = [entry.strip() for line in lines for entry in line.split(",")]
    assert entries[-1] == "127.0.0.1", lines
    assert "6.6.6.6" in entries[:-1], lines  # kept, but never in the trusted position


async def test_only_safe_requests_are_retried_after_an_empty_response(
        echo_edge: EchoEdge) -> None:
    """A worker that read a request and died may have processed it: HAProxy would retry any
    method on an empty response; the edge retries GET (the client never sees the failure)
    and a POST carrying an Idempotency-Key (the next region replays or finishes it from the
    shared database), and never replays a POST without one, which fails once instead of
    being processed twice."""
    read_tag, write_tag, keyed_tag = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    answer = await _exchange(echo_edge.port, request("GET", f"/api/drop?tag={read_tag}"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert sum(read_tag in r["path"] for r in echo_edge.seen) == 2  # dropped, then retried
    body = b'{"title": "once"}'
    try:
        answer = await _exchange(echo_edge.port, request("POST", f"/api/drop?tag={write_tag}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]) + body)
    except (asyncio.IncompleteReadError, ConnectionError):
        answer = b""  # the edge may close the client connection instead of answering
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert [r["method"] for r in echo_edge.seen if write_tag in r["path"]] == ["POST"]
    answer = await _exchange(echo_edge.port, request("POST", f"/api/drop?tag={keyed_tag}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
        ("Idempotency-Key", keyed_tag)]) + body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert [r["method"] for r in echo_edge.seen if keyed_tag in r["path"]] == ["POST", "POST"]


async def test_a_full_region_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    """One request at a time per region and a queue of two: of eight concurrent requests to
    a slow region, the ones beyond what it holds and queues get the JSON 503 with
    Retry-After at once, not after the queue timeout."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        if request.path != "/health":
            await release.wait()
        return web.json_response({"ok": True})

    yaml = EDGE_YAML + ("regions: {us-east: {max_in_flight: 1}, us-west: {max_in_flight: 1},"
                        " europe: {max_in_flight: 1}, asia: {max_in_flight: 1}}\n"
                        "edge: {max_queue: 2}\n")
    async with haproxy_in_front(tmp_path, slow, yaml) as port:
        tasks = [asyncio.create_task(_exchange(port, request("GET", f"/api/slow?n={i}",
                                                             [("X-Pitchey-Region", "asia")])))
                 for i in range(8)]
        # well before timeouts.queue_s (2 s), which would answer 503 too, but late
        done, _ = await asyncio.wait(tasks, timeout=1.0)
        refused = [t.result() for t in done]
        # 1 held by the worker + 2 queued: the other 5 refused (retries may requeue a few)
        assert 4 <= len(refused) <= 5, refused
        for answer in refused:
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert b"\r\nretry-after: 1\r\n" in answer.lower(), answer[:400]
            assert b'"code":"overloaded"' in answer, answer
        release.set()
        held = [await t for t in tasks if t not in done]
        assert held and all(a.startswith(b"HTTP/1.1 200") for a in held), held


# -- 8. a slow client -----------------------------------------------------------------------


async def test_a_client_dribbling_its_headers_is_cut_off(edge: Topology) -> None:
    """The old proxy waited for headers for ever: one byte every half second held a
    connection (and a slot) indefinitely."""
    port = _port(edge.edge)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    received = b""
    closed_after: float | None = None
    health: list[tuple[int, float]] = []

    async def others() -> None:
        async with aiohttp.ClientSession() as session:
            while closed_after is None and time.monotonic() - started < 5:
                t0 = time.monotonic()
                async with session.get(f"{edge.edge}/health") as response:
                    await response.read()
                    health.append((response.status, time.monotonic() - t0))
                await asyncio.sleep(0.1)

    meanwhile = asyncio.create_task(others())
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: edge.test\r\n")
        await writer.drain()
        while time.monotonic() - started < 5:
            try:
                writer.write(b"X")
                await writer.drain()
            except OSError:
                closed_after = time.monotonic() - started
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.5)
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
            received += chunk
            if not chunk:
                closed_after = time.monotonic() - started
                break
    finally:
        if closed_after is None:
            closed_after = float("inf")
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        await meanwhile
    print(f"slow client cut off after {closed_after:.2f} s; answer {received[:40]!r}")
    assert HTTP_REQUEST_S - 0.1 <= closed_after < 3.0
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received[:200]
    assert health, "no other request was made meanwhile"
    assert all(status == 200 and elapsed < 1.0 for status, elapsed in health), health


# -- 9. the rate limit ----------------------------------------------------------------------


async def test_forwarded_for_rotation_does_not_escape_the_rate_limit(limited: Topology) -> None:
    """The old edge keyed its limit on the left-most X-Forwarded-For: a client rotating that
    header had no limit at all."""
    statuses: list[int] = []
    refusals: list[tuple[dict[str, str], Any]] = []
    async with aiohttp.ClientSession() as session:
        for i in range(30):
            spoofed = f"10.{i}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
            async with session.get(f"{limited.edge}/api/pitches?per_page=1&n={i}",
                                   headers={"X-Forwarded-For": spoofed}) as response:
                statuses.append(response.status)
                if response.status == 429:
                    refusals.append((dict(response.headers), await response.json()))
                    # the workers limit too (same setting, right-most X-Forwarded-For), but
                    # the edge counts every request first: the refusal must be the edge's own
                    assert "X-Pitchey-Served-By" not in response.headers, response.headers
                else:
                    await response.read()
        async with session.get(f"{limited.edge}/health") as response:
            health = response.status
    print(f"30 requests with rotated X-Forwarded-For: {statuses.count(200)} x 200, "
          f"{statuses.count(429)} x 429")
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) <= RATE_LIMIT
    assert refusals, statuses
    for headers, body in refusals:
        assert int(headers["Retry-After"]) > 0
        assert body["error"]["status"] == 429
        assert body["error"]["code"] == "rate_limited"
    assert health == 200


# -- 10. weighted routing keeps a client on its region --------------------------------------


AFFINITY_COOKIE = "pitchey_region"


def _affinity(answer: Answer) -> list[str]:
    return [c for c in answer.all("Set-Cookie") if c.startswith(f"{AFFINITY_COOKIE}=")]


def test_weighted_routing_keeps_each_client_on_its_region(weighted: Topology) -> None:
    """Weighted round-robin spreads new clients and keeps each on the region it was given;
    a forged affinity cookie is not an error, only a fresh assignment."""
    port = _port(weighted.edge)
    names = {r["name"] for r in fetch(port, "GET", "/status").json()["regions"]}
    assert len(names) == 4, names
    given: dict[str, str] = {}
    for _ in range(8):
        answer = fetch(port, "GET", unique_list_url(per_page=1))
        assert answer.status == 200
        cookies = _affinity(answer)
        assert len(cookies) == 1, answer.headers
        region = cookies[0].split(";")[0].split("=", 1)[1]
        assert region == answer.get("X-Pitchey-Served-By")
        assert "httponly" in cookies[0].lower()
        given[region] = cookies[0]
    assert len(given) >= 2, given  # spread, not pinned to one region
    assert set(given) <= names
    for region in given:
        for _ in range(5):
            answer = fetch(port, "GET", unique_list_url(per_page=1),
                           [("Cookie", f"theme=dark; {AFFINITY_COOKIE}={region}")])
            assert answer.status == 200
            assert answer.get("X-Pitchey-Served-By") == region
            assert _affinity(answer) == []  # already placed: no new cookie
    for forged in ("bogus", "us-east%0d%0aX-Evil:%201", "../asia"):
        answer = fetch(port, "GET", unique_list_url(per_page=1),
                       [("Cookie", f"{AFFINITY_COOKIE}={forged}")])
        assert answer.status == 200, answer
        served = answer.get("X-Pitchey-Served-By")
        assert served in names
        assert [c.split(";")[0] for c in _affinity(answer)] == [f"{AFFINITY_COOKIE}={served}"]
        assert answer.get("X-Evil") is None
