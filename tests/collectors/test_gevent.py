"""The writer and the scraper inside a gevent-patched process, as in the Locust master."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()

    import json, sys, time
    import gevent
    from collectors import RunWriter, Scraper, Validity, load_run

    url, out = sys.argv[1], sys.argv[2]
    writer = RunWriter.create(out, "gevent", {}, url, {"edge": url}, flush_interval_s=0.2)
    ticks = []

    def ticker():  # another greenlet must keep running while the scraper works
        for _ in range(20):
            ticks.append(time.time())
            gevent.sleep(0.05)

    scraper = Scraper({"edge": url}, writer=writer, interval_s=0.1)
    scraper.start()
    gevent.spawn(ticker).join()
    deadline = time.monotonic() + 20
    while scraper.scrapes < 10 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    scraper.stop()
    writer.add_load(time.time(), 1, 1.0, 0.0)
    run = load_run(writer.finish(Validity.ok()))
    print(json.dumps({"ticks": len(ticks), "scrapes": scraper.scrapes,
                      "metrics": sorted(set(run.service["metric"])), "status": run.status}))
""")


async def test_scraper_and_writer_under_gevent(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="# TYPE pitchey_db_up gauge\npitchey_db_up 1\n")

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"uptime_s": 1})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    server = await aiohttp_server(app)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SCRIPT, str(server.make_url("/")), str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["status"] == "complete" and result["ticks"] == 20
    assert result["scrapes"] >= 10
    assert {"pitchey_db_up", "status.uptime_s", "up"} <= set(result["metrics"])
