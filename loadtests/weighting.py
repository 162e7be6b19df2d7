"""Deterministic weighted picking (smooth weighted round-robin, as nginx balances upstreams).

Used by the master to place users: first a worker, weighted by its region's share divided
among that region's workers, then a user class, weighted by the scenario's mix, per worker,
so every region gets the same mix of portals. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SmoothPicker", "worker_weights"]


class SmoothPicker:
    """Picks names in proportion to their weights, spreading repeats evenly (A B A C A B ...).

    After any prefix of n picks each name has been picked within one of n x its share.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = {name: float(w) for name, w in sorted(weights.items()) if w > 0}
        self._total = sum(self._weights.values())
        self._current = dict.fromkeys(self._weights, 0.0)

    def __bool__(self) -> bool:
        return bool(self._weights)

    def pick(self) -> str | None:
        if not self._weights:
            return None
        for name, weight in self._weights.items():
            self._current[name] += weight
        chosen = max(self._current, key=lambda name: (self._current[name], name))
        self._current[chosen] -= self._total
        return chosen


def worker_weights(
    region_of: Mapping[str, str | None], region_weights: Mapping[str, float]
) -> dict[str, float]:
    """Each worker's weight: its region's weight shared among the region's workers.

    A worker whose region is unknown (not yet announced, or not in the scenario) gets the
    average weight of the known ones, so it still takes users rather than stalling a run.
    """
    members: dict[str, int] = {}
    for region in region_of.values():
        if region is not None and region in region_weights:
            members[region] = members.get(region, 0) + 1
    weights: dict[str, float] = {}
    for worker, region in region_of.items():
        if region is not None and region in region_weights:
            weights[worker] = region_weights[region] / members[region]
    average = sum(weights.values()) / len(weights) if weights else 1.0
    for worker in region_of:
        weights.setdefault(worker, average)
    return weights
