"""Which region serves a request, and where it goes if that one fails (seed 003).

Strategies: `geo` (default) sends a client to its own region, from the `X-Pitchey-Region`
header, falling back to the nearest healthy region by the latency table; `weighted` is a
smooth weighted round-robin with a session-affinity cookie; `least_connections` picks the
region with the fewest in-flight requests per unit of weight. Every strategy returns the
full order: the first region serves, the next ones are the failover candidates.

Regions that are down, or whose breaker refuses calls, are left out. A region that answers
but reports a failing dependency (degraded) is used only when no fully healthy one is left.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from pitchey.geo.latency import LatencyModel
from pitchey.geo.regions import ROUTING_STRATEGIES

__all__ = ["Health", "Candidate", "Router"]


class Health(enum.Enum):
    UP = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class Candidate:
    name: str
    weight: int
    in_flight: int
    health: Health
    breaker_allows: bool

    @property
    def eligible(self) -> bool:
        return self.health is not Health.DOWN and self.breaker_allows


class Router:
    def __init__(
        self, strategy: str, latency: LatencyModel, default_region: str
    ) -> None:
        if strategy not in ROUTING_STRATEGIES:
            raise ValueError(f"unknown routing strategy {strategy!r}")
        self.strategy = strategy
        self._latency = latency
        self._default_region = default_region
        self._current_weights: dict[str, int] = {}

    def order(
        self,
        candidates: Sequence[Candidate],
        client_region: str | None,
        affinity: str | None = None,
    ) -> list[str]:
        """Eligible regions, the chosen one first, then the failover order."""
        eligible = [c for c in candidates if c.eligible]
        if not eligible:
            return []
        origin = client_region or self._default_region
        best_tier = [c for c in eligible if c.health is Health.UP] or eligible
        if self.strategy == "geo":
            first = self._latency.nearest(origin, (c.name for c in best_tier))[0]
        elif self.strategy == "weighted":
            names = {c.name for c in best_tier}
            first = affinity if affinity in names else self._weighted_pick(best_tier)
        else:
            first = min(best_tier, key=lambda c: (c.in_flight / max(c.weight, 1),
                                                  self._latency.distance(origin, c.name),
                                                  c.name)).name
        rest = [c for c in eligible if c.name != first]
        rest.sort(key=lambda c: (c.health is not Health.UP,
                                 self._latency.distance(first, c.name), c.name))
        return [first, *(c.name for c in rest)]

    def _weighted_pick(self, candidates: Sequence[Candidate]) -> str:
        """nginx's smooth weighted round-robin: deterministic, and spreads picks evenly."""
        total = 0
        best: str | None = None
        for candidate in candidates:
            weight = max(candidate.weight, 0)
            total += weight
            current = self._current_weights.get(candidate.name, 0) + weight
            self._current_weights[candidate.name] = current
            if best is None or current > self._current_weights[best]:
                best = candidate.name
        assert best is not None
        self._current_weights[best] -= total
        return best
