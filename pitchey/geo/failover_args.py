"""The arguments of `pitchey failover`, kept free of heavy imports so that building the
`pitchey` command's parser stays cheap (pitchey.geo.failover itself imports aiohttp)."""

from __future__ import annotations

import argparse

from pitchey_cli.argtypes import fraction, positive_float, positive_int

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("region", help="the region whose worker is killed (e.g. us-east)")
    parser.add_argument("--url", default="http://127.0.0.1:8001",
                        help="the geo edge (default http://127.0.0.1:8001)")
    parser.add_argument("--duration", type=positive_float, default=30.0, metavar="S",
                        help="seconds of traffic (default 30; kill at 1/4, restart at 1/2)")
    # Clients run closed loops with no think time, the worst case for a kill: every client
    # always has a request in flight, and a write in flight at the dead worker is lost.
    parser.add_argument("--concurrency", type=positive_int, default=4,
                        help="concurrent clients, each with no think time (default 4)")
    parser.add_argument("--write-ratio", type=fraction, default=0.1,
                        help="share of requests that create a pitch (default 0.1)")
    parser.add_argument("--drain", nargs="?", const="drain", choices=("drain", "maint"),
                        default=None, metavar="drain|maint",
                        help="instead of killing the worker, set the region to drain (or "
                             "maint) through HAProxy's runtime API as an operator would, and "
                             "back to ready at the restart time")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
