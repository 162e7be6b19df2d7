"""The HAProxy edge's configuration, generated from the regions file (pure: text in, text out).

Each rule of "Pitchey Platform - Auto-Scaling & Load Balancing Architecture" becomes the
HAProxy directive that implements it (docs/geo.md has the table): one backend per region whose
own worker is the active server and whose other regions follow as backup servers in order of
distance (geo-proximity with fallback), active health checks, passive outlier ejection as the
circuit breaker, retries only where the request cannot have been processed, priority queueing
with a 503 + Retry-After when a region's queue is full, per-client rate limiting in a stick
table, HAProxy's cache as the edge tier, and the Prometheus exporter on /metrics.
`haproxy -c` checks the result before anything starts (`pitchey.geo.supervisor`).

Every name and path written here was validated by `config_file` (plain tokens only), so the
regions file cannot inject directives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import GeoConfig, PriorityClass, Region

__all__ = [
    "EdgeLayout",
    "render_haproxy_config",
    "AGENT_BACKEND",
    "REGIONS_BACKEND",
    "BACKUP_PREFIX",
    "OBSERVABILITY_PATHS",
    "REGION_HEADER",
    "EDGE_CACHE_HEADER",
]

AGENT_BACKEND = "pitchey-edge"
REGIONS_BACKEND = "regions"  # weighted and least_connections balance over one backend
BACKUP_PREFIX = "via-"  # a region's fallback servers: "via-us-west" in backend "asia"
REGION_HEADER = "X-Pitchey-Region"
EDGE_CACHE_HEADER = "X-Pitchey-Edge-Cache"
# Never rate limited (README: observability endpoints are never limited) and never cached.
OBSERVABILITY_PATHS = ("/health", "/health/db", "/health/services", "/api/health", "/metrics",
                       "/status", "/config", "/openapi.json")
_HEALTH_HOST = "pitchey-edge"
# The Lua action that removes headers a request names in Connection (hop-by-hop).
CONNECTION_HEADERS_LUA = Path(__file__).with_name("connection_headers.lua")
# HAProxy's own answers (HTTP codes it can generate) in the service's JSON error format.
_OWN_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("bad_request", "the request is malformed"),
    403: ("forbidden", "not allowed from this address"),
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "method not allowed"),
    408: ("request_timeout", "the request was not received in time"),
    413: ("payload_too_large", "the request body is too large"),
    500: ("internal_error", "the edge failed to handle the request"),
    501: ("not_implemented", "not supported by the edge"),
    502: ("bad_gateway", "the region answered with an invalid response"),
    503: ("overloaded", "no region can take this request now; retry later"),
    504: ("gateway_timeout", "the region did not answer in time"),
}


@dataclass(frozen=True)
class EdgeLayout:
    """Where everything is: the edge's bind (`fd@N` for a socket the supervisor bound, or
    `HOST:PORT`), each region's worker address, the status agent and the runtime API."""

    bind: str
    workers: Mapping[str, tuple[str, int]]
    agent: tuple[str, int]
    runtime_socket: str
    rate_limit_per_minute: int = 100
    max_body_bytes: int = 65536
    retry_after_s: int = 1
    # HAProxy needs about two file descriptors per connection: the supervisor lowers
    # edge.max_connections to what the process's descriptor limit allows
    max_connections: int | None = None


def _seconds(value: float) -> str:
    """HAProxy time: whole milliseconds, never 0 (0 would mean "no timeout")."""
    return f"{max(1, round(value * 1000))}ms"


def _error_body(status: int, code: str, message: str) -> str:
    return json.dumps({"error": {"status": status, "code": code, "message": message}},
                      separators=(",", ":"))


def _quoted(text: str) -> str:
    if "'" in text:  # single-quoted HAProxy strings have no escapes
        raise ValueError(f"cannot quote {text!r}")
    return f"'{text}'"


