"""The latency model: simulated network delay between a client's region and a worker's region,
so that geography shows in measured latency. Off for capacity benchmarks.

`LatencyModel` is the geography alone (the one-way matrix). `RegionDelay` is what one
regional worker makes of it: the round trip to the region a request says its client is in
(`X-Pitchey-Region`), plus any delay injected on purpose, which is how the reliability tests
and operators rehearse a degraded region; that fault injection applies even when the
geographic model is off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from pitchey.geo.regions import LatencyConfig, Region

__all__ = ["LatencyModel", "RegionDelay"]


class LatencyModel:
    def __init__(self, config: LatencyConfig) -> None:
        self.enabled = config.enabled
        self._one_way_s = {pair: ms / 1000.0 for pair, ms in config.one_way_ms.items()}

    def one_way_s(self, source: str | None, target: str | None) -> float:
        """Seconds a message takes from `source` to `target`; 0 when either is unknown (a
        client that did not say where it is) or the model is off."""
        if not self.enabled or source is None or target is None:
            return 0.0
        return self._one_way_s.get((source, target), 0.0)

    def round_trip_s(self, source: str | None, target: str) -> float:
        """A client in `source` reaching `target` and the answer coming back."""
        return self.one_way_s(source, target) + self.one_way_s(target, source)

    def backbone_round_trip_s(self, source: str, target: str) -> float:
        """A worker in `source` reaching a server in `target` (a write to the primary) and back.

        Servers sit in their regions' data centres, so they pay neither region's client access
        leg (the matrix's same-region entry), only the transit between the two: nothing
        within one region. With the default matrix that is twice the backbone table's figure.
        """
        if source == target:
            return 0.0

        def transit(a: str, b: str) -> float:
            access = self.one_way_s(a, a) + self.one_way_s(b, b)
            return max(0.0, self.one_way_s(a, b) - access)

        return transit(source, target) + transit(target, source)

    def distance(self, source: str, target: str) -> float:
        """The table's one-way delay, used as the idea of distance even when the simulated
        delay is off."""
        return self._one_way_s.get((source, target), 0.0)

    def nearest(self, source: str, candidates: Iterable[str]) -> list[str]:
        """`candidates` ordered by distance from `source`, nearest first (`source` itself
        always first when it is a candidate)."""
        return sorted(candidates, key=lambda c: (c != source, self.distance(source, c), c))

    @property
    def matrix_ms(self) -> Mapping[tuple[str, str], float]:
        return {pair: seconds * 1000.0 for pair, seconds in self._one_way_s.items()}

    @staticmethod
    async def sleep(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


class RegionDelay:
    """The delay one region's worker adds to each answer.

    The injected extra lives here, not in the model: the model also prices this worker's
    writes to the primary region, and a slow region must not make its own writes pay twice.
    """

    def __init__(self, model: LatencyModel, region: str, regions: Iterable[Region]) -> None:
        self.model = model
        self.region = region
        self.extra_s = 0.0
        known_regions = tuple(regions)
        self.region_names = tuple(known.name for known in known_regions)
        # Clients name their region or a colo; either spelling, any case.
        aliases: dict[str, str] = {}
        for known in known_regions:
            aliases[known.name.lower()] = known.name
            for colo in known.colos:
                aliases.setdefault(colo.lower(), known.name)
        self._aliases = aliases

    def client_region(self, header: str | None) -> str | None:
        """The region an `X-Pitchey-Region` value names (a region or one of its colo codes),
        or None for a missing or unknown value."""
        if not header:
            return None
        return self._aliases.get(header.strip().lower())

    def round_trip_s(self, client_region: str | None) -> float:
        """The modelled round trip between the client's region and this one (0 for an
        unknown client or with the model off); the injected extra is not part of it."""
        return self.model.round_trip_s(client_region, self.region)

    def set_extra(self, seconds: float) -> None:
        """Make every answer of this worker slower by `seconds` (0 restores it)."""
        if seconds < 0:
            raise ValueError("an injected delay cannot be negative")
        self.extra_s = seconds
