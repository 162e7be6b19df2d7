"""Placing users by region weight, with each region's own class mix."""

from __future__ import annotations

from collections import Counter

from loadtests.weighting import SmoothPicker, worker_weights


def test_picks_follow_the_weights_and_spread_evenly() -> None:
    picker = SmoothPicker({"us-east": 30, "us-west": 25, "europe": 25, "asia": 20})
    picks = [picker.pick() for _ in range(100)]
    assert Counter(picks) == {"us-east": 30, "us-west": 25, "europe": 25, "asia": 20}
    for n in range(1, 101):  # every prefix stays within one pick of its share
        counts = Counter(picks[:n])
        for name, weight in (("us-east", 30), ("asia", 20)):
            assert abs(counts[name] - n * weight / 100) <= 1


def test_zero_weights_never_get_picked() -> None:
    picker = SmoothPicker({"creator": 0, "browser": 2})
    assert {picker.pick() for _ in range(10)} == {"browser"}
    assert SmoothPicker({"creator": 0}).pick() is None


def test_a_region_weight_is_shared_among_its_workers() -> None:
    weights = worker_weights(
        {"a": "us-east", "b": "us-east", "c": "asia", "d": None},
        {"us-east": 30, "asia": 20},
    )
    assert weights["a"] == weights["b"] == 15
    assert weights["c"] == 20
    assert weights["d"] == (15 + 15 + 20) / 3  # unknown region: average weight
