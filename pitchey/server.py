"""Process shells: run the service until a signal arrives, or seed its storage once."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from aiohttp import web

from pitchey.protocol import PitcheyRunner
from pitchey.redact import redact_logs
from pitchey.settings import Settings
from pitchey_cli.exitcodes import ExitCode

__all__ = ["serve_forever", "run_seed", "bound_port"]


def bound_port(runner: web.AppRunner) -> int:
    """The port the first site listens on (useful with --port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the server is not listening")


async def _serve(settings: Settings, access_log: bool) -> None:
    from pitchey.app import create_app
    from pitchey.health import metrics_app

    app = create_app(settings)
    runner = PitcheyRunner(
        app,
        header_timeout_s=settings.header_timeout_s,
        keepalive_timeout_s=settings.keepalive_timeout_s,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        handle_signals=False,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_address=True)
    await site.start()
    runners = [runner]
    if settings.metrics_port is not None:
        # /metrics of the same registry on a port of its own (still on the main port too)
        metrics_runner = PitcheyRunner(
            metrics_app(app), header_timeout_s=settings.header_timeout_s,
            keepalive_timeout_s=settings.keepalive_timeout_s, access_log=None,
            handle_signals=False,
        )
        await metrics_runner.setup()
        runners.append(metrics_runner)
        await web.TCPSite(metrics_runner, settings.host, settings.metrics_port,
                          reuse_address=True).start()
    # Everything allocated so far (modules, the app, its clients) lives as long as the
    # process: moving it out of the collector's generations keeps full collections from
    # walking it again and again under load.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # One parseable line: scripts and tests read the port from it (with --port 0).
    print(
        f"pitchey: listening on http://{settings.host}:{bound_port(runner)} "
        f"(region {settings.region}, storage {settings.backend}, "
        f"cache {'redis' if settings.redis_url else 'memory'})",
        flush=True,
    )
    if len(runners) > 1:
        print(f"pitchey: metrics on http://{settings.host}:{bound_port(runners[1])}/metrics",
              flush=True)
    try:
        await stop.wait()
    finally:
        for each in reversed(runners):
            await each.cleanup()


def serve_forever(settings: Settings, *, access_log: bool = False) -> ExitCode:
    logging.basicConfig(level=logging.INFO if access_log else logging.WARNING,
                        format="%(message)s")
    redact_logs(settings.secret_values())  # no credential reaches a log line
    try:
        asyncio.run(_serve(settings, access_log))
    except OSError as exc:
        print(f"pitchey: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return ExitCode.BREACH
    return ExitCode.OK


async def _seed(settings: Settings, users: int, pitches: int, seed: int) -> str:
    from pitchey.seed import seed_demo
    from pitchey.storage.factory import open_database

    database = await open_database(settings, None)
    try:
        await database.migrate()
        report = await seed_demo(database, settings, users=users, pitches=pitches, seed=seed)
    finally:
        await database.close()
    return str(report)


def run_seed(settings: Settings, *, users: int, pitches: int, seed: int) -> ExitCode:
    from pitchey.errors import StorageUnavailable

    try:
        print(f"pitchey: {asyncio.run(_seed(settings, users, pitches, seed))}")
    except StorageUnavailable as exc:
        print(f"pitchey: storage unavailable: {exc}", file=sys.stderr)
        return ExitCode.BREACH
    return ExitCode.OK
