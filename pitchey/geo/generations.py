"""Invalidation generations shared by every process of one geo topology.

Each region's worker keeps its own in-process caches (application tier, query tier); the
HAProxy edge keeps its tier with a generation of its own (a stick-table counter). A write in
one region must make every process stop serving what it changed, or a client whose next
read lands in another region reads its own write stale.
Every cache key therefore embeds the current generation of what it depends on, and a write
bumps those generations here: one small memory-mapped file of counters, created by the
supervisor, read without a lock (one aligned 8-byte read) and bumped under `flock`.

Names hash into a fixed number of slots; two names sharing a slot only cause an extra miss.
Without a file (a worker started alone) the counters are a plain in-process dict.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

__all__ = ["Generations", "LocalGenerations", "SharedGenerations", "SLOTS"]

SLOTS = 4096
_SLOT = struct.Struct("<Q")


class Generations(Protocol):
    def get(self, name: str) -> int: ...
    def bump(self, names: Iterable[str]) -> None: ...
    def close(self) -> None: ...


class LocalGenerations:
    """Counters for one process."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}

    def get(self, name: str) -> int:
        return self._values.get(name, 0)

    def bump(self, names: Iterable[str]) -> None:
        for name in names:
            self._values[name] = self._values.get(name, 0) + 1

    def close(self) -> None:
        self._values.clear()


class SharedGenerations:
    """Counters in a memory-mapped file every process of the topology opens."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SLOTS * _SLOT.size:
                os.ftruncate(fd, SLOTS * _SLOT.size)
            self._map = mmap.mmap(fd, SLOTS * _SLOT.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @staticmethod
    def create(path: str | Path) -> SharedGenerations:
        """A fresh, zeroed file (the supervisor does this once per topology)."""
        Path(path).write_bytes(b"\0" * (SLOTS * _SLOT.size))
        return SharedGenerations(path)

    @staticmethod
    def _offset(name: str) -> int:
        return (zlib.crc32(name.encode()) % SLOTS) * _SLOT.size

    def get(self, name: str) -> int:
        return int(_SLOT.unpack_from(self._map, self._offset(name))[0])

    def bump(self, names: Iterable[str]) -> None:
        offsets = {self._offset(name) for name in names}
        if not offsets:
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for offset in offsets:
                value = _SLOT.unpack_from(self._map, offset)[0]
                _SLOT.pack_into(self._map, offset, (value + 1) % (1 << 64))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        try:
            self._map.close()
        finally:
            os.close(self._fd)
