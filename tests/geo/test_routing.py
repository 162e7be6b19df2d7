"""Routing strategies over the seed's regions and latency table."""

from __future__ import annotations

from collections import Counter

from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import GeoConfig
from pitchey.geo.routing import Candidate, Health, Router

CONFIG = GeoConfig()
WEIGHTS = {r.name: r.weight for r in CONFIG.regions}


def candidates(**overrides: tuple[Health, bool, int]) -> list[Candidate]:
    result = []
    for name, weight in WEIGHTS.items():
        health, allows, in_flight = overrides.get(name.replace("-", "_"), (Health.UP, True, 0))
        result.append(Candidate(name, weight, in_flight, health, allows))
    return result


def router(strategy: str) -> Router:
    return Router(strategy, LatencyModel(CONFIG.latency), CONFIG.default_region)


def test_geo_sends_a_client_to_its_own_region_then_the_nearest() -> None:
    assert router("geo").order(candidates(), "asia") == ["asia", "us-west", "us-east", "europe"]
    assert router("geo").order(candidates(), "europe")[0] == "europe"


def test_geo_falls_back_to_the_nearest_healthy_region() -> None:
    down = candidates(asia=(Health.DOWN, True, 0))
    assert router("geo").order(down, "asia") == ["us-west", "us-east", "europe"]
    open_breaker = candidates(asia=(Health.UP, False, 0), us_west=(Health.DOWN, True, 0))
    assert router("geo").order(open_breaker, "asia")[0] == "us-east"


def test_a_degraded_region_is_used_only_when_no_healthy_one_is_left() -> None:
    degraded = candidates(europe=(Health.DEGRADED, True, 0))
    assert router("geo").order(degraded, "europe") == ["us-east", "us-west", "asia", "europe"]
    all_degraded = candidates(**{n.replace("-", "_"): (Health.DEGRADED, True, 0)
                                 for n in WEIGHTS})
    assert router("geo").order(all_degraded, "europe")[0] == "europe"


def test_unknown_client_region_starts_at_the_default_region() -> None:
    assert router("geo").order(candidates(), None)[0] == CONFIG.default_region


def test_no_eligible_region_means_no_order() -> None:
    none = candidates(**{n.replace("-", "_"): (Health.DOWN, True, 0) for n in WEIGHTS})
    assert router("geo").order(none, "asia") == []


def test_weighted_round_robin_follows_the_weights() -> None:
    picks = Counter(router_pick for router_pick in _weighted_picks(100))
    assert picks == {"us-east": 30, "us-west": 25, "europe": 25, "asia": 20}


def _weighted_picks(count: int) -> list[str]:
    weighted = router("weighted")
    return [weighted.order(candidates(), None)[0] for _ in range(count)]


def test_weighted_keeps_session_affinity_while_the_region_is_healthy() -> None:
    weighted = router("weighted")
    assert all(weighted.order(candidates(), None, "europe")[0] == "europe" for _ in range(10))
    down = candidates(europe=(Health.DOWN, True, 0))
    assert weighted.order(down, None, "europe")[0] != "europe"


def test_least_connections_picks_the_fewest_in_flight_per_weight() -> None:
    busy = candidates(us_east=(Health.UP, True, 30), us_west=(Health.UP, True, 5),
                      europe=(Health.UP, True, 10), asia=(Health.UP, True, 8))
    assert router("least_connections").order(busy, "europe")[0] == "us-west"