def render_haproxy_config(config: GeoConfig, layout: EdgeLayout) -> str:
    """The complete haproxy.cfg for `config` laid out as `layout`."""
    missing = [name for name in config.names if name not in layout.workers]
    if missing:
        raise ValueError(f"no worker address for region(s) {', '.join(missing)}")
    sections = [_global(config, layout), _defaults(config, layout), _cache(config),
                _tables(config, layout), _frontend(config, layout), _agent_backend(layout)]
    if config.routing == "geo":
        latency = LatencyModel(config.latency)
        for region in config.regions:
            fallbacks = [n for n in latency.nearest(region.name, config.names)
                         if n != region.name]
            sections.append(_region_backend(config, layout, region, fallbacks))
    else:
        sections.append(_balanced_backend(config, layout))
    header = [f"# Generated by pitchey.geo.haproxy_config from {config.source}: do not edit,",
              "# change the regions file instead (docs/geo.md explains each directive)."]
    return "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n"


def _lines(head: str, body: Iterable[str]) -> str:
    return "\n".join([head, *(f"    {line}" for line in body)])


def _max_connections(config: GeoConfig, layout: EdgeLayout) -> int:
    if layout.max_connections is None:
        return config.edge.max_connections
    return max(1, min(config.edge.max_connections, layout.max_connections))


def _global(config: GeoConfig, layout: EdgeLayout) -> str:
    return _lines("global", [
        f"maxconn {_max_connections(config, layout)}",
        f"nbthread {config.edge.threads}",
        f"stats socket {layout.runtime_socket} mode 600 level admin",
        "stats timeout 30s",
        f"lua-load {CONNECTION_HEADERS_LUA}",
        # state changes (a region down, a breaker open) are logged; single requests are not
        "log stderr format short local0 notice",
        "hard-stop-after 10s",
    ])


def _defaults(config: GeoConfig, layout: EdgeLayout) -> str:
    timeouts = config.timeouts
    body = [
        "mode http",
        "log global",
        "option dontlognull",
        # per-request lines would be filtered out at the notice level anyway: not building
        # them for successful requests saves the edge CPU on every request
        "option dontlog-normal",
        # the client's address as the edge saw it, appended after anything the client sent:
        # workers trust only the right-most entry
        "option forwardfor",
        f"timeout connect {_seconds(timeouts.connect_s)}",
        f"timeout client {_seconds(timeouts.client_s)}",
        f"timeout server {_seconds(timeouts.server_s)}",
        f"timeout http-request {_seconds(timeouts.http_request_s)}",
        f"timeout http-keep-alive {_seconds(timeouts.keep_alive_s)}",
        f"timeout queue {_seconds(timeouts.queue_s)}",
        f"timeout check {_seconds(config.health.timeout_s)}",
        # a connection that failed never delivered the request: safe to retry for any
        # method, on another region from the first retry on; an empty response only for
        # safe methods and keyed writes (the frontend's disable-l7-retry)
        f"retries {config.edge.retries}",
        "option redispatch 1",
        "retry-on conn-failure empty-response",
    ]
    for status, (code, message) in _OWN_ERRORS.items():
        extra = f" hdr Retry-After {layout.retry_after_s}" if status == 503 else ""
        body.append(f"http-error status {status} content-type application/json string "
                    f"{_quoted(_error_body(status, code, message))}{extra}"
                    " hdr X-Content-Type-Options nosniff hdr Cache-Control no-store")
    return _lines("defaults", body)


def _cache(config: GeoConfig) -> str:
    size = config.cache.edge_size_mb
    return _lines("cache edge", [
        f"total-max-size {size}",
        f"max-object-size {min(1024 * 1024, size * 1024 * 1024 // 2)}",
        f"max-age {max(1, int(config.cache.edge_ttl_s))}",
        # Vary on Origin is folded into the key by the frontend (HAProxy 2.6's process-vary
        # knows only Accept-Encoding and Referer); any other Vary is never stored
        "process-vary off",
    ])


