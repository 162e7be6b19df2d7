"""`pitchey serve`, `pitchey seed` and `pitchey failover`: argument parsing only at import time.

Exit codes (`ExitCode`, README "Exit codes"): 0 a clean stop (Ctrl-C or SIGTERM ends a server
normally), 1 the service could not do its job (cannot listen, storage unavailable; a failover
whose checks failed), 4 bad input (a flag, an environment variable, a regions file, a missing
HAProxy; no geo edge at --url or an unknown region for `failover`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pitchey_cli.argtypes import non_negative_int
from pitchey_cli.exitcodes import ExitCode

__all__ = ["register"]


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the Pitchey platform service",
        description="Run the Pitchey platform API. Storage is a SQLite file unless DATABASE_URL "
        "is set; the cache is in-process unless REDIS_URL is set.",
    )
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None,
                       help="port to bind (default 8001; 0 picks a free one)")
    serve.add_argument("--topology", choices=("single", "geo"), default="single",
                       help="single process (default) or the edge + four regional workers")
    serve.add_argument("--regions", default=None, metavar="FILE",
                       help="regions YAML for --topology geo (default: the seed's four regions)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_serve)

    seed = subparsers.add_parser(
        "seed",
        help="create the demo accounts and generated users and pitches",
        description="Create one demo account per portal (password Demo123) plus generated "
        "users and pitches; the same --seed gives the same data. Safe to run again.",
    )
    seed.add_argument("--users", type=non_negative_int, default=50,
                      help="generated users (default 50)")
    seed.add_argument("--pitches", type=non_negative_int, default=200,
                      help="generated pitches (default 200)")
    seed.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    seed.set_defaults(func=_seed)

    failover = subparsers.add_parser(
        "failover",
        help="kill one region's worker under traffic and report the reroute",
        description="While traffic runs against the geo edge, kill REGION's worker, measure the "
        "time to reroute and the failed requests, restart it, and print the report.",
    )
    # from the light module: pitchey.geo.failover itself imports aiohttp
    from pitchey.geo.failover_args import add_arguments

    add_arguments(failover)
    failover.set_defaults(func=_failover)


def _settings(args: argparse.Namespace) -> Any:
    from pitchey.settings import Settings, SettingsError

    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    try:
        return Settings.from_environ(os.environ, **overrides)
    except SettingsError as exc:
        print(f"pitchey: {exc}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG) from None


def _serve(args: argparse.Namespace) -> ExitCode:
    settings = _settings(args)
    if args.topology == "geo":
        from pitchey.geo.supervisor import serve_geo

        return serve_geo(settings, port=settings.port, regions_file=args.regions)
    from pitchey.server import serve_forever

    return serve_forever(settings, access_log=args.access_log)


def _seed(args: argparse.Namespace) -> ExitCode:
    from pitchey.server import run_seed

    return run_seed(_settings(args), users=args.users, pitches=args.pitches, seed=args.seed)


def _failover(args: argparse.Namespace) -> ExitCode:
    from pitchey.geo.failover import main

    return main(args)
