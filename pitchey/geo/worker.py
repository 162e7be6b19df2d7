"""A regional worker: the platform's own `create_app` with the geo tiers plugged in.

What the region adds to the service: the application cache tier (60 s, invalidated across
regions) with request coalescing (concurrent misses of one key share one load), the query
cache tier (30 s), the read/write split (writes to the primary region's storage, reads from
this region's replica view, writes paying the modelled round trip to the primary), a
heartbeat write in the database health probe, the latency model and its fault injection
(`/_geo/latency`), and the response headers the HAProxy edge reads: which region answered,
the worker's pid, the route template, and Cache-Control for its cache (`worker_http`).

Run one with `python -m pitchey.geo.worker --region NAME` (the supervisor does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from pitchey import keys
from pitchey.geo.appcache import RegionalCache
from pitchey.geo.coalesce import Coalescer
from pitchey.geo.generations import Generations, LocalGenerations, SharedGenerations
from pitchey.geo.latency import LatencyModel, RegionDelay
from pitchey.geo.regions import GeoConfig
from pitchey.geo.replica import QueryCache, SplitDatabase
from pitchey.geo.worker_http import (
    REGION_SERVED_HEADER,
    add_latency_routes,
    edge_headers_middleware,
    latency_middleware,
)
from pitchey.instrumentation import RouteTable
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey_cli.exitcodes import ExitCode
from pitchey_cli.usage import CommandParser

__all__ = ["create_worker_app", "worker_settings", "REGION_SERVED_HEADER", "SPLIT_DATABASE",
           "main"]

log = logging.getLogger("pitchey.geo.worker")

SPLIT_DATABASE: web.AppKey[SplitDatabase] = web.AppKey("geo_split_database", SplitDatabase)


def worker_settings(settings: Settings, config: GeoConfig, region: str) -> Settings:
    """The service settings of one region: its name, the application tier's TTL for the
    read-through caches, and X-Forwarded-For trusted (workers sit behind the edge, which
    appends the client's address as the last entry; the rate limit keys on that one)."""
    ttl = int(config.cache.application_ttl_s)
    return replace(
        settings,
        region=region,
        cache_ttl_pitches_s=min(settings.cache_ttl_pitches_s, ttl),
        cache_ttl_dashboard_s=min(settings.cache_ttl_dashboard_s, ttl),
        trust_forwarded_for=True,
    )


def create_worker_app(
    settings: Settings,
    config: GeoConfig,
    region: str,
    *,
    registry: CollectorRegistry | None = None,
    generations: Generations | None = None,
    probe_interval_s: float | None = None,
) -> web.Application:
    """The service for `region` (settings as given; see `worker_settings`)."""
    from pitchey.app import PROBE_INTERVAL_S, create_app
    from pitchey.cache import open_cache

    if region not in config.names:
        raise ValueError(f"unknown region {region!r} (regions: {', '.join(config.names)})")
    generations = generations or LocalGenerations()
    latency = LatencyModel(config.latency)
    delay = RegionDelay(latency, region, config.regions)
    query_cache = (QueryCache(config.cache.query_ttl_s, config.cache.query_max_entries)
                   if config.cache.query_ttl_s > 0 else None)
    database = SplitDatabase(region=region, primary_region=config.primary_region,
                             latency=latency, generations=generations, query_cache=query_cache)
    cache = RegionalCache(open_cache(settings.redis_url), generations,
                          config.cache.application_ttl_s, Coalescer(config.coalescing))

    def add_geo_routes(routes: RouteTable) -> None:
        add_latency_routes(routes, delay)

    app = create_app(settings, registry=registry, database=database, cache=cache,
                     probe_interval_s=probe_interval_s or PROBE_INTERVAL_S,
                     extra_routes=add_geo_routes)
    app[SPLIT_DATABASE] = database
    if query_cache is not None:
        query_cache.observer = _query_cache_observer(app)
    cache.on_joined = Counter(
        "pitchey_coalesced_requests",
        "Application cache misses answered by an identical concurrent miss's load "
        "(request coalescing) instead of a load of their own.",
        registry=app[keys.METRICS].registry,
    ).inc
    # First the simulated network (outermost, so every answer pays it), then the headers.
    app.middlewares.insert(0, edge_headers_middleware(region, config.cache))
    app.middlewares.insert(0, latency_middleware(delay))
    # Open the storage before the service's own startup, which starts probing it at once.
    app.on_startup.insert(0, _open_storage(settings, region))
    app.on_shutdown.append(_begin_shutdown)
    app.on_cleanup.append(_close_storage(cache))
    return app


def _query_cache_observer(app: web.Application) -> Callable[[bool], None]:
    metrics = app[keys.METRICS]
    lookups = metrics.cache_lookups.labels("query")
    hits = metrics.cache_hits.labels("query")

    def observe(hit: bool) -> None:
        lookups.inc()
        if hit:
            hits.inc()

    return observe


def _open_storage(settings: Settings, region: str) -> Callable[[web.Application], Awaitable[None]]:
    async def open_storage(app: web.Application) -> None:
        database = app[SPLIT_DATABASE]
        primary, replica = await _open_handles(settings, app)
        database.bind(primary, replica)
        await database.prepare()
        log.info("region %s: storage %s (replica view: %s)", region, primary.backend,
                 "read-only handle" if replica is not None else "the primary")

    return open_storage


async def _open_handles(settings: Settings, app: web.Application) -> tuple[Database,
                                                                            Database | None]:
    """The primary handle and a read-only replica view of the same database."""
    from pitchey.storage.factory import open_database

    metrics, tracing = app[keys.METRICS], app[keys.TRACING]
    half = max(2, settings.db_pool_size // 2)
    if settings.backend == "postgresql":
        from pitchey.storage.postgres import PostgresDatabase

        assert settings.database_url is not None
        primary: Database = PostgresDatabase(settings.database_url, pool_size=half,
                                             metrics=metrics, tracing=tracing)
        replica = PostgresDatabase(_read_only_dsn(settings.database_url), pool_size=half,
                                   metrics=metrics, tracing=tracing)
        return primary, replica
    path = settings.sqlite_path
    if path == ":memory:" or path.startswith("file::memory:"):
        return await open_database(settings, metrics, tracing=tracing), None
    from pitchey.storage.sqlite import SQLiteDatabase

    primary = SQLiteDatabase(path, readers=1, metrics=metrics, tracing=tracing)
    replica_sqlite = SQLiteDatabase(_read_only_uri(path), readers=2, metrics=metrics,
                                    tracing=tracing)
    return primary, replica_sqlite


def _read_only_dsn(dsn: str) -> str:
    """asyncpg passes unknown DSN query parameters to the server as settings."""
    return dsn + ("&" if "?" in dsn else "?") + "default_transaction_read_only=on"


def _read_only_uri(path: str) -> str:
    if path.startswith("file:"):
        return path + ("&" if "?" in path else "?") + "mode=ro"
    return f"file:{path}?mode=ro"


async def _begin_shutdown(app: web.Application) -> None:
    await app[SPLIT_DATABASE].begin_shutdown()


def _close_storage(cache: RegionalCache) -> Callable[[web.Application], Awaitable[None]]:
    async def close_storage(app: web.Application) -> None:
        await app[SPLIT_DATABASE].close()
        await cache.close()

    return close_storage


def main(argv: list[str] | None = None) -> ExitCode:
    parser = CommandParser(prog="python -m pitchey.geo.worker",
                           description="Run one regional worker of the geo topology.")
    parser.add_argument("--region", required=True)
    parser.add_argument("--regions", default=None, metavar="FILE", help="regions YAML")
    parser.add_argument("--fd", type=int, default=None, help="inherited listening socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--generations", default=None, metavar="FILE",
                        help="the topology's shared generations file")
    args = parser.parse_args(argv)
    from pitchey.geo.config_file import GeoConfigError, load_geo_config
    from pitchey.geo.serving import serve_app
    from pitchey.settings import SettingsError

    logging.basicConfig(level=logging.WARNING, format=f"[{args.region}] %(name)s: %(message)s")
    try:
        config = load_geo_config(args.regions)
        settings = worker_settings(Settings.from_environ(), config, args.region)
        generations = SharedGenerations(args.generations) if args.generations else None
        app = create_worker_app(settings, config, args.region, generations=generations)
    except (GeoConfigError, SettingsError, ValueError, OSError) as exc:
        print(f"pitchey worker {args.region}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    asyncio.run(serve_app(
        app, fd=args.fd, host=args.host, port=args.port,
        banner=lambda url: f"pitchey worker {args.region}: listening on {url} (pid {os.getpid()})",
    ))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
