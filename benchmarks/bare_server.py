"""The control for bench_service: a bare aiohttp handler returning fixed bytes.

Same process layout as `pitchey serve` (one process, one AppRunner, no access log); it serves
exactly the bytes the instrumented service returned for the same URL: the body and every
response header aiohttp does not write itself (so the seed's security headers too). What the
benchmark then compares is the cost of everything else: routing, the handler's cache lookup,
metrics, tracing, rate limiting.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import urllib.request

from aiohttp import web

# aiohttp writes these itself on every response
_OWN_HEADERS = {"date", "server", "content-length", "connection", "keep-alive"}


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        headers = {name: value for name, value in response.headers.items()
                   if name.lower() not in _OWN_HEADERS}
        return response.read(), headers


async def serve(body: bytes, headers: dict[str, str], path: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024, reuse_address=True)
    await site.start()
    port = next(addr[1] for addr in runner.addresses if isinstance(addr, tuple))
    print(f"bare: listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copy-from", required=True, help="URL whose response to serve")
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    body, headers = fetch(args.copy_from)
    asyncio.run(serve(body, headers, args.path))


if __name__ == "__main__":
    main()
