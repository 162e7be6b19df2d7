"""The latency model: simulated network delay between a client's region and a worker's region,
so that geography shows in measured latency. Off for capacity benchmarks.

A region can also be made slow on purpose (`set_extra`), which is how the reliability tests
and operators rehearse a degraded region; that fault injection applies even when the
geographic model is off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from pitchey.geo.regions import LatencyConfig

__all__ = ["LatencyModel"]


class LatencyModel:
    def __init__(self, config: LatencyConfig) -> None:
        self.enabled = config.enabled
        self._one_way_s = {pair: ms / 1000.0 for pair, ms in config.one_way_ms.items()}
        self._extra_s: dict[str, float] = {}

    def one_way_s(self, source: str | None, target: str | None) -> float:
        """Seconds a message takes from `source` to `target`; 0 when either is unknown (a
        client that did not say where it is) or the model is off."""
        if not self.enabled or source is None or target is None:
            return 0.0
        return self._one_way_s.get((source, target), 0.0)

    def outbound_s(self, client: str | None, region: str) -> float:
        """Delay before a request reaches `region`: the path plus any injected slowness."""
        return self.one_way_s(client, region) + self._extra_s.get(region, 0.0)

    def round_trip_s(self, source: str | None, target: str) -> float:
        """A request from `source` to `target` and its answer back (writes to the primary)."""
        return self.outbound_s(source, target) + self.one_way_s(target, source)

    def set_extra(self, region: str, seconds: float) -> None:
        """Make every call to `region` slower by `seconds` (0 restores it)."""
        if seconds > 0:
            self._extra_s[region] = seconds
        else:
            self._extra_s.pop(region, None)

    def extra_s(self, region: str) -> float:
        return self._extra_s.get(region, 0.0)

    def distance(self, source: str, target: str) -> float:
        """The table's one-way delay, used by routing as its idea of distance even when the
        simulated delay is off."""
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
