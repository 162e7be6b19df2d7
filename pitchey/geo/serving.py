"""Run one aiohttp application in this process until SIGTERM/SIGINT, on a listening socket
inherited from the supervisor (so it knows every port before any child starts) or on a
host and port of its own."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from pitchey import keys
from pitchey.protocol import PitcheyRunner
from pitchey.redact import redact_logs
from pitchey.settings import Settings

__all__ = ["serve_app", "listening_socket"]


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket the supervisor hands to a child (port 0: any free port).
    SO_REUSEADDR lets a restarted worker take its port back at once."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def serve_app(
    app: web.Application,
    *,
    fd: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    banner: Callable[[str], str] | None = None,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve `app` until a stop signal. `banner(url)` is printed once listening, flushed, so
    a parent process can read the address from the first line."""
    # the service's apps carry their settings; the edge agent's takes the defaults
    settings = app.get(keys.SETTINGS) or Settings()
    redact_logs(settings.secret_values())  # on the handlers the process configured
    runner = PitcheyRunner(app, header_timeout_s=settings.header_timeout_s,
                           keepalive_timeout_s=settings.keepalive_timeout_s,
                           access_log=None, handle_signals=False)
    await runner.setup()
    site: web.BaseSite
    if fd is not None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if on_ready is not None:
        await on_ready()
    if banner is not None:
        sockname = runner.addresses[0]
        print(banner(f"http://{sockname[0]}:{sockname[1]}"), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
