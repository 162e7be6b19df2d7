"""The application tier of the multi-tier cache (60 s: docs/targets.md) for a regional worker.

It wraps the service's own cache. With the in-process cache, each region has its own
entries, so invalidation must cross processes: namespace generations (`bump`) and deleted
keys live in the topology's shared generations file, and every entry carries the generation
of its key, so a `delete` in one region (a logout, say) is seen by all. With Redis the
entries are shared already and only the TTL cap applies.

Concurrent misses of one key share one load (request coalescing, docs/geo.md): the first miss
loads and stores, the others within the coalescing window wait for its bytes instead of
asking storage again. The key is the full cache key, namespace generation included, so a
miss after a write never joins a load that started before it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pitchey.cache import Cache, Loader, load_and_store
from pitchey.geo.coalesce import Coalescer
from pitchey.geo.generations import Generations

__all__ = ["RegionalCache"]

_STAMP = struct.Struct("<Q")


class RegionalCache:
    def __init__(
        self,
        inner: Cache,
        generations: Generations,
        ttl_cap_s: float,
        coalescer: Coalescer[str, bytes] | None = None,
    ) -> None:
        self._inner = inner
        self._generations = generations
        self._ttl_cap_s = ttl_cap_s
        self._shared_store = inner.kind != "memory"
        self._coalescer = coalescer
        self.kind = inner.kind
        # Called once per miss that joined another miss's load (the worker counts them).
        self.on_joined: Callable[[], None] | None = None

    async def get(self, key: str) -> bytes | None:
        if self._ttl_cap_s <= 0:
            return None
        raw = await self._inner.get(key)
        if raw is None or self._shared_store:
            return raw
        if len(raw) < _STAMP.size:
            return None
        if _STAMP.unpack_from(raw)[0] != self._generations.get(f"k:{key}"):
            return None  # deleted in some region since it was stored
        return raw[_STAMP.size:]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ttl = min(ttl_s, self._ttl_cap_s)
        if ttl <= 0:
            return
        if not self._shared_store:
            value = _STAMP.pack(self._generations.get(f"k:{key}")) + value
        await self._inner.set(key, value, ttl)

    async def delete(self, key: str) -> None:
        if not self._shared_store:
            self._generations.bump((f"k:{key}",))
        await self._inner.delete(key)

    async def fill(self, key: str, ttl_s: float, loader: Loader) -> bytes:
        coalescer = self._coalescer
        if coalescer is None or not coalescer.enabled:
            return await load_and_store(self, key, ttl_s, loader)
        # The shared call stores too, so joiners do not write the same bytes again.
        value, joined = await coalescer.run(
            key, lambda: load_and_store(self, key, ttl_s, loader))
        if joined and self.on_joined is not None:
            self.on_joined()
        return value

    async def generation(self, namespace: str) -> int:
        if self._shared_store:
            return await self._inner.generation(namespace)
        return self._generations.get(f"ns:{namespace}")

    async def bump(self, namespace: str) -> int:
        if self._shared_store:
            return await self._inner.bump(namespace)
        self._generations.bump((f"ns:{namespace}",))
        return self._generations.get(f"ns:{namespace}")

    async def ping(self) -> float:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