def _tables(config: GeoConfig, layout: EdgeLayout) -> str:
    # Backends that only hold stick tables: request rate per client address, and the edge
    # cache's generation (bumped by every write that may change what it serves).
    return "\n\n".join([
        _lines("backend rate_limits", [
            "stick-table type ipv6 size 1m expire 2m store http_req_rate(60s)"]),
        _lines("backend edge_generation", ["stick-table type integer size 1 store gpc0"]),
    ])


def _frontend(config: GeoConfig, layout: EdgeLayout) -> str:
    body = [
        f"bind {layout.bind}",
        f"maxconn {_max_connections(config, layout)}",
        # malformed requests: an HTTP/1 connection speaking another version (a real HTTP/2
        # connection is fc_http_major 2), and one Host header exactly (HTTP/1.0 may omit it)
        "http-request deny deny_status 400 if { fc_http_major 1 } !{ req.ver 1.0 1.1 }",
        "http-request deny deny_status 400 if { req.hdr_cnt(host) gt 1 }",
        "http-request deny deny_status 400 if HTTP_1.1 !{ req.hdr(host) -m found }",
        f"http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt "
        f"{layout.max_body_bytes} }}",
        # the workers' fault injection is never reachable through the edge; the edge's own
        # operations are for loopback clients only
        "http-request deny deny_status 404 if { path_beg /_geo/ }",
        "http-request deny deny_status 403 if { path_beg /_edge/regions/ } "
        "!{ src 127.0.0.0/8 ::1 }",
        # hop-by-hop headers a client names in Connection never reach a worker (only
        # requests that name something besides close/keep-alive pay for the Lua action)
        "http-request lua.strip_connection_headers if "
        "{ req.hdr(connection) -m reg -i ^(?!(keep-alive|close)$) }",
        # an empty response may come after the worker processed the request: only safe
        # methods, and writes carrying an Idempotency-Key (the database holds the key, so
        # the next region replays or finishes the first attempt instead of repeating it),
        # are retried for it; any write is retried when its connection failed (never
        # sent), which disable-l7-retry leaves alone
        "http-request disable-l7-retry if !METH_GET !METH_HEAD !METH_OPTIONS "
        "!{ req.hdr(idempotency-key) -m found }",
        "http-request use-service prometheus-exporter if { path /metrics }",
        f"acl observability path {' '.join(OBSERVABILITY_PATHS)}",
        "acl observability path_beg /_edge/",
        *_rate_limit(layout),
        *_priorities(config.priorities.classes, config.priorities.default_class),
        *_edge_cache(config),
        f"use_backend {AGENT_BACKEND} if {{ path /status }} or {{ path_beg /_edge/ }}",
        *_routing(config),
    ]
    return _lines("frontend edge", body)


def _rate_limit(layout: EdgeLayout) -> list[str]:
    if layout.rate_limit_per_minute <= 0:
        return []
    limit = layout.rate_limit_per_minute
    body = _error_body(429, "rate_limited", f"more than {limit} requests per minute from this "
                       "client")
    # keyed by the connection's source address: a client-sent X-Forwarded-For changes nothing
    return [
        "http-request track-sc0 src table rate_limits if !observability",
        f"http-request deny deny_status 429 content-type application/json string "
        f"{_quoted(body)} hdr Retry-After 60 hdr Cache-Control no-store "
        f"if !observability {{ sc_http_req_rate(0) gt {limit} }}",
    ]


def _priorities(classes: tuple[PriorityClass, ...], default_class: str) -> list[str]:
    """Queue order under overload: HAProxy serves the lowest class first, so class
    = 10 - priority. Longer prefixes are set last so that they win (/api/auth/ over /api/);
    writes rank with the highest class except in classes below the default (analytics)."""
    by_name = {klass.name: klass for klass in classes}
    default = by_name.get(default_class)
    lines = []
    if default is not None:
        lines.append(f"http-request set-priority-class int({10 - default.priority})")
    ordered = sorted((k for k in classes if k.paths), key=lambda k: max(map(len, k.paths)))
    for klass in ordered:
        lines.append(f"http-request set-priority-class int({10 - klass.priority}) "
                     f"if {{ path_beg {' '.join(klass.paths)} }}")
    top = max((k.priority for k in classes), default=10)
    low = [p for k in classes if default is not None and k.priority < default.priority
           for p in k.paths]
    unless_low = f" !{{ path_beg {' '.join(low)} }}" if low else ""
    lines.append(f"http-request set-priority-class int({10 - top}) "
                 f"if !METH_GET !METH_HEAD !METH_OPTIONS{unless_low}")
    return lines


