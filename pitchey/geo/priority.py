"""Request priorities under overload (seed 003's RESOURCE_PRIORITIES): a saturated region
sheds the lowest priority first. A class of priority p is admitted while the region holds
fewer than max_in_flight x p / 10 requests, so analytics (2) goes first and authentication
(10) only when the region is completely full."""

from __future__ import annotations

from pitchey.geo.edgecache import HeaderLookup
from pitchey.geo.regions import PriorityClass, PriorityConfig

__all__ = ["PriorityClassifier", "admits"]

_MAX_PRIORITY = 10


class PriorityClassifier:
    def __init__(self, config: PriorityConfig) -> None:
        self._by_name = {c.name: c for c in config.classes}
        self._default = self._by_name[config.default_class]
        # longest prefix first, so /api/auth/ wins over /api/
        self._prefixes = sorted(
            ((path, c) for c in config.classes for path in c.paths),
            key=lambda item: len(item[0]), reverse=True,
        )
        self._websocket = self._by_name.get("websocket")
        self.retry_after_s = config.retry_after_s
        self._by_path: dict[str, PriorityClass] = {}  # a bounded memo of recent paths

    def classify(self, path: str, headers: HeaderLookup) -> PriorityClass:
        upgrade = headers.get("Upgrade") or ""
        if self._websocket is not None and upgrade.lower() == "websocket":
            return self._websocket
        known = self._by_path.get(path)
        if known is not None:
            return known
        found = next((klass for prefix, klass in self._prefixes if path.startswith(prefix)),
                     self._default)
        if len(self._by_path) >= 4096:
            self._by_path.clear()
        self._by_path[path] = found
        return found

    @property
    def classes(self) -> tuple[PriorityClass, ...]:
        return tuple(self._by_name.values())


def admits(priority: int, in_flight: int, max_in_flight: int) -> bool:
    """Whether a region holding `in_flight` requests takes one more of `priority`."""
    return in_flight < max_in_flight * priority / _MAX_PRIORITY
