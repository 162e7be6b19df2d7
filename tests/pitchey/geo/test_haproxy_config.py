"""The generated HAProxy configuration: accepted by the real `haproxy -c` for every routing
mode, and each Auto-Scaling document rule present as the directive that implements it."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pitchey.geo.config_file import parse_geo_config
from pitchey.geo.haproxy_config import EdgeLayout, render_haproxy_config
from pitchey.geo.regions import GeoConfig

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed "
                                   "(make sysdeps)")


def layout(tmp: Path, **changes: object) -> EdgeLayout:
    base = EdgeLayout(bind="127.0.0.1:18001",
                      workers={"us-east": ("127.0.0.1", 9001), "us-west": ("127.0.0.1", 9002),
                               "europe": ("127.0.0.1", 9003), "asia": ("127.0.0.1", 9004)},
                      agent=("127.0.0.1", 9000), runtime_socket=str(tmp / "haproxy.sock"),
                      max_connections=5000)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def section(text: str, head: str) -> list[str]:
    """The directives of one section, stripped."""
    lines = text.splitlines()
    start = lines.index(head)
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return body


@needs_haproxy
@pytest.mark.parametrize("routing", ["geo", "weighted", "least_connections"])
def test_haproxy_accepts_the_generated_configuration(tmp_path: Path, routing: str) -> None:
    config = dataclasses.replace(GeoConfig(), routing=routing)
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_haproxy_config(config, layout(tmp_path)))
    assert HAPROXY is not None
    result = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_geo_backends_fall_back_to_the_nearest_regions_in_order(tmp_path: Path) -> None:
    text = render_haproxy_config(GeoConfig(), layout(tmp_path))
    asia = section(text, "backend asia")
    servers = [line.split()[1] for line in asia if line.startswith("server ")]
    assert servers == ["asia", "via-us-west", "via-us-east", "via-europe"]
    own = next(line for line in asia if line.startswith("server asia "))
    # Auto-Scaling document: health every 30 s, timeout 5 s, 3 retries; breaker 50% of 20, 30 s, 5
    for directive in ("check inter 30000ms", "fastinter 5000ms", "downinter 6000ms",
                      "fall 3 rise 5", "observe layer7 error-limit 10 on-error mark-down",
                      "maxconn 200", "weight 20"):
        assert directive in own, (directive, own)
    assert all(" backup track " in line for line in asia if line.startswith("server via-"))
    frontend = section(text, "frontend edge")
    assert "acl from_asia req.hdr(X-Pitchey-Region),lower -m str asia hkg nrt sin syd" in \
        frontend
    assert frontend[-1] == "default_backend us-east"


def test_retries_never_replay_a_request_that_may_have_been_processed(tmp_path: Path) -> None:
    text = render_haproxy_config(GeoConfig(), layout(tmp_path))
    defaults = section(text, "defaults")
    # conn-failure: the request never left; empty-response: the worker may have processed
    # it, so only safe methods and writes carrying an Idempotency-Key (the shared database
    # answers a repeat with the first outcome; HAProxy itself would retry any POST); nothing
    # for a timeout or an error status
    assert "retry-on conn-failure empty-response" in defaults
    assert "http-request disable-l7-retry if !METH_GET !METH_HEAD !METH_OPTIONS " \
        "!{ req.hdr(idempotency-key) -m found }" in section(text, "frontend edge")
    assert "option redispatch 1" in defaults
    assert "timeout http-request 10000ms" in defaults


def test_rate_limit_is_keyed_by_the_connection_not_a_header(tmp_path: Path) -> None:
    text = render_haproxy_config(GeoConfig(), layout(tmp_path, rate_limit_per_minute=100))
    frontend = section(text, "frontend edge")
    assert "http-request track-sc0 src table rate_limits if !observability" in frontend
    limit = next(line for line in frontend if "deny_status 429" in line)
    assert "sc_http_req_rate(0) gt 100" in limit and "hdr Retry-After 60" in limit
    off = render_haproxy_config(GeoConfig(), layout(tmp_path, rate_limit_per_minute=0))
    assert "track-sc0" not in off and "429" not in section(off, "frontend edge")[0]


def test_logins_and_writes_queue_ahead_of_browsing_and_analytics_last(tmp_path: Path) -> None:
    frontend = section(render_haproxy_config(GeoConfig(), layout(tmp_path)), "frontend edge")
    classes = [line for line in frontend if "set-priority-class" in line]
    assert classes[0] == "http-request set-priority-class int(2)"  # api: 10 - 8
    assert "http-request set-priority-class int(0) if { path_beg /api/auth/ }" in classes
    assert "http-request set-priority-class int(8) if { path_beg /api/analytics/ }" in classes
    # writes rank with logins, except in the classes below the default (analytics events)
    assert classes[-1].startswith("http-request set-priority-class int(0) if !METH_GET "
                                  "!METH_HEAD !METH_OPTIONS !{ path_beg ")
    assert "/api/analytics/" in classes[-1] and "/api/auth/" not in classes[-1]


def test_edge_cache_never_serves_requests_with_credentials(tmp_path: Path) -> None:
    frontend = section(render_haproxy_config(GeoConfig(), layout(tmp_path)), "frontend edge")
    miss = next(line for line in frontend if "str(MISS)" in line)
    assert "!has_authorization" in miss and "!has_cookie" in miss and "METH_GET" in miss
    assert "{ url_beg / }" in miss  # an absolute URI would be rewritten from the Host trick
    assert "acl has_cookie req.hdr(cookie) -m found" in frontend
    assert "acl has_authorization req.hdr(authorization) -m found" in frontend
    # only with weighted routing is a Cookie made of the affinity cookie alone no credential
    assert "only_affinity" not in "\n".join(frontend)
    store = next(line for line in frontend if "cache-store" in line)
    assert "!{ res.hdr(set-cookie) -m found }" in store
    off = render_haproxy_config(dataclasses.replace(GeoConfig(), cache=dataclasses.replace(
        GeoConfig().cache, edge_ttl_s=0)), layout(tmp_path))
    assert "cache-use" not in off


def test_weighted_routing_keeps_a_client_on_its_region_with_a_cookie(tmp_path: Path) -> None:
    config = parse_geo_config("routing: weighted\n")
    text = render_haproxy_config(config, layout(tmp_path))
    backend = section(text, "backend regions")
    assert backend[0] == "balance roundrobin"
    assert "cookie pitchey_region insert indirect nocache httponly" in backend
    assert re.search(r"^server europe 127\.0\.0\.1:9003 .*weight 25 cookie europe$",
                     "\n".join(backend), re.MULTILINE)
    least = render_haproxy_config(parse_geo_config("routing: least_connections\n"),
                                  layout(tmp_path))
    assert section(least, "backend regions")[0] == "balance leastconn"


def test_the_descriptor_limit_lowers_max_connections(tmp_path: Path) -> None:
    text = render_haproxy_config(GeoConfig(), layout(tmp_path, max_connections=9000))
    assert "maxconn 9000" in section(text, "global")
    text = render_haproxy_config(GeoConfig(), layout(tmp_path, max_connections=None))
    assert "maxconn 100000" in section(text, "global")


def test_a_full_region_queue_answers_503_with_retry_after_in_json(tmp_path: Path) -> None:
    text = render_haproxy_config(GeoConfig(), layout(tmp_path, retry_after_s=2))
    overloaded = next(line for line in section(text, "defaults")
                      if line.startswith("http-error status 503 "))
    assert "content-type application/json" in overloaded and "hdr Retry-After 2" in overloaded
    assert '"code":"overloaded"' in overloaded
    own = next(line for line in section(text, "backend europe")
               if line.startswith("server europe "))
    assert "maxconn 250 maxqueue 1000" in own  # capacity / 100 at once, then the queue
    # the backend queue itself has no bound in HAProxy: the region refuses past max_queue
    assert section(text, "backend europe")[0] == \
        "http-request deny deny_status 503 if { queue() ge 1000 }"
    assert "timeout queue 5000ms" in section(text, "defaults")
