"""Locust's users dispatcher, weighted by region: a worker takes users in proportion to its
region's weight (shared among that region's workers), each worker with the scenario's mix.

Stock Locust spreads users evenly over workers and cycles the classes independently of the
workers, so with one worker per region every region would get the same number of users, and
cycles of equal length could even give one region one class only. Here each new user picks
its worker first (smooth weighted round-robin over region weights) and then its class from
that worker's own weighted round-robin, so every region gets its share and the full mix.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from locust.dispatch import UsersDispatcher
from locust.runners import WorkerNode

from loadtests.weighting import SmoothPicker, worker_weights

__all__ = ["region_dispatcher"]


def region_dispatcher(
    region_of: Callable[[], Mapping[str, str]],
    region_weights: Mapping[str, float],
    class_weights: Mapping[str, float],
) -> type[UsersDispatcher]:
    """A dispatcher class bound to this run's regions (`region_of()` is read at each rebuild:
    worker id -> region as the workers announced it) and class weights (by class name)."""

    class RegionDispatcher(UsersDispatcher):
        def __init__(self, worker_nodes: list[WorkerNode], user_classes: list[Any]) -> None:
            super().__init__(worker_nodes, user_classes)
            self._pickers_for: tuple[Any, ...] = ()
            self._worker_picker = SmoothPicker({})
            self._class_pickers: dict[str, SmoothPicker] = {}

        def _pickers(self) -> tuple[SmoothPicker, dict[str, SmoothPicker]]:
            regions = dict(region_of())
            ids = tuple(sorted(w.id for w in self._worker_nodes))
            signature = (ids, tuple(sorted((i, regions.get(i, "")) for i in ids)))
            if signature != self._pickers_for:
                self._pickers_for = signature
                weights = worker_weights({i: regions.get(i) for i in ids}, region_weights)
                self._worker_picker = SmoothPicker(weights)
                names = {c.__name__ for c in self._user_classes}
                mix = {name: w for name, w in class_weights.items() if name in names}
                self._class_pickers = {i: SmoothPicker(mix) for i in ids}
            return self._worker_picker, self._class_pickers

        def _next_user(self) -> tuple[WorkerNode, str] | None:
            worker_picker, class_pickers = self._pickers()
            worker_id = worker_picker.pick()
            if worker_id is None:
                return None
            user = class_pickers[worker_id].pick()
            if user is None:
                return None
            node = next(w for w in self._worker_nodes if w.id == worker_id)
            return node, user

        def _add_users_on_workers(self) -> dict[str, dict[str, int]]:
            goal = min(self._current_user_count + self._user_count_per_dispatch_iteration,
                       self._target_user_count)
            while self._current_user_count < goal:
                chosen = self._next_user()
                if chosen is None:
                    self._no_user_to_spawn = True
                    break
                node, user = chosen
                self._users_on_workers[node.id][user] += 1
                self._current_user_count += 1
                self._active_users.append((node, user))
            return self._users_on_workers

        def _distribute_users(self, target_user_count: int) -> tuple[
            dict[str, dict[str, int]], Iterator[str | None], Any, list[tuple[WorkerNode, str]]
        ]:
            """Rebalance after a worker joined or left: replay the picks from zero."""
            self._pickers_for = ()
            users_on_workers = {
                w.id: {c.__name__: 0 for c in self._original_user_classes}
                for w in self._worker_nodes
            }
            active: list[tuple[WorkerNode, str]] = []
            for _ in range(target_user_count):
                chosen = self._next_user()
                if chosen is None:
                    break
                node, user = chosen
                users_on_workers[node.id][user] += 1
                active.append(chosen)
            return (users_on_workers, self._user_gen(), itertools.cycle(self._worker_nodes),
                    active)

    return RegionDispatcher
