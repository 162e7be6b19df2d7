"""The generator's heap freezer: at most once per interval, and it really freezes."""

from __future__ import annotations

import gc

from loadtests.heap import HeapFreezer


def test_freezes_at_most_once_per_interval() -> None:
    calls: list[int] = []
    freezer = HeapFreezer(every_s=1.0, freeze=lambda: calls.append(1))
    assert [freezer.tick(t) for t in (10.0, 10.5, 10.99, 11.0, 11.2, 12.5)] == [
        True, False, False, True, False, True]
    assert len(calls) == 3


def test_the_default_moves_live_objects_out_of_the_collectors_sight() -> None:
    kept = [[index] for index in range(1000)]  # container objects the collector tracks
    try:
        HeapFreezer().tick(0.0)
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
