"""Request coalescing (alone and in the regional application cache) and the cross-process
invalidation generations."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pitchey.cache import MemoryCache, read_through
from pitchey.geo.appcache import RegionalCache
from pitchey.geo.coalesce import Coalescer
from pitchey.geo.generations import LocalGenerations, SharedGenerations
from pitchey.geo.regions import CoalescingConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_identical_concurrent_calls_share_one_upstream_call() -> None:
    calls = 0
    release = asyncio.Event()

    async def upstream() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return f"answer {calls}"

    coalescer: Coalescer[str, str] = Coalescer(CoalescingConfig())
    tasks = [asyncio.create_task(coalescer.run("GET /api/pitches", upstream)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert {value for value, _ in results} == {"answer 1"}
    assert sum(joined for _, joined in results) == 9
    assert coalescer.joined == 9


async def test_a_call_older_than_the_window_is_not_joined() -> None:
    clock = Clock()
    release = asyncio.Event()
    calls = 0

    async def upstream() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    coalescer: Coalescer[str, int] = Coalescer(CoalescingConfig(window_ms=100), clock)
    first = asyncio.create_task(coalescer.run("k", upstream))
    await asyncio.sleep(0)
    clock.now = 0.1  # 100 ms later: the window has closed
    second = asyncio.create_task(coalescer.run("k", upstream))
    await asyncio.sleep(0)
    release.set()
    assert [r[1] for r in await asyncio.gather(first, second)] == [False, False]
    assert calls == 2


async def test_batches_are_capped() -> None:
    release = asyncio.Event()
    calls = 0

    async def upstream() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    coalescer: Coalescer[str, int] = Coalescer(CoalescingConfig(max_batch=3))
    tasks = [asyncio.create_task(coalescer.run("k", upstream)) for _ in range(7)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert calls == 3  # 3 + 3 + 1


async def test_the_first_caller_going_away_does_not_fail_the_others() -> None:
    release = asyncio.Event()

    async def upstream() -> str:
        await release.wait()
        return "done"

    coalescer: Coalescer[str, str] = Coalescer(CoalescingConfig())
    leader = asyncio.create_task(coalescer.run("k", upstream))
    await asyncio.sleep(0)
    follower = asyncio.create_task(coalescer.run("k", upstream))
    await asyncio.sleep(0)
    leader.cancel()
    release.set()
    assert await follower == ("done", True)
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_errors_reach_every_caller() -> None:
    async def upstream() -> str:
        await asyncio.sleep(0)
        raise ConnectionError("boom")

    coalescer: Coalescer[str, str] = Coalescer(CoalescingConfig())
    results = await asyncio.gather(*(coalescer.run("k", upstream) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


def test_local_generations_count_bumps() -> None:
    generations = LocalGenerations()
    generations.bump(["a", "a", "b"])
    assert (generations.get("a"), generations.get("b"), generations.get("c")) == (2, 1, 0)


def test_shared_generations_are_seen_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "generations"
    mine = SharedGenerations.create(path)
    before = mine.get("q:pitches")
    code = ("import sys; from pitchey.geo.generations import SharedGenerations as S; "
            "g = S(sys.argv[1]); g.bump(['q:pitches']); g.close()")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert mine.get("q:pitches") == before + 1
    assert mine.get("q:users") == 0
    mine.close()


async def test_regional_cache_misses_of_one_key_share_one_load_and_store() -> None:
    release = asyncio.Event()
    loads = 0
    joined: list[int] = []

    async def load_from_storage() -> bytes:
        nonlocal loads
        loads += 1
        await release.wait()
        return f"page {loads}".encode()

    cache = RegionalCache(MemoryCache(), LocalGenerations(), 60.0, Coalescer(CoalescingConfig()))
    cache.on_joined = lambda: joined.append(1)
    tasks = [asyncio.create_task(read_through(cache, "pitches", "list", 60, load_from_storage))
             for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert set(await asyncio.gather(*tasks)) == {b"page 1"}
    assert (loads, len(joined)) == (1, 9)
    assert await read_through(cache, "pitches", "list", 60, load_from_storage) == b"page 1"
    await cache.bump("pitches")  # a write: the next miss has a new key and loads afresh
    assert await read_through(cache, "pitches", "list", 60, load_from_storage) == b"page 2"
    assert (loads, len(joined)) == (2, 9)


async def test_regional_cache_without_coalescing_loads_per_miss() -> None:
    release = asyncio.Event()
    loads = 0

    async def load_from_storage() -> bytes:
        nonlocal loads
        loads += 1
        await release.wait()
        return b"page"

    cache = RegionalCache(MemoryCache(), LocalGenerations(), 60.0,
                          Coalescer(CoalescingConfig(enabled=False)))
    tasks = [asyncio.create_task(read_through(cache, "pitches", "list", 60, load_from_storage))
             for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert loads == 3
