"""Issue 13: secrets in /config, who may read /config and /status, /metrics on a port of its
own, slow clients, and the answers aiohttp itself used to give (text/plain, tracebacks,
`Server: Python/… aiohttp/…`). Malformed and dribbled requests go over raw sockets: an
HTTP library would refuse to send them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from collectors.scrape import Scraper, ScrapeTarget
from pitchey.app import create_app
from pitchey.protocol import PitcheyRunner
from pitchey.redact import redact
from pitchey.security import SECURITY_HEADERS
from pitchey.settings import Settings, SettingsError

TOKEN = "t0ken-for-the-admin-endpoints-0123456789"
PLANTED = ("PLANTEDdbPW1", "PLANTEDredisPW2", "PLANTEDotlpKEY3", "PLANTEDheader4", TOKEN)


def _non_loopback_address() -> str | None:
    """An address of this machine other than loopback (a peer that is not local)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


# -- redaction --------------------------------------------------------------------------------

def test_every_credential_form_is_hidden_from_config() -> None:
    settings = Settings.from_environ({
        "DATABASE_URL": "postgresql://app:PLANTEDuserinfo9@db/pitchey?password=PLANTEDdbPW1",
        "REDIS_URL": "redis://cache:6379/0?password=PLANTEDredisPW2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example/v1?api_key=PLANTEDotlpKEY3",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer PLANTEDheader4,x-team=PLANTEDteam5",
        "PITCHEY_ADMIN_TOKEN": TOKEN,
    })
    shown = json.dumps(settings.redacted())
    for secret in (*PLANTED, "PLANTEDuserinfo9", "PLANTEDteam5"):
        assert secret not in shown
    redacted = settings.redacted()
    assert redacted["database_url"] == "postgresql://app:***@db/pitchey?password=***"
    assert redacted["otel_exporter_otlp_headers"] == "authorization=***,x-team=***"
    assert redacted["admin_token"] == "***"
    assert TOKEN not in settings.config_hash()


_NAMES = ["password", "passwd", "pwd", "secret", "key", "api_key", "apikey", "token",
          "access_token", "auth", "credential", "signature", "client_secret", "X-Amz-Signature"]
_SECRET = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=6, max_size=24,
).map(lambda tail: "ZQ9" + tail)
_FILLER = st.text("abcdefghijklmnopqrstuvwxy", min_size=1, max_size=8)


def _encoded(value: str, times: int) -> str:
    for _ in range(times):
        value = quote(value, safe="")
    return value


@st.composite
def _planted(draw: st.DrawFn) -> tuple[str, str, list[str], bool]:
    """(text, secret, known secrets, every_value): a secret planted in one of the forms."""
    secret = draw(_SECRET)
    name = draw(st.sampled_from(_NAMES))
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    host, other = draw(_FILLER), draw(_FILLER)
    form = draw(st.sampled_from(
        ["userinfo", "query", "fragment", "nested", "keyword", "bearer", "known", "headers"]))
    known: list[str] = []
    if form == "userinfo":
        text = f"postgresql://{other}:{quote(secret, safe='')}@{host}:5432/db"
    elif form == "query":
        text = f"redis://{host}:6379/0?{other}=1&{name}={quote_plus(secret)}&db={other}"
    elif form == "fragment":
        text = f"https://{host}/cb#state={other}&{name}={quote(secret, safe='')}"
    elif form == "nested":
        depth = draw(st.integers(1, 5))
        inner = f"https://{other}/x?{name}={quote(secret, safe='')}&z=1"
        text = f"https://{host}/login?next={_encoded(inner, depth)}"
    elif form == "keyword":
        text = f"connect failed: host={host} {name}={quote_plus(secret)} user={other}"
    elif form == "bearer":
        text = f"Authorization: Bearer {quote(secret, safe='')} from {host}"
    elif form == "headers":
        return (f"{name}={quote(secret, safe='')},{other}={quote(secret, safe='')}", secret,
                [], True)
    else:
        text, known = f"driver said: could not use {secret} on {host}", [secret]
    return text, secret, known, False


@settings(max_examples=400, deadline=None)
@given(_planted())
def test_a_planted_secret_never_appears_in_the_redacted_output(
    case: tuple[str, str, list[str], bool],
) -> None:
    text, secret, known, every_value = case
    shown = redact(text, known=known, every_value=every_value)
    assert shown is not None
    for depth in range(7):
        assert _encoded(secret, depth) not in shown
    assert quote_plus(secret) not in shown


def test_log_lines_and_tracebacks_are_redacted() -> None:
    import io

    from pitchey.redact import RedactingFilter

    settings = Settings.from_environ({
        "DATABASE_URL": "postgresql://app:PLANTEDuserinfo9@db/p?password=PLANTEDdbPW1",
        "PITCHEY_ADMIN_TOKEN": TOKEN,
    })
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.addFilter(RedactingFilter(settings.secret_values()))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionError(f"cannot connect to {settings.database_url}")
        except ConnectionError:
            logger.exception("GET /api/x?access_token=PLANTEDquery7 failed for %s", TOKEN)
    finally:
        logger.removeHandler(handler)
    text = written.getvalue()
    assert "Traceback" in text and "ConnectionError" in text
    for secret in ("PLANTEDuserinfo9", "PLANTEDdbPW1", "PLANTEDquery7", TOKEN):
        assert secret not in text