def _edge_cache(config: GeoConfig) -> list[str]:
    cache = config.cache
    if cache.edge_ttl_s <= 0 or not cache.edge_paths:
        return [f"http-response set-header {EDGE_CACHE_HEADER} BYPASS"]
    cond = "{ var(txn.edge_cache) -m str MISS }"
    # origin-form requests only: for an absolute URI (HTTP/2, or a proxy-style request line)
    # HAProxy rewrites the URI from Host, and the Host trick below would mangle its path
    cacheable = "METH_GET edge_cacheable !has_authorization !observability " \
        "{ req.hdr(host) -m found } { url_beg / }"
    lines = [
        f"acl edge_cacheable path_beg {' '.join(cache.edge_paths)}",
        f"acl edge_invalidates path_beg {' '.join(cache.edge_invalidate_on)}",
        # credentials in any form (any Cookie, Authorization) never use or fill the cache
        "acl has_authorization req.hdr(authorization) -m found",
        "acl has_cookie req.hdr(cookie) -m found",
        "http-request set-var(txn.edge_cache) str(BYPASS)",
        f"http-request set-var(txn.edge_cache) str(MISS) if {cacheable} !has_cookie",
    ]
    if config.routing == "weighted":  # the affinity cookie alone is no credential
        lines += [
            f"acl only_affinity req.fhdr(cookie) -m reg ^\\s*{config.affinity_cookie}="
            "[A-Za-z0-9._-]*\\s*$",
            f"http-request set-var(txn.edge_cache) str(MISS) if {cacheable} "
            "{ req.hdr_cnt(cookie) eq 1 } only_affinity",
        ]
    return lines + [
        "http-request set-var(txn.invalidates) bool(true) if !METH_GET !METH_HEAD "
        "!METH_OPTIONS edge_invalidates",
        # The cache key is computed at cache-use from the Host header among others; folding
        # the generation into it for that one step makes every entry older than the last
        # write unreachable, without a purge. HAProxy 2.6 cannot vary on Origin itself, so
        # Origin goes into the key the same way (one entry per Origin: CORS headers differ).
        f"http-request track-sc1 int(1) table edge_generation if {cond} "
        "or { var(txn.invalidates) -m bool }",
        f"http-request set-var(txn.host) req.hdr(host) if {cond}",
        f"http-request set-header Host %[var(txn.host)]/g%[sc1_get_gpc0]/o%[req.fhdr(origin)] "
        f"if {cond}",
        f"http-request cache-use edge if {cond}",
        f"http-request set-header Host %[var(txn.host)] if {cond}",
        "http-response set-var(txn.edge_cache) str(HIT) if { res.cache_hit }",
        # Vary: Origin is handled by the key above; any other Vary keeps an answer out
        f"http-response set-var(txn.vary_origin) bool(true) if {cond} "
        "{ res.fhdr(vary) -m str -i origin }",
        "http-response del-header Vary if { var(txn.vary_origin) -m bool }",
        f"http-response cache-store edge if {cond} !{{ res.hdr(set-cookie) -m found }}",
        "http-response set-header Vary Origin if { var(txn.vary_origin) -m bool } "
        "or { var(txn.edge_cache) -m str HIT }",
        # a write that did not fail validation may have changed what the tier serves (a 5xx
        # from the worker may still have committed; an answer HAProxy makes itself, a 504
        # say, runs no http-response rule: the TTL bounds that case)
        "http-response sc-inc-gpc0(1) if { var(txn.invalidates) -m bool } "
        "!{ status 400:499 }",
        f"http-response set-header {EDGE_CACHE_HEADER} %[var(txn.edge_cache)] "
        "if { var(txn.edge_cache) -m found }",
    ]


