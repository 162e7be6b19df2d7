"""The regions config: the Auto-Scaling document's defaults, the shipped YAML, and errors that
name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pitchey.geo.config_file import (
    DEFAULT_REGIONS_FILE,
    GeoConfigError,
    load_geo_config,
    parse_geo_config,
)
from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import GeoConfig, default_geo_config


def test_shipped_file_holds_exactly_the_defaults() -> None:
    shipped = load_geo_config(DEFAULT_REGIONS_FILE)
    assert dataclasses.replace(shipped, source="<defaults>") == default_geo_config()


def test_defaults_are_seed_003() -> None:
    config = default_geo_config()
    assert config.names == ("us-east", "us-west", "europe", "asia")
    assert [r.weight for r in config.regions] == [30, 25, 25, 20]
    assert [r.capacity for r in config.regions] == [30_000, 25_000, 25_000, 20_000]
    assert config.region("europe").colos == ("LHR", "CDG", "FRA", "AMS")
    assert (config.health.interval_s, config.health.timeout_s, config.health.retries) == (30, 5, 3)
    breaker = config.breaker
    assert (breaker.error_threshold_pct, breaker.volume_threshold, breaker.sleep_window_s,
            breaker.success_threshold) == (50, 20, 30, 5)
    cache = config.cache
    assert (cache.edge_ttl_s, cache.application_ttl_s, cache.query_ttl_s) == (300, 60, 30)
    assert (config.timeouts.server_s, config.timeouts.http_request_s) == (30, 10)
    assert config.breaker.consecutive_errors == 10
    assert config.coalescing.window_ms == 100
    assert [(c.name, c.priority) for c in config.priorities.classes] == [
        ("authentication", 10), ("api", 8), ("websocket", 7), ("static", 5), ("analytics", 2)]


def test_default_latency_matrix_round_trips_match_the_seed_and_geography() -> None:
    config = default_geo_config()
    model = LatencyModel(config.latency)
    for region in config.regions:  # a client's round trip to its own region is the seed figure
        assert model.round_trip_s(region.name, region.name) == pytest.approx(
            region.latency_ms / 1000.0)
    assert model.nearest("asia", ["us-east", "europe", "us-west"])[0] == "us-west"
    assert model.nearest("europe", ["us-west", "asia", "us-east"])[0] == "us-east"
    for a in config.names:
        for b in config.names:
            assert model.one_way_s(a, b) == model.one_way_s(b, a)


def test_a_partial_file_overrides_only_what_it_names() -> None:
    config = parse_geo_config("health: {interval_s: 0.2}\nrouting: weighted\n", "r.yaml")
    assert config.health.interval_s == 0.2
    assert config.health.timeout_s == GeoConfig().health.timeout_s
    assert config.routing == "weighted"
    assert config.names == GeoConfig().names


def test_a_smaller_topology_and_latency_overrides() -> None:
    text = """
regions:
  us-east: {}
  mars: {weight: 5, capacity: 1000, latency_ms: 400, colos: [MRS]}
primary_region: us-east
latency:
  enabled: false
  one_way_ms: {us-east: {mars: 600}}
"""
    config = parse_geo_config(text, "small.yaml")
    assert config.names == ("us-east", "mars")
    assert config.region("us-east").weight == 30  # the seed's values for a known region
    assert config.region("mars").max_in_flight == 10
    assert config.latency.enabled is False
    assert config.latency.one_way_ms[("mars", "us-east")] == 600


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("routing: fastest\n", "bad.yaml:1: routing: 'fastest' is not one of"),
        ("regions:\n  us-east:\n    wieght: 3\n",
         "bad.yaml:3: regions.us-east.wieght: unknown key"),
        ("health:\n  interval_s: -1\n", "bad.yaml:2: health.interval_s: must be > 0"),
        ("health:\n  retries: two\n", "bad.yaml:2: health.retries: must be a whole number"),
        ("regions:\n  mars: {weight: 1}\n", "bad.yaml:2: regions.mars.capacity: is required"),
        ("breaker: [1, 2]\n", "bad.yaml:1: breaker: must be a mapping"),
        ("breaker:\n  error_threshold_pct: 150\n",
         "bad.yaml:2: breaker.error_threshold_pct: must be at most 100"),
        ("timeouts: {min_s: 10}\n", "bad.yaml:1: timeouts.min_s: unknown key"),
        ("regions:\n  'us east': {weight: 1, capacity: 100, latency_ms: 10}\n",
         "bad.yaml:2: regions.us east: 'us east' is not a plain"),
        ("cache: {edge_paths: ['/api x']}\n", "bad.yaml:1: cache.edge_paths: '/api x' must"),
        ("health: {endpoints: ['/h\\n  server x']}\n", "bad.yaml:1: health.endpoints:"),
        ("primary_region: mars\n", "bad.yaml:1: primary_region: 'mars' is not one of"),
        ("latency:\n  one_way_ms:\n    europe: {atlantis: 3}\n",
         "bad.yaml:3: latency.one_way_ms.europe.atlantis: unknown region"),
        ("priorities:\n  classes:\n    auth: {priority: 11}\n",
         "bad.yaml:3: priorities.classes.auth.priority: must be between 1 and 10"),
        ("coalescing:\n  enabled: maybe\n",
         "bad.yaml:2: coalescing.enabled: must be true or false"),
        ("health: {}\nhealth: {}\n", "bad.yaml:2: health: appears twice"),
        ("colour: blue\n", "bad.yaml:1: colour: unknown key"),
        ("regions: [\n", "bad.yaml:2: (document): not valid YAML"),
    ],
)
def test_errors_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(GeoConfigError) as caught:
        parse_geo_config(text, "bad.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GeoConfigError, match=r"missing\.yaml: \(file\): cannot read"):
        load_geo_config(tmp_path / "missing.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert dataclasses.replace(load_geo_config(path), source="<defaults>") == GeoConfig()