def test_redaction_leaves_ordinary_text_alone() -> None:
    for text in ("postgresql://postgres@127.0.0.1:5432/test", "redis://127.0.0.1:6379/3",
                 "Error 111 connecting to localhost:6379. Connection refused.",
                 "https://h/search?q=hello+world&page=2"):
        assert redact(text) == text


# -- /config and /status: loopback or the token -----------------------------------------------

async def test_config_and_status_refuse_a_request_that_came_through_a_proxy(
    service: Any,
) -> None:
    """Without a token only loopback peers without a proxy header get them: HAProxy on
    loopback in front of a geo worker adds X-Forwarded-For."""
    client, _ = await service()
    for path in ("/config", "/status"):
        assert (await client.get(path)).status == 200
        refused = await client.get(path, headers={"X-Forwarded-For": "203.0.113.9"})
        assert refused.status == 403
        assert (await refused.json())["error"]["code"] == "admin_only"
        assert refused.headers["Content-Security-Policy"]
        forwarded = await client.get(path, headers={"Forwarded": "for=203.0.113.9"})
        assert forwarded.status == 403


async def test_a_token_opens_config_and_status_from_anywhere(service: Any) -> None:
    client, _ = await service(admin_token=TOKEN)
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    for path in ("/config", "/status"):
        good = await client.get(path, headers={**proxied, "Authorization": f"Bearer {TOKEN}"})
        assert good.status == 200
        assert TOKEN not in await good.text()
        wrong = await client.get(path, headers={**proxied, "Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status == 403
        assert (await client.get(path, headers=proxied)).status == 403


async def test_no_planted_secret_reaches_config_or_status(
    service: Any, pg_dsn: str,
) -> None:
    # PostgreSQL here trusts local connections: the password parameter is accepted, unused
    client, _ = await service(
        database_url=f"{pg_dsn}?password=PLANTEDdbPW1",
        otel_exporter_otlp_headers="authorization=Bearer PLANTEDheader4",
        admin_token=TOKEN,
    )
    for path in ("/config", "/status", "/health/services", "/api/health"):
        body = await (await client.get(path)).text()
        for secret in PLANTED:
            assert secret not in body, (path, secret)


def test_a_bad_admin_token_is_refused_at_start_naming_the_variable() -> None:
    for bad in ("short", "has a space in it 0123456789", "x" * 15, "tëken-0123456789abcdef"):
        with pytest.raises(SettingsError, match="PITCHEY_ADMIN_TOKEN") as raised:
            Settings.from_environ({"PITCHEY_ADMIN_TOKEN": bad})
        assert bad not in str(raised.value)
    assert Settings.from_environ({"PITCHEY_ADMIN_TOKEN": TOKEN}).admin_token == TOKEN
    assert Settings.from_environ({"PITCHEY_ADMIN_TOKEN": ""}).admin_token is None
    for name, bad in (("PITCHEY_METRICS_PORT", "70000"), ("PITCHEY_METRICS_PORT", "x"),
                      ("PITCHEY_HEADER_TIMEOUT", "0"), ("PITCHEY_KEEPALIVE_TIMEOUT", "-1")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_environ({name: bad})


@asynccontextmanager
async def _served(
    make_settings: Callable[..., Settings], host: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[tuple[str, int]]:
    """The service on a real socket with the runner `pitchey serve` uses."""
    settings = make_settings(**overrides)
    app = create_app(settings, registry=CollectorRegistry())
    runner = PitcheyRunner(app, header_timeout_s=settings.header_timeout_s,
                           keepalive_timeout_s=settings.keepalive_timeout_s,
                           access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield host, int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def test_the_scraper_sends_the_token_to_a_remote_deployment(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address other than loopback")
    async with _served(make_settings, host=address, admin_token=TOKEN) as (host, port):
        target = [ScrapeTarget("pitchey", f"http://{host}:{port}")]
        monkeypatch.delenv("PITCHEY_ADMIN_TOKEN", raising=False)
        without = Scraper(target)
        assert await asyncio.to_thread(without.scrape_once) == 1  # /status refused
        monkeypatch.setenv("PITCHEY_ADMIN_TOKEN", TOKEN)
        store_scraper = Scraper(target)
        assert await asyncio.to_thread(store_scraper.scrape_once) == 0


# -- /metrics on a port of its own ----------------------------------------------------------

def test_serve_puts_metrics_on_the_metrics_port_too(tmp_path: Path) -> None:
    env = {**os.environ, "PITCHEY_METRICS_PORT": "0", "PITCHEY_SQLITE_PATH":
           str(tmp_path / "p.db"), "PITCHEY_ARGON2_TIME_COST": "1",
           "PITCHEY_ARGON2_MEMORY_KIB": "8"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pitchey_cli", "serve", "--port", "0"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        main_line = process.stdout.readline()
        metrics_line = process.stdout.readline()
        main_url = re.search(r"http://\S+", main_line)
        metrics_url = re.search(r"http://\S+/metrics", metrics_line)
        assert main_url and metrics_url, (main_line, metrics_line)
        with urllib_open(metrics_url.group(0)) as response:
            assert response.headers["Server"] == "pitchey"
            assert b"http_server_request_duration_seconds" in response.read()
        with urllib_open(main_url.group(0) + "/metrics") as response:
            assert b"pitchey_" in response.read()  # still served on the main port
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def urllib_open(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=5)  # noqa: S310 - a local test server


# -- slow clients -------------------------------------------------------------------------------

async def _get_health(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + "/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
        return r.status


async def test_a_dribbled_request_head_is_closed_within_the_bound(
    make_settings: Callable[..., Settings],
) -> None:
    bound_s = 0.5
    async with _served(make_settings, header_timeout_s=bound_s) as (host, port):
        base = f"http://{host}:{port}"
        dribblers = [await asyncio.open_connection(host, port) for _ in range(50)]
        # within aiohttp's line limit: only the deadline may end these connections
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 8000
        started = time.monotonic()
        # each dribbler's whole answer: done once the service has closed the connection
        answers = [asyncio.create_task(reader.read()) for reader, _ in dribblers]
        closed_at: dict[int, float] = {}
        async with aiohttp.ClientSession() as session:
            for offset in range(len(head)):
                for number, (_, writer) in enumerate(dribblers):
                    if answers[number].done():
                        closed_at.setdefault(number, time.monotonic() - started)
                    else:
                        writer.write(head[offset:offset + 1])
                # the service keeps answering while its slow clients dribble
                assert await _get_health(session, base) == 200
                if len(closed_at) == len(dribblers) or time.monotonic() - started > bound_s + 3:
                    break
        for answer_task in answers:
            answer_task.cancel()
        assert len(closed_at) == len(dribblers), "slow clients were never disconnected"
        assert max(closed_at.values()) < bound_s + 2.0
        for answer_task in answers:
            # a byte sent after the deadline can turn the close into a reset
            if answer_task.exception() is None:
                assert answer_task.result().startswith(b"HTTP/1.1 408 ")
            else:
                assert isinstance(answer_task.exception(), ConnectionResetError)
        for _, writer in dribblers:
            writer.close()
        # a client that stops mid-head is told why
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head[:40])
        answer = await asyncio.wait_for(reader.read(), bound_s + 2.0)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b'"request_timeout"' in answer and b"Server: pitchey" in answer


async def test_an_idle_kept_alive_connection_is_closed(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, keepalive_timeout_s=0.5) as (host, port):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the service
        assert time.monotonic() - started < 3.0
        writer.close()


# -- errors that were not the JSON error body --------------------------------------------------

async def _raw(host: str, port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    assert status == expected
    assert headers["content-type"].startswith("application/json")
    for name, value in SECURITY_HEADERS.items():
        assert headers[name.lower()] == value
    assert headers["server"] == "pitchey"
    error = json.loads(body)["error"]
    assert error["status"] == expected
    return str(error["code"])


async def test_a_path_with_an_encoded_newline_gets_the_json_404_counted_and_limited(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, rate_limit_per_minute=2) as (host, port):
        request = b"GET /nothing%0Ahere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        for _ in range(2):
            assert _assert_json_error(*await _raw(host, port, request), 404) == "not_found"
        assert _assert_json_error(*await _raw(host, port, request), 429) == "rate_limited"
        status, _, metrics = await _raw(
            host, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200
        counted = [line for line in metrics.decode().splitlines()
                   if line.startswith("http_server_request_duration_seconds_count{")
                   and 'http_route="unmatched"' in line
                   and 'http_response_status_code="404"' in line]
        assert counted and counted[0].endswith(" 2.0"), counted


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
async def test_malformed_requests_get_the_json_error_body_and_one_log_line(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
) -> None:
    async with _served(make_settings) as (host, port):
        with caplog.at_level(logging.DEBUG):
            code = _assert_json_error(*await _raw(host, port, request_bytes), 400)
        assert code == "bad_request"
    assert not [record for record in caplog.records if record.exc_info], \
        "a malformed request logged a traceback"
    lines = [record for record in caplog.records if "malformed" in record.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage()


async def test_every_response_says_server_pitchey(make_settings: Callable[..., Settings]) -> None:
    async with _served(make_settings) as (host, port):
        for path in (b"/health", b"/api/pitches", b"/no/such/route"):
            _, headers, _ = await _raw(
                host, port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert headers["server"] == "pitchey"
