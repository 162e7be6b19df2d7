"""A regional worker: the platform's own `create_app` with the geo tiers plugged in.

What the region adds to the service: the application cache tier (60 s, invalidated across
regions), the query cache tier (30 s), the read/write split (writes to the primary region's
storage, reads from this region's replica view, writes paying the modelled round trip to the
primary), a heartbeat write in the database health probe, and response headers the edge
reads (which region answered, the worker's pid, the route template).

Run one with `python -m pitchey.geo.worker --region NAME` (the supervisor does).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry

from pitchey import keys
from pitchey.geo.appcache import RegionalCache
from pitchey.geo.edgecache import EDGE_GENERATION, WRITE_METHODS
from pitchey.geo.generations import Generations, LocalGenerations, SharedGenerations
from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import GeoConfig
from pitchey.geo.replica import QueryCache, SplitDatabase
from pitchey.instrumentation import route_template
from pitchey.settings import Settings
from pitchey.storage import Database

__all__ = ["create_worker_app", "worker_settings", "REGION_SERVED_HEADER", "main"]

log = logging.getLogger("pitchey.geo.worker")

REGION_SERVED_HEADER = "X-Pitchey-Served-By"
_PID_HEADER = "X-Pitchey-Worker-Pid"
_ROUTE_HEADER = "X-Pitchey-Route"
SPLIT_DATABASE: web.AppKey[SplitDatabase] = web.AppKey("geo_split_database", SplitDatabase)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def worker_settings(settings: Settings, config: GeoConfig, region: str) -> Settings:
    """The service settings of one region: its name, the application tier's TTL for the
    read-through caches, and X-Forwarded-For trusted (workers sit behind the edge)."""
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
    query_cache = (QueryCache(config.cache.query_ttl_s, config.cache.query_max_entries)
                   if config.cache.query_ttl_s > 0 else None)
    database = SplitDatabase(region=region, primary_region=config.primary_region,
                             latency=latency, generations=generations, query_cache=query_cache)
    cache = RegionalCache(open_cache(settings.redis_url), generations,
                          config.cache.application_ttl_s)
    app = create_app(settings, registry=registry, database=database, cache=cache,
                     probe_interval_s=probe_interval_s or PROBE_INTERVAL_S)
    app[SPLIT_DATABASE] = database
    if query_cache is not None:
        query_cache.observer = _query_cache_observer(app)
    app.middlewares.insert(0, _region_headers(region, config, generations))
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


def _region_headers(region: str, config: GeoConfig, generations: Generations) -> Middleware:
    pid = str(os.getpid())
    invalidate_on = config.cache.edge_invalidate_on
    edge_tier = config.cache.edge_ttl_s > 0

    @web.middleware
    async def region_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers[REGION_SERVED_HEADER] = region
        headers[_PID_HEADER] = pid
        headers[_ROUTE_HEADER] = route_template(request)
        if (edge_tier and request.method in WRITE_METHODS
                and not 400 <= response.status < 500 and request.path.startswith(invalidate_on)):
            generations.bump((EDGE_GENERATION,))  # a write straight to a worker counts too
        return response

    return region_headers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pitchey.geo.worker",
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
        return 2
    asyncio.run(serve_app(
        app, fd=args.fd, host=args.host, port=args.port,
        banner=lambda url: f"pitchey worker {args.region}: listening on {url} (pid {os.getpid()})",
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
