"""A reverse proxy that delays every answer: a target made slow on purpose, for real runs.

    python tests/gate/slow_proxy.py --upstream http://127.0.0.1:8001 --delay-ms 600 \
        --port-file /tmp/port

It binds 127.0.0.1 on a free port (written to --port-file once listening), forwards each
request unchanged to the upstream Pitchey service and sends the upstream's answer back after
the delay. Run as its own process so a test can start and kill it like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
              "content-encoding", "upgrade", "proxy-connection", "te", "trailer"}


def make_app(upstream: str, delay_s: float) -> web.Application:
    session_key = web.AppKey("session", ClientSession)

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[session_key] = ClientSession(timeout=ClientTimeout(total=60), auto_decompress=False)
        yield
        await app[session_key].close()

    async def forward(request: web.Request) -> web.Response:
        started = asyncio.get_running_loop().time()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with request.app[session_key].request(
            request.method, upstream + request.rel_url.raw_path_qs, headers=headers,
            data=body or None, allow_redirects=False,
        ) as answer:
            payload = await answer.read()
            reply = web.Response(status=answer.status, body=payload)
            for name, value in answer.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    reply.headers.add(name, value)
        remaining = delay_s - (asyncio.get_running_loop().time() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        return reply

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, delay_s: float, port_file: Path) -> None:
    runner = web.AppRunner(make_app(upstream.rstrip("/"), delay_s), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(str(port))
    os.replace(tmp, port_file)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.delay_ms / 1000.0, args.port_file))


if __name__ == "__main__":
    main()
