"""The runs under one directory, and their prepared views (memory, then disk, then built).

Callbacks run on Flask's threads, so a lock per run keeps two callbacks from building or
refreshing the same view at once. A run being written is re-read by a background thread
(every `refresh_min_s`, or as fast as a re-read of the growing run takes), so a live callback
never waits for the re-read: it sends whatever the last refresh added.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from collectors.errors import RunDirError
from collectors.live import LiveRunReader
from collectors.run import load_run
from dashboards.data import (
    RunCache,
    RunView,
    apply_extension,
    build_view,
    compute_extension,
    run_signature,
)

__all__ = ["RunCatalog", "RunInfo", "ViewError"]

MIN_REFRESH_S = 0.2  # a background re-read never spins faster than this
TABLES_EVERY_S = 10.0  # the endpoint table and cost inputs of a live run: slower is fine


class ViewError(Exception):
    """A run that cannot be shown; the message says which file and why."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    status: str
    scenario_name: str
    started_at: str

    @property
    def label(self) -> str:
        state = "" if self.status == "complete" else f" [{self.status}]"
        return f"{self.run_id}{state}"


def _info(path: Path) -> RunInfo | None:
    """Listing facts from the manifest; an unreadable one is listed so that its page can say
    what is wrong with it (load_run names the file and the reason)."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RunInfo(path.name, path, "unreadable", "", "")
    if not isinstance(manifest, dict) or manifest.get("format") != "pitchey-run":
        return None
    return RunInfo(str(manifest.get("run_id", path.name)), path,
                   str(manifest.get("status", "?")), str(manifest.get("scenario_name", "")),
                   str(manifest.get("started_at", "")))


class RunCatalog:
    def __init__(self, runs_dir: Path | str, *, cache_dir: Path | str | None = None,
                 refresh_min_s: float = 1.0, memory_views: int = 6,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runs_dir = Path(runs_dir)
        self.cache = RunCache(Path(cache_dir)) if cache_dir is not None else None
        self.refresh_min_s = refresh_min_s
        self._memory_views = memory_views
        self._clock = clock
        self._views: OrderedDict[str, tuple[RunView, float]] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._apply_locks: dict[str, threading.Lock] = {}
        self._refreshers: dict[str, _Refresher] = {}
        self._readers: dict[str, LiveRunReader] = {}  # runs being written: read incrementally
        self.idle_stop_s = 30.0
        self._guard = threading.Lock()

    # listing --------------------------------------------------------------------------------
    def list_runs(self) -> list[RunInfo]:
        """Run directories directly under `runs_dir` (or `runs_dir` itself), newest first."""
        if (self.runs_dir / "manifest.json").exists():
            candidates = [self.runs_dir]
        elif self.runs_dir.is_dir():
            candidates = [p for p in self.runs_dir.iterdir() if (p / "manifest.json").exists()]
        else:
            candidates = []
        infos = [info for p in candidates if (info := _info(p)) is not None]
        return sorted(infos, key=lambda i: (i.started_at, i.run_id), reverse=True)

    def find(self, run_id: str | None) -> RunInfo | None:
        runs = self.list_runs()
        if run_id:
            return next((r for r in runs if r.run_id == run_id), None)
        return runs[0] if runs else None

    # views ----------------------------------------------------------------------------------
    def _lock(self, run_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(run_id, threading.Lock())

    def view(self, run_id: str) -> RunView:
        """The prepared view of a run; raises ViewError when it cannot be read."""
        info = self.find(run_id)
        if info is None:
            raise ViewError(f"no run {run_id!r} under {self.runs_dir}")
        cached = self._views.get(info.run_id)
        if cached is not None and self._current(cached[0], info):
            return cached[0]  # no lock: a refresher may hold it for a long re-read
        with self._lock(info.run_id):
            cached = self._views.get(info.run_id)
            if cached is not None and self._current(cached[0], info):
                return cached[0]
            return self._build(info)

    @staticmethod
    def _current(view: RunView, info: RunInfo) -> bool:
        """A live view stays while its run is written; a finished one while nothing changed."""
        if info.status == "running":
            return view.live
        return not view.live and view.signature == run_signature(info.path)

    def refresh(self, run_id: str) -> RunView:
        """The view brought up to date now if its run is still being written (synchronous)."""
        view = self.view(run_id)
        if view.live:
            self._refresh_once(view)
        return view

    def live_view(self, run_id: str) -> RunView:
        """The view as the background refresher last left it; never waits for a refresh.

        The first call for a run being written starts a refresher thread that re-reads the
        run every `refresh_min_s` (or as fast as a re-read takes) until the run finishes or
        nobody has asked for `idle_stop_s`. Read the view inside `locked(run_id)`.
        """
        view = self.view(run_id)
        if view.live:
            with self._guard:
                refresher = self._refreshers.get(run_id)
                if refresher is None or not refresher.is_alive():
                    refresher = _Refresher(self, view)
                    self._refreshers[run_id] = refresher
                    refresher.start()
                refresher.wanted_at = self._clock()
        return view

    @contextmanager
    def locked(self, run_id: str) -> Iterator[None]:
        """Hold while reading a live view, so a refresh is never applied halfway."""
        with self._apply_lock(run_id):
            yield

    def stop(self) -> None:
        """Stop every refresher thread (tests, shutdown)."""
        with self._guard:
            refreshers = list(self._refreshers.values())
            self._refreshers.clear()
        for refresher in refreshers:
            refresher.stopping.set()
            refresher.join(timeout=30)

    def _apply_lock(self, run_id: str) -> threading.Lock:
        with self._guard:
            return self._apply_locks.setdefault(run_id, threading.Lock())

    def _refresh_once(self, view: RunView, *, tables: bool = True) -> bool:
        """Re-read the run and apply what it added; True once the run has finished."""
        with self._lock(view.run_id):  # one refresh of a run at a time
            try:
                reader = self._reader(view.run_id, Path(view.path))
                reader.refresh()  # only what was appended since the last refresh
                extension = compute_extension(view, reader.run, tables=tables)
            except RunDirError as exc:
                raise ViewError(str(exc)) from None
            with self._apply_lock(view.run_id):
                apply_extension(view, extension)
            self._remember(view)
            if not view.live:
                with self._guard:
                    self._readers.pop(view.run_id, None)
            return not view.live

    def _reader(self, run_id: str, path: Path) -> LiveRunReader:
        with self._guard:
            reader = self._readers.get(run_id)
            if reader is None or reader.path != path:
                reader = self._readers[run_id] = LiveRunReader(path)
            return reader

    def _build(self, info: RunInfo) -> RunView:
        signature = run_signature(info.path) if info.status != "running" else ""
        if signature and self.cache is not None:
            hit = self.cache.get(info.run_id, signature)
            if hit is not None:
                self._remember(hit)
                return hit
        try:
            if info.status == "running":
                reader = self._reader(info.run_id, info.path)
                reader.refresh()
                run = reader.run
            else:
                with self._guard:
                    self._readers.pop(info.run_id, None)  # finished: read whole, once
                run = load_run(info.path)
            view = build_view(run)
        except RunDirError as exc:
            raise ViewError(str(exc)) from None
        view.signature = signature
        if signature and self.cache is not None:
            self.cache.put(view)
        self._remember(view)
        return view

    def _remember(self, view: RunView) -> None:
        with self._guard:
            self._views[view.run_id] = (view, self._clock())
            self._views.move_to_end(view.run_id)
            while len(self._views) > self._memory_views:
                self._views.popitem(last=False)


class _Refresher(threading.Thread):
    """Re-reads one live run in the background until it finishes or nobody watches."""

    def __init__(self, catalog: RunCatalog, view: RunView) -> None:
        super().__init__(name=f"refresh-{view.run_id}", daemon=True)
        self.catalog = catalog
        self.view = view
        self.stopping = threading.Event()
        self.wanted_at = catalog._clock()
        self.tables_at = catalog._clock()

    def run(self) -> None:
        catalog = self.catalog
        while not self.stopping.wait(max(catalog.refresh_min_s, MIN_REFRESH_S)):
            now = catalog._clock()
            if now - self.wanted_at > catalog.idle_stop_s:
                return
            tables = now - self.tables_at >= TABLES_EVERY_S
            try:
                if catalog._refresh_once(self.view, tables=tables):
                    return
                if tables:
                    self.tables_at = now
            except ViewError:
                return  # the next page load reports the error