def _routing(config: GeoConfig) -> list[str]:
    if config.routing != "geo":
        return [f"default_backend {REGIONS_BACKEND}"]
    lines = []
    for region in config.regions:
        names = " ".join(sorted({region.name.lower(), *(c.lower() for c in region.colos)}))
        lines.append(f"acl from_{region.name} req.hdr({REGION_HEADER}),lower -m str {names}")
    lines += [f"use_backend {r.name} if from_{r.name}" for r in config.regions]
    lines.append(f"default_backend {config.default_region}")
    return lines


def _agent_backend(layout: EdgeLayout) -> str:
    host, port = layout.agent
    return _lines(f"backend {AGENT_BACKEND}", [
        "option forwardfor",
        f"server agent {host}:{port}",
    ])


def _health_check(config: GeoConfig) -> list[str]:
    return [
        "option httpchk",
        f"http-check send meth GET uri {config.health.endpoints[0]} ver HTTP/1.1 "
        f"hdr Host {_HEALTH_HOST}",
        "http-check expect status 200",
    ]


def _server_options(config: GeoConfig, region: Region) -> str:
    health, breaker = config.health, config.breaker
    return " ".join([
        f"check inter {_seconds(health.interval_s)}",
        f"fastinter {_seconds(min(health.interval_s, health.timeout_s))}",
        f"downinter {_seconds(breaker.sleep_window_s / breaker.success_threshold)}",
        f"fall {max(1, health.retries)} rise {breaker.success_threshold}",
        f"observe layer7 error-limit {breaker.consecutive_errors} on-error mark-down",
        f"maxconn {region.max_in_flight} maxqueue {config.edge.max_queue}",
        f"weight {region.weight}",
    ])


def _address(layout: EdgeLayout, name: str) -> str:
    host, port = layout.workers[name]
    return f"{host}:{port}"


def _queue_limit(config: GeoConfig) -> str:
    """Requests not pinned to a server wait in the backend's queue, which HAProxy leaves
    unbounded (server `maxqueue` only bounds pinned ones): past `edge.max_queue` the region
    answers 503 with Retry-After (the defaults' JSON error) at once."""
    return f"http-request deny deny_status 503 if {{ queue() ge {config.edge.max_queue} }}"


def _region_backend(config: GeoConfig, layout: EdgeLayout, region: Region,
                    fallbacks: list[str]) -> str:
    body = [_queue_limit(config), *_health_check(config),
            f"server {region.name} {_address(layout, region.name)} "
            f"{_server_options(config, region)}"]
    # Backups are used in the order written, only while the region's own worker is down;
    # they track the other regions' checks instead of probing them again.
    for name in fallbacks:
        other = config.region(name)
        body.append(f"server {BACKUP_PREFIX}{name} {_address(layout, name)} backup "
                    f"track {name}/{name} maxconn {other.max_in_flight} "
                    f"maxqueue {config.edge.max_queue}")
    return _lines(f"backend {region.name}", body)


def _balanced_backend(config: GeoConfig, layout: EdgeLayout) -> str:
    weighted = config.routing == "weighted"
    body = [f"balance {'roundrobin' if weighted else 'leastconn'}", _queue_limit(config),
            *_health_check(config)]
    if weighted:  # session affinity (docs/geo.md): a client stays on the region it was given
        body.append(f"cookie {config.affinity_cookie} insert indirect nocache httponly")
    for region in config.regions:
        cookie = f" cookie {region.name}" if weighted else ""
        body.append(f"server {region.name} {_address(layout, region.name)} "
                    f"{_server_options(config, region)}{cookie}")
    return _lines(f"backend {REGIONS_BACKEND}", body)
